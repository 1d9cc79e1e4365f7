"""The plan a checked import writes, its result, and helpers shared by the readers."""

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings

from annotate.models import Campaign
from annotate.services.image_imports.messages import BAD_ROWS, NO_ROWS, TOO_MANY_ROWS
from annotate.services.prompts import MAX_PROMPT_BYTES, MAX_PROMPT_CHARS, MAX_REPORTED_ERRORS
from pickwise.errors import ApplicationError

CHUNK = 500
PROGRESS_EVERY = 500


@dataclass(frozen=True, slots=True)
class Step:
    """Where an import has got to: `done` of `total` lines, rows, images or judgments."""

    phase: str  # "checking" or "writing"
    done: int
    total: int
    unit: str

    def __str__(self) -> str:
        verb = "checked" if self.phase == CHECKING else "stored"
        return f"{verb} {self.done}/{self.total} {self.unit}"


CHECKING = "checking"
WRITING = "writing"
Progress = Callable[[Step], None] | None


@dataclass(slots=True)
class ImageItem:
    """One image to import: where to re-read it and what its first check found."""

    ref: Any  # member name, folder path, or (parquet row, side)
    prompt: str
    model_name: str
    seed: int | None
    sha256: str
    extension: str
    width: int
    height: int
    wanted_uid: uuid.UUID | None = None


@dataclass(slots=True)
class LabelRow:
    row: int
    image_0: str  # item keys
    image_1: str
    winner: int | None  # 0, 1 or None for a tie
    user_id: str
    created_at: datetime


@dataclass
class ImportPlan:
    """What a checked import will write; `read` yields each item with its bytes again."""

    campaign: Campaign
    prompts: dict[str, int]  # text -> first line or row
    items: dict[str, ImageItem]  # key -> item, in first-seen order
    read: Callable[[], Iterator[tuple[str, bytes]]]
    labels: list[LabelRow] = field(default_factory=list)
    taken_uids: set[uuid.UUID] = field(default_factory=set)


@dataclass
class ImageImportResult:
    prompts_created: int = 0
    prompts_existing: int = 0
    images_created: int = 0
    images_existing: int = 0
    raters_created: int = 0
    judgments_created: int = 0
    judgments_existing: int = 0
    comparisons_created: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class RowErrors:
    """Row errors with their location; all of them are reported, the first 50 in full."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[dict] = []

    def add(self, position: int, message: str) -> None:
        self.items.append({self.where: position, "error": message})

    def raise_if_any(self) -> None:
        if self.items:
            raise ApplicationError(
                BAD_ROWS.format(count=len(self.items)),
                code="invalid_rows",
                extra={"errors": self.items[:MAX_REPORTED_ERRORS]},
            )


class Unreadable(Exception):
    """A file named by the manifest that is missing, outside the import, or corrupt."""


def tell(progress: Progress, phase: str, done: int, total: int, unit: str) -> None:
    if progress is not None:
        progress(Step(phase, done, total, unit))


def check_row_count(count: int) -> None:
    limit = settings.PICKWISE_MAX_IMPORT_ROWS
    if count > limit:
        raise ApplicationError(TOO_MANY_ROWS.format(count=count, limit=limit), code="too_many")
    if count == 0:
        raise ApplicationError(NO_ROWS, code="empty")


def prompt_text(value: Any) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_PROMPT_CHARS:
        return None
    return text if len(text.encode("utf-8")) <= MAX_PROMPT_BYTES else None


def chunks(values: list, size: int = CHUNK) -> Iterable[list]:
    """Slices of at most `size`, to keep `__in` lookups within the database's limits."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def rater_username(campaign: Campaign, user_id: str) -> str:
    return f"imported-{campaign.pk}-{user_id}"
