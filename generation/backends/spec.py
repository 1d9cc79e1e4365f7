"""What to generate with: a plain generator spec and its cheap validation.

This module imports neither torch nor diffusers, so the web process (a Django model's clean(),
an admin form) can validate a spec without loading weights. The checks that need diffusers
(the pipeline class exists, the scheduler is in ``pipe.scheduler.compatibles``) run again when
the worker loads the pipeline.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DTYPES = ("auto", "float16", "bfloat16", "float32")
MIN_SIZE = 8
MAX_SIZE = 4096
SIZE_MULTIPLE = 8
MAX_STEPS = 1000
MAX_GUIDANCE = 50.0

# diffusers' KarrasDiffusionSchedulers: every scheduler listed here is interchangeable with the
# others for the SD-family (epsilon/v-prediction UNet) pipelines. A test pins it to diffusers.
KARRAS_SCHEDULERS = frozenset(
    {
        "DDIMScheduler",
        "DDPMScheduler",
        "PNDMScheduler",
        "LMSDiscreteScheduler",
        "EulerDiscreteScheduler",
        "HeunDiscreteScheduler",
        "EulerAncestralDiscreteScheduler",
        "DPMSolverMultistepScheduler",
        "DPMSolverSinglestepScheduler",
        "KDPM2DiscreteScheduler",
        "KDPM2AncestralDiscreteScheduler",
        "DEISMultistepScheduler",
        "UniPCMultistepScheduler",
        "DPMSolverSDEScheduler",
        "EDMEulerScheduler",
    }
)

# Sources drawn by generation.backends.procedural instead of a diffusers pipeline.
PROCEDURAL_PREFIX = "procedural:"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

ERROR_NAME_EMPTY = "A generator needs a name."
ERROR_SOURCE_EMPTY = "A generator needs a source: a local pipeline folder or a hub id."
ERROR_FOLDER_MISSING = "The pipeline folder {source} does not exist."
ERROR_NOT_A_PIPELINE = "{source} has no model_index.json, so it is not a diffusers pipeline folder."
ERROR_BAD_MODEL_INDEX = "{source}/model_index.json is not valid JSON."
ERROR_BAD_SOURCE = "{source} is neither an existing folder nor a hub id like owner/name."
ERROR_BAD_PROCEDURAL = "{source} is not a procedural model; use one of {allowed}."
ERROR_BAD_PIPELINE_CLASS = (
    "{name} is not a diffusers pipeline class name (e.g. StableDiffusionPipeline)."
)
ERROR_BAD_SCHEDULER_NAME = "{name} is not a diffusers scheduler class name (e.g. DDIMScheduler)."
ERROR_UNKNOWN_SCHEDULER = "Unknown scheduler {name} for this pipeline; compatible: {allowed}."
ERROR_BAD_STEPS = f"Steps must be a whole number from 1 to {MAX_STEPS}."
ERROR_BAD_GUIDANCE = f"Guidance must be a number from 0 to {MAX_GUIDANCE:g}."
ERROR_BAD_SIZE = (
    f"{{field}} must be a multiple of {SIZE_MULTIPLE} from {MIN_SIZE} to {MAX_SIZE} pixels,"
    " got {value}."
)
ERROR_BAD_DTYPE = "dtype must be one of " + ", ".join(DTYPES) + "; got {value}."
ERROR_BAD_EXTRA = "{field} must be a JSON object (a dict with string keys)."
ERROR_LORA_MISSING = "The LoRA folder {path} does not exist."
ERROR_LORA_EMPTY = "The LoRA folder {path} has no .safetensors weights."


class SpecError(ValueError):
    """A spec is unusable. ``errors`` maps each offending field to its message.

    A Django ``clean()`` can re-raise it as ``ValidationError(error.errors)``.
    """

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


@dataclass(frozen=True)
class GeneratorSpec:
    """One way of turning prompts into images.

    name: label shown to admins and stored with each image.
    source: a local pipeline folder (with model_index.json) or a hub id ("owner/name").
    pipeline_class: a diffusers pipeline class name; None means the one in model_index.json.
    scheduler: a scheduler class name compatible with the pipeline; None keeps the saved one.
    scheduler_options: extra scheduler config, e.g. {"use_karras_sigmas": True}.
    steps, guidance, width, height: the denoising steps, CFG scale and image size in pixels.
    dtype: weights' precision; "auto" is float16 on a GPU and float32 on CPU.
    negative_prompt: used for items that bring none of their own.
    extra: further keyword arguments for the pipeline call (e.g. {"guidance_rescale": 0.7}).
    lora_path: a folder with LoRA weights in diffusers' format (what the trainer saves), fused
        into the loaded weights; None for the plain model.
    """

    name: str
    source: str
    pipeline_class: str | None = None
    scheduler: str | None = None
    scheduler_options: dict[str, Any] = field(default_factory=dict)
    steps: int = 25
    guidance: float = 7.5
    width: int = 512
    height: int = 512
    dtype: str = "auto"
    negative_prompt: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    lora_path: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorSpec:
        """From a stored row or JSON; unknown keys are an error, not silently dropped."""
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def loading_key(self) -> tuple:
        """The fields that decide which weights are loaded (and so the pipeline cache key).

        Scheduler, steps, size and the rest are applied per call on the loaded pipeline.
        """
        return (self.source, self.pipeline_class, self.dtype, self.lora_path)


def procedural_faithfulness(source: str) -> str | None:
    """ "faithful" for "procedural:faithful"; None for a source that is not procedural."""
    from .scenes import FAITHFULNESS

    source = (source or "").strip()
    if not source.startswith(PROCEDURAL_PREFIX):
        return None
    faithfulness = source.removeprefix(PROCEDURAL_PREFIX)
    return faithfulness if faithfulness in FAITHFULNESS else None


def procedural_sources() -> tuple[str, ...]:
    from .scenes import FAITHFULNESS

    return tuple(PROCEDURAL_PREFIX + name for name in FAITHFULNESS)


def is_local_source(source: str) -> bool:
    """Local when the folder exists or the text can only be a path (absolute, ./, ~, ..)."""
    if Path(source).expanduser().exists():
        return True
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source


def read_model_index(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "model_index.json").read_text(encoding="utf-8"))


def saved_scheduler_class(folder: Path) -> str | None:
    config = folder / "scheduler" / "scheduler_config.json"
    if not config.exists():
        return None
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("_class_name")
    except ValueError:
        return None


def compatible_scheduler_names(saved: str | None) -> frozenset[str] | None:
    """Scheduler names usable in place of the saved one; None when it cannot be known here."""
    if saved is None:
        return None
    if saved in KARRAS_SCHEDULERS:
        return KARRAS_SCHEDULERS
    return frozenset({saved})


def _check_source(spec: GeneratorSpec, errors: dict[str, str]) -> Path | None:
    """Returns the local folder when the source is one and looks like a pipeline."""
    source = (spec.source or "").strip()
    if not source:
        errors["source"] = ERROR_SOURCE_EMPTY
        return None
    if source.startswith(PROCEDURAL_PREFIX):
        if procedural_faithfulness(source) is None:
            errors["source"] = ERROR_BAD_PROCEDURAL.format(
                source=source, allowed=", ".join(procedural_sources())
            )
        return None
    if not is_local_source(source):
        if not HUB_ID.match(source):
            errors["source"] = ERROR_BAD_SOURCE.format(source=source)
        return None
    folder = Path(source).expanduser()
    if not folder.is_dir():
        errors["source"] = ERROR_FOLDER_MISSING.format(source=source)
        return None
    if not (folder / "model_index.json").is_file():
        errors["source"] = ERROR_NOT_A_PIPELINE.format(source=source)
        return None
    try:
        read_model_index(folder)
    except ValueError:
        errors["source"] = ERROR_BAD_MODEL_INDEX.format(source=source)
        return None
    return folder


def _check_scheduler(spec: GeneratorSpec, folder: Path | None, errors: dict[str, str]) -> None:
    if spec.scheduler is None:
        return
    if not CLASS_NAME.match(spec.scheduler) or not spec.scheduler.endswith("Scheduler"):
        errors["scheduler"] = ERROR_BAD_SCHEDULER_NAME.format(name=spec.scheduler)
        return
    # Without a local folder the saved scheduler is unknown here; the worker checks on load.
    allowed = compatible_scheduler_names(saved_scheduler_class(folder)) if folder else None
    if allowed is not None and spec.scheduler not in allowed:
        errors["scheduler"] = ERROR_UNKNOWN_SCHEDULER.format(
            name=spec.scheduler, allowed=", ".join(sorted(allowed))
        )


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_spec(spec: GeneratorSpec) -> GeneratorSpec:
    """Check a spec without loading weights; raise SpecError naming every bad field."""
    errors: dict[str, str] = {}
    if not (spec.name or "").strip():
        errors["name"] = ERROR_NAME_EMPTY
    folder = _check_source(spec, errors)
    if spec.pipeline_class is not None and (
        not CLASS_NAME.match(spec.pipeline_class) or not spec.pipeline_class.endswith("Pipeline")
    ):
        errors["pipeline_class"] = ERROR_BAD_PIPELINE_CLASS.format(name=spec.pipeline_class)
    _check_scheduler(spec, folder, errors)
    if not _is_whole(spec.steps) or not 1 <= spec.steps <= MAX_STEPS:
        errors["steps"] = ERROR_BAD_STEPS
    if not _is_number(spec.guidance) or not 0 <= spec.guidance <= MAX_GUIDANCE:
        errors["guidance"] = ERROR_BAD_GUIDANCE
    for name in ("width", "height"):
        value = getattr(spec, name)
        if not _is_whole(value) or not MIN_SIZE <= value <= MAX_SIZE or value % SIZE_MULTIPLE:
            errors[name] = ERROR_BAD_SIZE.format(field=name.capitalize(), value=value)
    if spec.dtype not in DTYPES:
        errors["dtype"] = ERROR_BAD_DTYPE.format(value=spec.dtype)
    for name in ("scheduler_options", "extra"):
        value = getattr(spec, name)
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            errors[name] = ERROR_BAD_EXTRA.format(field=name)
    if spec.lora_path:
        lora = Path(spec.lora_path).expanduser()
        if not lora.is_dir():
            errors["lora_path"] = ERROR_LORA_MISSING.format(path=spec.lora_path)
        elif not any(lora.glob("*.safetensors")):
            errors["lora_path"] = ERROR_LORA_EMPTY.format(path=spec.lora_path)
    if errors:
        raise SpecError(errors)
    return spec
