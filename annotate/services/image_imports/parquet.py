"""Reading a Pick-a-Pic parquet file, streamed in small batches with pyarrow."""

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.contrib.auth import get_user_model
from django.utils import timezone

from annotate.models import Campaign, Image
from annotate.services.image_imports.messages import (
    ACCOUNT_TAKEN,
    BAD_CREATED_AT,
    BAD_LABELS,
    BAD_MODEL_NAME,
    BAD_PROMPT,
    BAD_USER_ID,
    BEST_DISAGREES,
    NOT_A_PARQUET,
    PARQUET_COLUMNS,
    PARQUET_NEEDS_PAIRWISE,
    PARQUET_NOT_UTF8,
    SAME_IMAGE,
    TIE_NOT_ALLOWED,
    UID_OTHER_PROMPT,
)
from annotate.services.image_imports.plan import (
    CHECKING,
    PROGRESS_EVERY,
    ImageItem,
    ImportPlan,
    LabelRow,
    Progress,
    RowErrors,
    check_row_count,
    chunks,
    prompt_text,
    rater_username,
    tell,
)
from annotate.uploads import check_image_bytes
from pickwise.errors import ApplicationError
from pickwise.text_input import record_problem

PARQUET_BATCH_ROWS = 32  # two images a row: a batch holds at most 64 images in memory
PARQUET_IMAGE_COLUMNS = ["caption", "jpg_0", "jpg_1", "model_0", "model_1"]
PARQUET_UID_COLUMNS = ["image_0_uid", "image_1_uid"]
PARQUET_LABEL_COLUMNS = ["label_0", "label_1", "user_id"]
PARQUET_OPTIONAL_LABEL_COLUMNS = ["best_image_uid", "created_at"]
USER_ID = re.compile(r"^[\w.@+-]{1,100}$")


def _uid_key(value: Any, row: int, side: int) -> tuple[str, uuid.UUID | None]:
    """The image's identity in this file: its uid when it has one, else its row and side."""
    if isinstance(value, str) and value.strip():
        try:
            parsed = uuid.UUID(value.strip())
        except ValueError:
            return f"uid:{value.strip()}", None
        return f"uid:{parsed}", parsed
    return f"row:{row}:{side}", None


def _label_winner(record: dict, uids: tuple[Any, Any]) -> int | None | str:
    """0 or 1 for the preferred image, None for a tie, or an error message."""
    labels = (record.get("label_0"), record.get("label_1"))
    pairs = {(1.0, 0.0): 0, (0.0, 1.0): 1, (0.5, 0.5): None}
    try:
        key = (float(labels[0]), float(labels[1]))
    except (TypeError, ValueError):
        return BAD_LABELS
    if key not in pairs:
        return BAD_LABELS
    winner = pairs[key]
    best = record.get("best_image_uid")
    best = best.strip().lower() if isinstance(best, str) else ""
    if winner is not None and best not in ("", "none") and best != str(uids[winner]).lower():
        return BEST_DISAGREES
    return winner


def _cell_bytes(value: Any) -> bytes:
    # Binary as in Pick-a-Pic, or the `datasets` Image struct {bytes, path}.
    if isinstance(value, dict):
        value = value.get("bytes")
    return value if isinstance(value, bytes) else b""


def _user_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and USER_ID.match(value.strip()):
        return value.strip()
    return None


def _created_at(value: Any) -> datetime | None:
    if value is None:
        return timezone.now()
    if not isinstance(value, datetime):  # pandas' Timestamp is a datetime too
        return None
    if value.tzinfo is None:  # Pick-a-Pic stores UTC without a zone
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return datetime(*value.timetuple()[:6], value.microsecond, tzinfo=UTC)


def _parquet_open(file: str | Path | BinaryIO):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(file)
    except (pa.ArrowException, OSError, ValueError):
        raise ApplicationError(NOT_A_PARQUET, code="invalid_file") from None


def _parquet_batches(parquet, columns: list[str]) -> Iterator[list[dict]]:
    import pyarrow as pa

    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            yield batch.to_pylist()
    except UnicodeDecodeError:  # a string column holding bytes that are not UTF-8
        raise ApplicationError(PARQUET_NOT_UTF8, code="invalid_file") from None
    except (pa.ArrowException, OSError, ValueError):
        raise ApplicationError(NOT_A_PARQUET, code="invalid_file") from None


def parquet_open(
    *, campaign: Campaign, file: str | Path | BinaryIO, with_labels: bool
) -> tuple[Any, list[str]]:
    """The parquet file and the columns to read, after the checks its footer allows (the
    campaign's kind, columns, row count): cheap enough to run while the upload waits."""
    if campaign.kind != Campaign.Kind.PAIRWISE:
        raise ApplicationError(PARQUET_NEEDS_PAIRWISE, code="wrong_kind")
    parquet = _parquet_open(file)
    present = set(parquet.schema_arrow.names)
    needed = PARQUET_IMAGE_COLUMNS + PARQUET_UID_COLUMNS
    if with_labels:
        needed = needed + PARQUET_LABEL_COLUMNS
    missing = [c for c in needed if c not in present]
    if missing:
        raise ApplicationError(
            PARQUET_COLUMNS.format(missing=", ".join(missing)), code="invalid_file"
        )
    check_row_count(parquet.metadata.num_rows)  # from the footer, before reading any row
    return parquet, needed


def plan_parquet(
    *, campaign: Campaign, file: str | Path | BinaryIO, with_labels: bool, progress: Progress
) -> ImportPlan:
    parquet, needed = parquet_open(campaign=campaign, file=file, with_labels=with_labels)
    present = set(parquet.schema_arrow.names)
    total = parquet.metadata.num_rows
    optional = [c for c in PARQUET_OPTIONAL_LABEL_COLUMNS if with_labels and c in present]
    allow_tie = bool(campaign.criteria[0].get("allow_tie"))
    errors = RowErrors("row")
    prompts: dict[str, int] = {}
    items: dict[str, ImageItem] = {}
    first_row: dict[str, int] = {}
    labels: list[LabelRow] = []
    row = -1
    for batch in _parquet_batches(parquet, needed + optional):
        for record in batch:
            row += 1
            check_row_count(row + 1)  # the footer's count might not be the truth
            if row % PROGRESS_EVERY == 0 and row:
                tell(progress, CHECKING, row, total, "rows")
            if problem := record_problem(record):
                errors.add(row, problem)
                continue
            text = prompt_text(record["caption"])
            if text is None:
                errors.add(row, BAD_PROMPT)
                continue
            keys = []
            for side in (0, 1):
                key, wanted = _uid_key(record[f"image_{side}_uid"], row, side)
                keys.append(key)
                if key in items:
                    if items[key].prompt != text:
                        errors.add(row, UID_OTHER_PROMPT.format(uid=key[4:], row=first_row[key]))
                    continue
                model_name = record[f"model_{side}"] or ""
                if not isinstance(model_name, str) or len(model_name) > 200:
                    errors.add(row, BAD_MODEL_NAME)
                    continue
                try:
                    image = check_image_bytes(_cell_bytes(record[f"jpg_{side}"]))
                except ApplicationError as exc:
                    errors.add(row, f"jpg_{side}: {exc.message}")
                    continue
                items[key] = ImageItem(
                    (row, side),
                    text,
                    model_name,
                    None,
                    image.sha256,
                    image.extension,
                    image.width,
                    image.height,
                    wanted,
                )
                first_row[key] = row
            if len(keys) == 2 and all(k in items for k in keys):
                a, b = items[keys[0]], items[keys[1]]
                if keys[0] == keys[1] or a.sha256 == b.sha256:
                    errors.add(row, SAME_IMAGE)
                    continue
            prompts.setdefault(text, row)
            if with_labels:
                label = _plan_label(record, row, keys, allow_tie, campaign, errors)
                if label is not None:
                    labels.append(label)
    errors.raise_if_any()
    wanted_uids = [i.wanted_uid for i in items.values() if i.wanted_uid is not None]
    taken = set()
    for chunk in chunks(wanted_uids):
        taken.update(Image.objects.filter(uid__in=chunk).values_list("uid", flat=True))
    if labels:
        _check_rater_names(campaign=campaign, user_ids={label.user_id for label in labels})
    image_columns = ["jpg_0", "jpg_1"]
    by_ref = {item.ref: key for key, item in items.items()}

    def reread() -> Iterator[tuple[str, bytes]]:
        row = -1
        for batch in _parquet_batches(parquet, image_columns):
            for record in batch:
                row += 1
                for side in (0, 1):
                    key = by_ref.get((row, side))
                    if key is not None:
                        yield key, _cell_bytes(record[f"jpg_{side}"])

    return ImportPlan(
        campaign=campaign,
        prompts=prompts,
        items=items,
        read=reread,
        labels=labels,
        taken_uids=taken,
    )


def _plan_label(
    record: dict, row: int, keys: list[str], allow_tie: bool, campaign: Campaign, errors: RowErrors
) -> LabelRow | None:
    winner = _label_winner(record, (record["image_0_uid"], record["image_1_uid"]))
    if isinstance(winner, str):
        errors.add(row, winner)
        return None
    if winner is None and not allow_tie:
        errors.add(row, TIE_NOT_ALLOWED.format(key=campaign.criteria[0]["key"]))
        return None
    user_id = _user_id(record["user_id"])
    if user_id is None:
        errors.add(row, BAD_USER_ID)
        return None
    created_at = _created_at(record.get("created_at"))
    if created_at is None:
        errors.add(row, BAD_CREATED_AT)
        return None
    return LabelRow(row, keys[0], keys[1], winner, user_id, created_at)


def _check_rater_names(*, campaign: Campaign, user_ids: set[str]) -> None:
    """Imported raters get their own inactive accounts; never reuse someone's real one."""
    names = [rater_username(campaign, u) for u in sorted(user_ids)]
    for chunk in chunks(names):
        for user in get_user_model().objects.filter(username__in=chunk):
            if user.is_active or user.has_usable_password():
                raise ApplicationError(
                    ACCOUNT_TAKEN.format(username=user.username), code="account_taken"
                )
