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

# One answer for a folder outside the roots and a missing one, naming no server path:
# otherwise the answer tells whether any path on the server exists.
ERROR_MODEL_FOLDER_UNAVAILABLE = (
    "{field} is not a model folder this server offers: name an existing folder under the "
    "configured model folders (PICKWISE_MODEL_ROOTS)."
)


def model_roots() -> list[Path]:
    roots = [*settings.PICKWISE_MODEL_ROOTS, settings.TRAINING_ROOT]
    return [Path(root).expanduser().resolve() for root in roots]


def _resolved(path: str | Path) -> Path | None:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):  # a loop of links, a NUL byte
        return None


def model_folder_allowed(path: str | Path) -> bool:
    folder = _resolved(path)
    return folder is not None and any(folder.is_relative_to(root) for root in model_roots())


def model_folder_error(path: str | Path, *, field: str = "The model folder") -> str | None:
    """None for an existing file or folder inside the roots; otherwise the one refusal
    message, the same whether the path is forbidden or missing."""
    folder = _resolved(path)
    if folder is None or not model_folder_allowed(folder) or not folder.exists():
        return ERROR_MODEL_FOLDER_UNAVAILABLE.format(field=field)
    return None


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
