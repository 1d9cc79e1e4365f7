"""Loading diffusers pipelines onto the right device, once per process.

Imports torch and diffusers at module level: only GPU workers, the trainer and tests import
this module (never the web process; see CONVENTIONS item 15).
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
import torch
from diffusers import DiffusionPipeline

from .options import BackendOptions
from .spec import SpecError, is_local_source, read_model_index

logger = logging.getLogger(__name__)

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

ERROR_UNKNOWN_PIPELINE_CLASS = "diffusers has no pipeline class {name}."
ERROR_INCOMPATIBLE_SCHEDULER = "Unknown scheduler {name} for {pipeline}; compatible: {allowed}."


def pick_device(preferred: str | None = None) -> torch.device:
    """The given device, else the first available of cuda, mps, cpu."""
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """ "auto" is half precision on an accelerator and float32 on CPU (CPU half is slow)."""
    if name == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    return DTYPES[name]


@dataclass
class LoadedPipeline:
    """A pipeline ready on its device, plus what is needed to swap schedulers per call."""

    pipe: DiffusionPipeline
    device: torch.device
    dtype: torch.dtype
    base_scheduler_class: type
    base_scheduler_config: dict
    compatible_schedulers: dict[str, type]
    # Callers mutate pipe.scheduler for the length of one call; hold this while doing so.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def make_scheduler(self, name: str | None, options: dict):
        """A fresh scheduler (they keep per-run state) of the named class, or the saved one."""
        if name is None:
            scheduler_class = self.base_scheduler_class
        else:
            scheduler_class = self.compatible_schedulers.get(name)
            if scheduler_class is None:
                raise SpecError(
                    {
                        "scheduler": ERROR_INCOMPATIBLE_SCHEDULER.format(
                            name=name,
                            pipeline=type(self.pipe).__name__,
                            allowed=", ".join(sorted(self.compatible_schedulers)),
                        )
                    }
                )
        return scheduler_class.from_config(self.base_scheduler_config, **options)


def _pipeline_class(name: str | None) -> type[DiffusionPipeline]:
    if name is None:
        return DiffusionPipeline
    pipeline_class = getattr(diffusers, name, None)
    if not (isinstance(pipeline_class, type) and issubclass(pipeline_class, DiffusionPipeline)):
        raise SpecError({"pipeline_class": ERROR_UNKNOWN_PIPELINE_CLASS.format(name=name)})
    return pipeline_class


def _names_a_safety_checker(source: str) -> bool:
    if not is_local_source(source):
        return False
    try:
        return "safety_checker" in read_model_index(Path(source).expanduser())
    except (OSError, json.JSONDecodeError):
        return False


def _optimise(pipe: DiffusionPipeline, device: torch.device, options: BackendOptions) -> None:
    """Apply the speed switches. Order matters: fuse before compiling, layout before both."""
    if device.type == "cuda":
        # TF32 only affects float32 matmuls (text encoder upcasts, VAE in fp32 pipelines).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    unet = getattr(pipe, "unet", None)
    if unet is None:
        unet = getattr(pipe, "transformer", None)
    vae = getattr(pipe, "vae", None)
    if options.channels_last:
        for module in (unet, vae):
            if module is not None:
                module.to(memory_format=torch.channels_last)
    if options.fuse_qkv and hasattr(pipe, "fuse_qkv_projections"):
        pipe.fuse_qkv_projections()
    if vae is not None and options.vae_slicing:
        vae.enable_slicing()
    if vae is not None and options.vae_tiling:
        vae.enable_tiling()
    if options.compile or options.compile_vae:
        import torch._inductor.config as inductor

        # From diffusers' "accelerate inference of text-to-image" guide; the tuning knobs cost
        # minutes of compile time, so only the max-autotune modes turn them on.
        inductor.conv_1x1_as_mm = True
        inductor.epilogue_fusion = False
        if options.compile_mode.startswith("max-autotune"):
            inductor.coordinate_descent_tuning = True
            inductor.coordinate_descent_check_all_directions = True
    if options.compile and unet is not None:
        unet.compile(mode=options.compile_mode, fullgraph=True)
    if options.compile_vae and vae is not None:
        # The decoder module, not vae.decode: the pipeline passes torch.Generators to decode.
        vae.decoder.compile(mode=options.compile_mode, fullgraph=True)


def load_pipeline(
    *,
    source: str,
    pipeline_class: str | None,
    dtype: str,
    options: BackendOptions,
    lora_path: str | None = None,
) -> LoadedPipeline:
    """Load weights once, move them to the device and apply the speed switches."""
    device = pick_device(options.device)
    torch_dtype = resolve_dtype(dtype, device)
    kwargs: dict = {"dtype": torch_dtype}
    if not options.keep_safety_checker and _names_a_safety_checker(source):
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    pipe = _pipeline_class(pipeline_class).from_pretrained(source, **kwargs)
    if not options.keep_safety_checker and getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if lora_path:
        # Fused into the base weights, then the adapter layers are dropped: no per-step cost,
        # and fusing/compiling afterwards sees plain modules.
        pipe.load_lora_weights(str(Path(lora_path).expanduser()))
        pipe.fuse_lora()
        pipe.unload_lora_weights()
    _optimise(pipe, device, options)
    scheduler = pipe.scheduler
    return LoadedPipeline(
        pipe=pipe,
        device=device,
        dtype=torch_dtype,
        base_scheduler_class=type(scheduler),
        base_scheduler_config=dict(scheduler.config),
        compatible_schedulers={cls.__name__: cls for cls in scheduler.compatibles},
    )


class PipelineCache:
    """A small LRU of loaded pipelines, keyed by the spec's loading fields and the options.

    ``loads`` counts real loads, so callers (and tests) can see hits.
    """

    def __init__(self, size: int = 2):
        self.size = size
        self.loads = 0
        self._entries: OrderedDict[tuple, LoadedPipeline] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec, options: BackendOptions) -> LoadedPipeline:
        key = (spec.loading_key(), options.loading_key())
        # One lock around loading as well: two threads asking for the same model must not
        # both load it into GPU memory.
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            while len(self._entries) >= self.size:
                self._evict_oldest()
            entry = load_pipeline(
                source=spec.source,
                pipeline_class=spec.pipeline_class,
                dtype=spec.dtype,
                options=options,
                lora_path=spec.lora_path,
            )
            self.loads += 1
            self._entries[key] = entry
            return entry

    def __len__(self) -> int:
        return len(self._entries)

    def _evict_oldest(self) -> None:
        key, entry = self._entries.popitem(last=False)
        logger.info("unloading pipeline %s", key[0])
        device_type = entry.device.type
        del entry
        gc.collect()
        if device_type == "cuda":
            torch.cuda.empty_cache()

    def clear(self) -> None:
        with self._lock:
            while self._entries:
                self._evict_oldest()


_default_cache: PipelineCache | None = None
_default_lock = threading.Lock()


def default_cache(size: int | None = None) -> PipelineCache:
    """The per-process cache used when a caller brings none (size from the first caller)."""
    global _default_cache
    with _default_lock:
        if _default_cache is None:
            _default_cache = PipelineCache(size=size or 2)
        return _default_cache
