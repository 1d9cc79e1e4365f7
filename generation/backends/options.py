"""How a worker runs pipelines: device, batch size and the speed switches.

These are properties of the worker (its GPU, its warm-up budget), not of a generator spec, so
they come from the environment of the ``generate`` worker rather than from the database.
Torch-free, like spec.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ENV_PREFIX = "PICKWISE_GENERATION_"

ERROR_BAD_BATCH = "max_batch_size must be at least 1, got {value}."
ERROR_BAD_CACHE = "cache_size must be at least 1, got {value}."
ERROR_BAD_COMPILE_MODE = (
    "compile_mode must be one of " + ", ".join(COMPILE_MODES) + "; got {value}."
)
ERROR_BAD_DEVICE = "device must be cuda, cuda:N, mps or cpu; got {value}."
ERROR_BAD_ENV = "{name}={value!r} is not a valid {kind}."


@dataclass(frozen=True)
class BackendOptions:
    """Worker-level switches; the defaults are safe everywhere, the speed ones are opt-in.

    device: None picks cuda, then mps, then cpu.
    max_batch_size: images per pipeline call; bigger batches fill a large GPU better.
    pad_batches: pad a short chunk up to the next power of two, at most max_batch_size (extra
        images are dropped), so a compiled UNet or captured CUDA graph sees a few shapes
        instead of recompiling for every size.
    channels_last: NHWC memory format for UNet and VAE (faster convolutions on tensor cores).
    fuse_qkv: one matmul for query, key and value in every attention layer.
    compile: torch.compile the UNet (and the VAE decoder with compile_vae); first call is slow.
    compile_mode: "max-autotune" also captures CUDA graphs; "max-autotune-no-cudagraphs" not.
    vae_slicing / vae_tiling: decode one image / one tile at a time to cap peak memory.
    keep_safety_checker: keep a pipeline's NSFW filter (off: it blacks out images and costs time).
    cache_size: loaded pipelines kept per process (LRU).
    """

    device: str | None = None
    max_batch_size: int = 8
    pad_batches: bool = False
    channels_last: bool = False
    fuse_qkv: bool = False
    compile: bool = False
    compile_vae: bool = False
    compile_mode: str = "max-autotune-no-cudagraphs"
    vae_slicing: bool = False
    vae_tiling: bool = False
    keep_safety_checker: bool = False
    cache_size: int = 2

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(ERROR_BAD_BATCH.format(value=self.max_batch_size))
        if self.cache_size < 1:
            raise ValueError(ERROR_BAD_CACHE.format(value=self.cache_size))
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(ERROR_BAD_COMPILE_MODE.format(value=self.compile_mode))
        if self.device is not None and self.device.split(":")[0] not in ("cuda", "mps", "cpu"):
            raise ValueError(ERROR_BAD_DEVICE.format(value=self.device))

    def loading_key(self) -> tuple:
        """The switches that change a loaded pipeline object (part of the cache key)."""
        return (
            self.device,
            self.channels_last,
            self.fuse_qkv,
            self.compile,
            self.compile_vae,
            self.compile_mode,
            self.vae_slicing,
            self.vae_tiling,
            self.keep_safety_checker,
        )

    @classmethod
    def fast(cls, **overrides) -> BackendOptions:
        """The throughput set-up for a dedicated GPU worker (see bench/gpu_generate.py)."""
        values = {
            "max_batch_size": 16,
            "pad_batches": True,
            "channels_last": True,
            "fuse_qkv": True,
            "compile": True,
            "compile_vae": True,
        }
        return cls(**{**values, **overrides})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BackendOptions:
        """Read PICKWISE_GENERATION_<FIELD> variables, e.g. PICKWISE_GENERATION_COMPILE=1.

        PICKWISE_GENERATION_PRESET=fast starts from BackendOptions.fast().
        """
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for item in fields(cls):
            name = ENV_PREFIX + item.name.upper()
            if name not in environ:
                continue
            raw = environ[name].strip()
            if item.type in ("bool", bool):
                if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError(ERROR_BAD_ENV.format(name=name, value=raw, kind="boolean"))
                values[item.name] = raw.lower() in ("1", "true", "yes", "on")
            elif item.type in ("int", int):
                try:
                    values[item.name] = int(raw)
                except ValueError:
                    raise ValueError(
                        ERROR_BAD_ENV.format(name=name, value=raw, kind="whole number")
                    ) from None
            else:
                values[item.name] = raw or None
        if environ.get(ENV_PREFIX + "PRESET", "").strip().lower() == "fast":
            return cls.fast(**values)
        return cls(**values)
