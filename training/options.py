"""The trainer's options as a training job sets them, derived from ``training.trainer.config``.

Names, types, defaults and constraints all come from the fields of ``DPOConfig`` (which
imports no torch), and so do the checks of combinations; this module adds only what the web
side needs on top: values arriving as JSON are typed here, and problems are sentences. Checks
that depend on the worker (fp16 needs CUDA, bitsandbytes installed) still run in the trainer
at start, and fail the job with the trainer's own message.
"""

from __future__ import annotations

import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.trainer.config import FIELDS as CONFIG_FIELDS
from training.trainer.config import (
    JOB_OPTIONS,
    METHODS,  # noqa: F401 (the web side's name for them)
    MODES,  # noqa: F401
    RESOLUTION_PROBLEM,
    DPOConfig,
    combination_problems,
    default_of,
    field_problem,
)

ERROR_UNKNOWN_OPTIONS = "Unknown training options: {names}."
ERROR_BAD_TYPE = "{name} must be {kind}."
ERROR_RESOLUTION = RESOLUTION_PROBLEM + "."


@dataclass(frozen=True)
class Option:
    kind: type  # int, float, bool or str
    default: Any  # the trainer's default (None: resolved by the trainer from mode and device)
    positive: bool = False
    non_negative: bool = False
    choices: tuple[str, ...] | None = None


def _kind(annotation: Any) -> type:
    """int, float, bool or str for a field's type (Path and optional values: their base)."""
    if isinstance(annotation, typing.types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return str if annotation is Path else annotation


def _option(name: str, annotation: Any) -> Option:
    spec = CONFIG_FIELDS[name]
    default = spec.default
    return Option(
        kind=_kind(annotation),
        default=str(default) if isinstance(default, Path) else default,
        positive=spec.metadata["positive"],
        non_negative=spec.metadata["non_negative"],
        choices=spec.metadata["choices"],
    )


_HINTS = typing.get_type_hints(DPOConfig)
OPTIONS: dict[str, Option] = {name: _option(name, _HINTS[name]) for name in JOB_OPTIONS}

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
        if (problem := field_problem(name, value)) is not None:
            problems.append(problem + ".")
        cleaned[name] = value
    # Whether a reference_model folder exists and is allowed: training.services.jobs.
    together = combination_problems({**cleaned, "method": method, "mode": mode})
    problems += [problem + "." for problem in together]
    return cleaned, problems


def max_steps_of(options: dict[str, Any]) -> int:
    return options.get("max_train_steps") or default_of("max_train_steps")


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
