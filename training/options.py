"""The trainer's hyper-parameters as the web side accepts them, checked without torch.

The web process never imports torch, and ``training.dpo`` does, so this module mirrors the
part of ``DPOConfig`` a job may set (names, types, defaults) and the checks of
``DPOConfig.validate`` that do not need the worker's hardware; tests hold the two together.
Checks that depend on the worker (fp16 needs CUDA, bitsandbytes installed) still run in the
trainer at start, and fail the job with the trainer's own message.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METHODS = ("dpo", "mapo", "rankdpo")
MODES = ("lora", "full")
MIXED_PRECISIONS = ("no", "bf16", "fp16")
ACTIVATION_CHECKPOINTING = ("none", "selective", "full")

ERROR_UNKNOWN_OPTIONS = "Unknown training options: {names}."
ERROR_BAD_TYPE = "{name} must be {kind}."
ERROR_BAD_CHOICE = "{name} must be one of {choices}, not {value!r}."
ERROR_NOT_POSITIVE = "{name} must be > 0."
ERROR_NEGATIVE = "{name} must be >= 0."
ERROR_RESOLUTION = "resolution must be a positive multiple of 8, not {value}."
ERROR_PROMPT_DROPOUT = "prompt_dropout must be in [0, 1)."
ERROR_MAPO_REFERENCE = "MaPO is reference-free: drop reference_model."
ERROR_LORA_REFERENCE = (
    "reference_model needs mode full (LoRA's reference is the base UNet with the adapters "
    "disabled)."
)
ERROR_FULL_LORA_OPTIONS = "lora_rank and lora_alpha apply to mode lora, not full."
ERROR_CHECKPOINTING_CONFLICT = (
    "gradient_checkpointing means activation_checkpointing full, not {value}: drop one of them."
)


@dataclass(frozen=True)
class Option:
    kind: type  # int, float, bool or str
    default: Any  # the trainer's default (None: resolved by the trainer from mode and device)
    positive: bool = False
    non_negative: bool = False
    choices: tuple[str, ...] | None = None


# Names and defaults as in training.dpo.DPOConfig (tests compare them).
OPTIONS: dict[str, Option] = {
    "beta": Option(float, 5000.0, positive=True),
    "mapo_beta": Option(float, 0.1),
    "mapo_temperature": Option(float, 1000.0, positive=True),
    "mapo_alpha": Option(float, 0.5, positive=True),
    "reference_model": Option(str, None),
    "lora_rank": Option(int, None, positive=True),
    "lora_alpha": Option(int, None, positive=True),
    "learning_rate": Option(float, None, positive=True),
    "lr_warmup_steps": Option(int, None, non_negative=True),
    "train_batch_size": Option(int, 8, positive=True),
    "gradient_accumulation_steps": Option(int, 1, positive=True),
    "max_train_steps": Option(int, 2000, positive=True),
    "resolution": Option(int, 512),  # a positive multiple of 8, checked with its own message
    "random_flip": Option(bool, True),
    "prompt_dropout": Option(float, None),
    "mixed_precision": Option(str, None, choices=MIXED_PRECISIONS),
    "gradient_checkpointing": Option(bool, False),
    "activation_checkpointing": Option(str, None, choices=ACTIVATION_CHECKPOINTING),
    "channels_last": Option(bool, False),
    "torch_compile": Option(bool, False),
    "use_8bit_adam": Option(bool, False),
    "adam_beta1": Option(float, 0.9),
    "adam_beta2": Option(float, 0.999),
    "adam_weight_decay": Option(float, 1e-2),
    "adam_epsilon": Option(float, 1e-8),
    "max_grad_norm": Option(float, 1.0, positive=True),
    "allow_tf32": Option(bool, True),
    "seed": Option(int, 0, non_negative=True),
    "checkpointing_steps": Option(int, 500, positive=True),
    "checkpoints_total_limit": Option(int, 3, positive=True),
    "encode_batch_size": Option(int, 8, positive=True),
    "dataloader_num_workers": Option(int, 2, non_negative=True),
    "mse_warning_window": Option(int, 50, positive=True),
}

_KIND_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _typed(name: str, option: Option, value: Any) -> Any:
    """The value in the option's type, or ValueError with the message to show."""
    is_bool = isinstance(value, bool)
    if option.kind is bool and is_bool:
        return value
    if option.kind is int and isinstance(value, int) and not is_bool:
        return value
    if option.kind is float and isinstance(value, int | float) and not is_bool:
        return float(value)
    if option.kind is str and isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(ERROR_BAD_TYPE.format(name=name, kind=_KIND_NAMES[option.kind]))


def options_clean(*, mode: str, method: str, options: dict[str, Any]) -> tuple[dict, list[str]]:
    """(the options in their types, problems found); None values mean the trainer's default."""
    problems: list[str] = []
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        problems.append(ERROR_UNKNOWN_OPTIONS.format(names=", ".join(unknown)))
    cleaned: dict[str, Any] = {}
    for name, value in options.items():
        option = OPTIONS.get(name)
        if option is None or value is None:
            continue
        try:
            value = _typed(name, option, value)
        except ValueError as error:
            problems.append(str(error))
            continue
        if option.choices and value not in option.choices:
            problems.append(ERROR_BAD_CHOICE.format(name=name, choices=option.choices, value=value))
        elif option.positive and not value > 0:
            problems.append(ERROR_NOT_POSITIVE.format(name=name))
        elif option.non_negative and value < 0:
            problems.append(ERROR_NEGATIVE.format(name=name))
        cleaned[name] = value
    resolution = cleaned.get("resolution", OPTIONS["resolution"].default)
    if resolution <= 0 or resolution % 8:
        problems.append(ERROR_RESOLUTION.format(value=resolution))
    dropout = cleaned.get("prompt_dropout")
    if dropout is not None and not 0 <= dropout < 1:
        problems.append(ERROR_PROMPT_DROPOUT)
    reference = cleaned.get("reference_model")
    if reference is not None:
        if method == "mapo":
            problems.append(ERROR_MAPO_REFERENCE)
        if mode == "lora":
            problems.append(ERROR_LORA_REFERENCE)
        # Whether the folder exists and is allowed: training.services.jobs (model roots).
    checkpointing = cleaned.get("activation_checkpointing")
    if cleaned.get("gradient_checkpointing") and checkpointing not in (None, "full"):
        problems.append(ERROR_CHECKPOINTING_CONFLICT.format(value=checkpointing))
    if mode == "full" and ("lora_rank" in cleaned or "lora_alpha" in cleaned):
        problems.append(ERROR_FULL_LORA_OPTIONS)
    return cleaned, problems


def max_steps_of(options: dict[str, Any]) -> int:
    return options.get("max_train_steps") or OPTIONS["max_train_steps"].default


def trainer_argv(
    *,
    data: str,
    pretrained: str,
    output: str,
    method: str,
    mode: str,
    options: dict[str, Any],
    resume: bool,
) -> list[str]:
    """`python -m training.dpo ...` for a job; resume: continue from the latest checkpoint."""
    argv = [sys.executable, "-m", "training.dpo", "--data", data, "--pretrained", pretrained]
    argv += ["--output", output, "--method", method, "--mode", mode]
    argv += ["--metrics-file", str(Path(output) / "metrics.jsonl")]
    argv += ["--resume", "auto" if resume else "never"]
    for name, value in sorted(options.items()):
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            argv += [flag, str(value)]
    return argv
