"""Which local model folders the web side may point the workers at.

Generators and training jobs name a pipeline (or LoRA) folder on the workers' disks. Only
folders inside PICKWISE_MODEL_ROOTS, or inside TRAINING_ROOT where tuned models are written,
are accepted: otherwise anyone who may define a generator or start a training job could make a
worker read, load or copy an arbitrary path of the server. Symbolic links are resolved first,
so a link inside a root that points outside it is refused too.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

ERROR_OUTSIDE_ROOTS = (
    "{path} is outside the model folders this server accepts ({roots}); "
    "put the model under one of them or add its folder to PICKWISE_MODEL_ROOTS."
)


def model_roots() -> list[Path]:
    roots = [*settings.PICKWISE_MODEL_ROOTS, settings.TRAINING_ROOT]
    return [Path(root).expanduser().resolve() for root in roots]


def model_folder_allowed(path: str | Path) -> bool:
    folder = Path(path).expanduser().resolve()
    return any(folder.is_relative_to(root) for root in model_roots())


def model_folder_error(path: str | Path) -> str | None:
    """The refusal message for a folder outside the roots, or None when it is allowed."""
    if model_folder_allowed(path):
        return None
    return ERROR_OUTSIDE_ROOTS.format(
        path=path, roots=", ".join(str(root) for root in model_roots())
    )


def model_folder_choices(*, limit: int = 200) -> list[Path]:
    """Diffusers pipeline folders (with model_index.json) directly inside a model root or one
    level below it, for forms that offer a choice instead of a free path. TRAINING_ROOT is not
    searched: it holds LoRA weights and checkpoints, not pipelines."""
    found: set[Path] = set()
    for root in settings.PICKWISE_MODEL_ROOTS:
        root = Path(root).expanduser().resolve()
        for pattern in ("*/model_index.json", "*/*/model_index.json"):
            found.update(index.parent for index in root.glob(pattern))
    return sorted(found)[:limit]
