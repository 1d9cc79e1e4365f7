"""Importing images: a zip or a folder with manifest.csv, or a Pick-a-Pic parquet file.

Two phases, so an import either completes or leaves nothing behind:
1. `images_import_check` reads every row and checks every image (annotate.uploads) without
   writing anything, and reports all bad rows at once with their line (manifest) or row
   index (parquet). Image bytes are not kept: the plan holds hashes and where to re-read.
2. `images_import_apply` re-reads the images and writes prompts, images and, for parquet
   with labels, imported raters' judgments in one transaction; files it newly wrote to
   storage are removed again if that transaction fails.
Re-running an import changes nothing: prompts dedupe by text, images by (prompt, sha256),
and a rater's judgments on a pair by their count.
"""

import csv
import hashlib
import io
import re
import uuid
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.db.models import Count, Max
from django.utils import timezone

from annotate.criteria import TIE
from annotate.models import (
    Assignment,
    Campaign,
    Comparison,
    Image,
    Judgment,
    Membership,
    Prompt,
    image_upload_path,
)
from annotate.services.campaigns import membership_set
from annotate.services.comparisons import (
    comparison_key,
    comparisons_build_for_prompt,
    comparisons_create,
)
from annotate.services.images import image_create
from annotate.services.prompts import MAX_PROMPT_CHARS, MAX_REPORTED_ERRORS, PromptRow, prompts_add
from annotate.uploads import check_image_bytes
from pickwise.errors import ApplicationError

UNKNOWN_SOURCE = "Upload a .zip with manifest.csv or a Pick-a-Pic .parquet file."
NOT_A_ZIP = "The archive is not a readable zip file."
NOT_A_PARQUET = "The file is not a readable parquet file."
NO_MANIFEST = "The import has no manifest.csv."
MANIFEST_TOO_LARGE = "manifest.csv is {size} bytes; the limit is {limit}."
MANIFEST_NOT_UTF8 = "manifest.csv is not UTF-8 text."
MANIFEST_COLUMNS = "manifest.csv needs the columns prompt, file and model_name; it lacks {missing}."
TOO_MANY_MEMBERS = "The archive has {count} members; the limit is {limit}."
ARCHIVE_TOO_LARGE = "The archive expands to {size} bytes; the limit is {limit}."
TOO_MANY_ROWS = "The import has {count} rows; the limit is {limit}."
TOO_MANY_PROMPTS = "The import names {count} prompts; the limit is {limit}."
NO_ROWS = "The import has no rows."
PARQUET_COLUMNS = "The parquet file lacks the columns {missing}."
PARQUET_NEEDS_PAIRWISE = "Pick-a-Pic parquet files can only be imported into pairwise campaigns."
LABELS_NEED_PARQUET = "Labels can only be imported from a Pick-a-Pic parquet file."
FOLDER_MISSING = "{path} is not a folder."
BAD_ROWS = "{count} bad row(s); nothing was imported."
FILE_CHANGED = "{name} changed while it was being imported; nothing was imported."
FILE_GONE = "{problem} It was readable when checked; nothing was imported."
ACCOUNT_TAKEN = "User {username} exists and is not an imported rater."
# Row errors, reported with their line or row index.
MISSING_MEMBER = "{name!r} is not a file in the import."
OUTSIDE_FOLDER = "{name!r} points outside the import folder."
CORRUPT_MEMBER = "{name!r} cannot be read from the archive."
BAD_PROMPT = f"prompt must be non-empty and at most {MAX_PROMPT_CHARS} characters."
BAD_MODEL_NAME = "model_name must be at most 200 characters."
BAD_SEED = "seed must be a whole number."
SAME_IMAGE = "image 0 and image 1 are the same image."
UID_OTHER_PROMPT = "image uid {uid} appears with another caption in row {row}."
BAD_LABELS = "label_0 and label_1 must be 1/0, 0/1 or 0.5/0.5."
BEST_DISAGREES = "best_image_uid disagrees with label_0 and label_1."
TIE_NOT_ALLOWED = "a tie, but criterion {key!r} does not allow ties."
BAD_USER_ID = "user_id must be a whole number or a short name."
BAD_CREATED_AT = "created_at must be a timestamp."

MANIFEST = "manifest.csv"
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_SEED = 2**63 - 1
PARQUET_BATCH_ROWS = 32  # two images a row: a batch holds at most 64 images in memory
PARQUET_IMAGE_COLUMNS = ["caption", "jpg_0", "jpg_1", "model_0", "model_1"]
PARQUET_UID_COLUMNS = ["image_0_uid", "image_1_uid"]
PARQUET_LABEL_COLUMNS = ["label_0", "label_1", "user_id"]
PARQUET_OPTIONAL_LABEL_COLUMNS = ["best_image_uid", "created_at"]
USER_ID = re.compile(r"^[\w.@+-]{1,100}$")
CHUNK = 500
PROGRESS_EVERY = 500

Progress = Callable[[str], None] | None


@dataclass(slots=True)
class ImageItem:
    """One image to import: where to re-read it and what its first check found."""

    ref: Any  # member name, folder path, or (parquet row, side)
    prompt: str
    model_name: str
    seed: int | None
    sha256: str
    extension: str
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


class _Errors:
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


class _Unreadable(Exception):
    """A file named by the manifest that is missing, outside the import, or corrupt."""


def _tell(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)


def _row_limit(count: int) -> None:
    limit = settings.PICKWISE_MAX_IMPORT_ROWS
    if count > limit:
        raise ApplicationError(TOO_MANY_ROWS.format(count=count, limit=limit), code="too_many")
    if count == 0:
        raise ApplicationError(NO_ROWS, code="empty")


def _prompt_text(value: Any) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    return text if text and len(text) <= MAX_PROMPT_CHARS else None


# Manifest imports (zip and folder) ---------------------------------------------------------


def _manifest_records(data: bytes) -> list[tuple[int, dict[str, str]]]:
    if len(data) > MAX_MANIFEST_BYTES:
        raise ApplicationError(
            MANIFEST_TOO_LARGE.format(size=len(data), limit=MAX_MANIFEST_BYTES), code="too_large"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError(MANIFEST_NOT_UTF8, code="invalid_file") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("prompt", "file", "model_name") if c not in (reader.fieldnames or [])]
    if missing:
        raise ApplicationError(
            MANIFEST_COLUMNS.format(missing=", ".join(missing)), code="invalid_file"
        )
    try:
        records = [(reader.line_num, record) for record in reader]
    except csv.Error as exc:
        raise ApplicationError(
            f"manifest.csv error at line {reader.line_num}: {exc}", code="invalid_file"
        ) from None
    _row_limit(len(records))
    return records


def _plan_manifest(
    *, campaign: Campaign, data: bytes, read: Callable[[str], bytes], progress: Progress
) -> ImportPlan:
    """Check each manifest line; `read(name)` returns a file's bytes or raises _Unreadable."""
    errors = _Errors("line")
    prompts: dict[str, int] = {}
    items: dict[str, ImageItem] = {}
    checked: dict[str, tuple[str, str]] = {}  # file -> (sha256, extension)
    records = _manifest_records(data)
    for done, (line, record) in enumerate(records, start=1):
        text = _prompt_text(record.get("prompt"))
        model_name = (record.get("model_name") or "").strip()
        seed_text = (record.get("seed") or "").strip()
        name = (record.get("file") or "").strip()
        if text is None:
            errors.add(line, BAD_PROMPT)
            continue
        if len(model_name) > 200:
            errors.add(line, BAD_MODEL_NAME)
            continue
        seed = None
        if seed_text:
            try:
                seed = int(seed_text)
            except ValueError:
                seed = None
            if seed is None or not -MAX_SEED <= seed <= MAX_SEED:
                errors.add(line, BAD_SEED)
                continue
        if name not in checked:
            try:
                image = check_image_bytes(read(name))
            except _Unreadable as exc:
                errors.add(line, str(exc.args[0]))
                continue
            except ApplicationError as exc:
                errors.add(line, f"{name}: {exc.message}")
                continue
            checked[name] = (image.sha256, image.extension)
        sha256, extension = checked[name]
        prompts.setdefault(text, line)
        # The same file for the same prompt is one image; image_create would dedupe it anyway.
        items.setdefault(
            f"{text}\n{sha256}",
            ImageItem(name, text, model_name, seed, sha256, extension),
        )
        if done % PROGRESS_EVERY == 0:
            _tell(progress, f"checked {done}/{len(records)} lines")
    errors.raise_if_any()

    def reread() -> Iterator[tuple[str, bytes]]:
        for key, item in items.items():
            yield key, read(item.ref)

    return ImportPlan(campaign=campaign, prompts=prompts, items=items, read=reread)


def _zip_reader(archive: zipfile.ZipFile, base: str) -> Callable[[str], bytes]:
    limit = settings.PICKWISE_MAX_IMAGE_BYTES
    files = {i.filename: i for i in archive.infolist() if not i.is_dir()}

    def read(name: str) -> bytes:
        # Members are looked up by exact name and read in memory: nothing touches the disk,
        # so "../" in a name can only fail to match.
        info = files.get(base + name.removeprefix("./"))
        if info is None:
            raise _Unreadable(MISSING_MEMBER.format(name=name))
        try:
            with archive.open(info) as member:
                return member.read(limit + 1)  # one byte over is enough to refuse it
        except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError):
            # Corrupt, encrypted or oddly compressed.
            raise _Unreadable(CORRUPT_MEMBER.format(name=name)) from None

    return read


def _plan_zip(*, campaign: Campaign, file: BinaryIO, progress: Progress) -> ImportPlan:
    try:
        archive = zipfile.ZipFile(file)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ApplicationError(NOT_A_ZIP, code="invalid_file") from None
    # Limits come from the central directory, before a single member is decompressed.
    member_limit = settings.PICKWISE_MAX_ARCHIVE_MEMBERS
    if len(infos) > member_limit:
        raise ApplicationError(
            TOO_MANY_MEMBERS.format(count=len(infos), limit=member_limit), code="too_many"
        )
    expanded = sum(i.file_size for i in infos)
    if expanded > settings.PICKWISE_MAX_UPLOAD_BYTES:
        raise ApplicationError(
            ARCHIVE_TOO_LARGE.format(size=expanded, limit=settings.PICKWISE_MAX_UPLOAD_BYTES),
            code="too_large",
            status=413,
        )
    names = {i.filename for i in infos}
    if MANIFEST in names:
        base = ""
    else:
        # A zipped folder: accept one top-level folder holding the manifest.
        nested = [n for n in names if n.count("/") == 1 and n.endswith("/" + MANIFEST)]
        if len(nested) != 1:
            raise ApplicationError(NO_MANIFEST, code="no_manifest")
        base = nested[0][: -len(MANIFEST)]
    try:
        info = archive.getinfo(base + MANIFEST)
        if info.file_size > MAX_MANIFEST_BYTES:
            raise ApplicationError(
                MANIFEST_TOO_LARGE.format(size=info.file_size, limit=MAX_MANIFEST_BYTES),
                code="too_large",
            )
        data = archive.read(info)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError):
        raise ApplicationError(NOT_A_ZIP, code="invalid_file") from None
    reader = _zip_reader(archive, base)
    return _plan_manifest(campaign=campaign, data=data, read=reader, progress=progress)


def _plan_folder(*, campaign: Campaign, folder: Path, progress: Progress) -> ImportPlan:
    root = folder.resolve()
    if not root.is_dir():
        raise ApplicationError(FOLDER_MISSING.format(path=folder), code="invalid_file")
    manifest = (root / MANIFEST).resolve()
    if not manifest.is_relative_to(root) or not manifest.is_file():
        raise ApplicationError(NO_MANIFEST, code="no_manifest")
    limit = settings.PICKWISE_MAX_IMAGE_BYTES

    def read(name: str) -> bytes:
        # Resolve links and "..", then insist the result is still inside the folder.
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise _Unreadable(OUTSIDE_FOLDER.format(name=name))
        if not name or not path.is_file():
            raise _Unreadable(MISSING_MEMBER.format(name=name))
        with path.open("rb") as handle:
            return handle.read(limit + 1)

    if manifest.stat().st_size > MAX_MANIFEST_BYTES:
        raise ApplicationError(
            MANIFEST_TOO_LARGE.format(size=manifest.stat().st_size, limit=MAX_MANIFEST_BYTES),
            code="too_large",
        )
    data = manifest.read_bytes()
    return _plan_manifest(campaign=campaign, data=data, read=read, progress=progress)


# Pick-a-Pic parquet --------------------------------------------------------------------------


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
    except (pa.ArrowException, OSError, ValueError):
        raise ApplicationError(NOT_A_PARQUET, code="invalid_file") from None


def _plan_parquet(
    *, campaign: Campaign, file: str | Path | BinaryIO, with_labels: bool, progress: Progress
) -> ImportPlan:
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
    total = parquet.metadata.num_rows
    _row_limit(total)  # from the footer, before reading any row
    optional = [c for c in PARQUET_OPTIONAL_LABEL_COLUMNS if with_labels and c in present]
    allow_tie = bool(campaign.criteria[0].get("allow_tie"))
    errors = _Errors("row")
    prompts: dict[str, int] = {}
    items: dict[str, ImageItem] = {}
    first_row: dict[str, int] = {}
    labels: list[LabelRow] = []
    row = -1
    for batch in _parquet_batches(parquet, needed + optional):
        for record in batch:
            row += 1
            _row_limit(row + 1)  # the footer's count might not be the truth
            if row % PROGRESS_EVERY == 0 and row:
                _tell(progress, f"checked {row}/{total} rows")
            text = _prompt_text(record["caption"])
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
                    (row, side), text, model_name, None, image.sha256, image.extension, wanted
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
    for start in range(0, len(wanted_uids), CHUNK):
        chunk = wanted_uids[start : start + CHUNK]
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
    record: dict, row: int, keys: list[str], allow_tie: bool, campaign: Campaign, errors: _Errors
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


def _rater_username(campaign: Campaign, user_id: str) -> str:
    return f"imported-{campaign.pk}-{user_id}"


def _check_rater_names(*, campaign: Campaign, user_ids: set[str]) -> None:
    """Imported raters get their own inactive accounts; never reuse someone's real one."""
    names = [_rater_username(campaign, u) for u in sorted(user_ids)]
    for start in range(0, len(names), CHUNK):
        for user in get_user_model().objects.filter(username__in=names[start : start + CHUNK]):
            if user.is_active or user.has_usable_password():
                raise ApplicationError(
                    ACCOUNT_TAKEN.format(username=user.username), code="account_taken"
                )


# Entry points ------------------------------------------------------------------------------


def _looks_like(file: BinaryIO) -> str | None:
    head = file.read(4)
    file.seek(0)
    if head in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head == b"PAR1":
        return "parquet"
    return None


def images_import_check(
    *,
    campaign: Campaign,
    source: Path | BinaryIO,
    with_labels: bool = False,
    progress: Progress = None,
) -> ImportPlan:
    """Read and check everything an import would write; write nothing.

    `source` is a folder (command line only), or an open binary file holding a zip or a
    parquet file; the file must stay open until the plan has been applied. Raises
    ApplicationError(code="invalid_rows", extra={"errors": [...]}) listing bad rows.
    """
    if isinstance(source, Path) and source.is_dir():
        if with_labels:
            raise ApplicationError(LABELS_NEED_PARQUET, code="invalid")
        plan = _plan_folder(campaign=campaign, folder=source, progress=progress)
        _prompt_limit(len(plan.prompts))
        return plan
    if isinstance(source, Path):
        raise ApplicationError(FOLDER_MISSING.format(path=source), code="invalid_file")
    kind = _looks_like(source)
    if kind == "parquet":
        plan = _plan_parquet(
            campaign=campaign, file=source, with_labels=with_labels, progress=progress
        )
    elif kind == "zip":
        if with_labels:
            raise ApplicationError(LABELS_NEED_PARQUET, code="invalid")
        plan = _plan_zip(campaign=campaign, file=source, progress=progress)
    else:
        raise ApplicationError(UNKNOWN_SOURCE, code="unknown_format")
    _prompt_limit(len(plan.prompts))
    return plan


def _prompt_limit(count: int) -> None:
    limit = settings.PICKWISE_MAX_PROMPTS_PER_IMPORT
    if count > limit:
        raise ApplicationError(TOO_MANY_PROMPTS.format(count=count, limit=limit), code="too_many")


def images_import_apply(
    *, plan: ImportPlan, build: bool = True, progress: Progress = None
) -> ImageImportResult:
    """Write a checked import in one transaction; remove its new files if that fails."""
    written: list[str] = []
    try:
        with transaction.atomic():
            return _write(plan=plan, build=build, written=written, progress=progress)
    except BaseException:
        _remove_new_files(written)
        raise


def _remove_new_files(names: list[str]) -> None:
    for name in names:
        try:
            # Content-addressed: keep a file that a committed image uses after all.
            in_use = Image.objects.filter(file=name).exists()
        except DatabaseError:
            continue  # cannot tell: an orphan file is better than a missing one
        if not in_use:
            default_storage.delete(name)


def images_import(
    *,
    campaign: Campaign,
    source: Path | BinaryIO,
    with_labels: bool = False,
    build: bool = True,
    progress: Progress = None,
) -> ImageImportResult:
    """Check, then write an import of images (and labels); see the module docstring."""
    plan = images_import_check(
        campaign=campaign, source=source, with_labels=with_labels, progress=progress
    )
    return images_import_apply(plan=plan, build=build, progress=progress)


# Writing -----------------------------------------------------------------------------------


def _chunks(values: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _write(
    *, plan: ImportPlan, build: bool, written: list[str], progress: Progress
) -> ImageImportResult:
    campaign = plan.campaign
    result = ImageImportResult()
    texts = list(plan.prompts)
    prompts: dict[str, Prompt] = {}
    for chunk in _chunks(texts):
        added = prompts_add(
            campaign=campaign, rows=[PromptRow(line=plan.prompts[t], text=t) for t in chunk]
        )
        result.prompts_created += added.created
        result.prompts_existing += added.existing
        prompts.update(
            (p.text, p) for p in Prompt.objects.filter(campaign=campaign, text__in=chunk)
        )

    images: dict[str, Image] = {}
    for done, (key, data) in enumerate(_reread(plan), start=1):
        item = plan.items[key]
        if hashlib.sha256(data).hexdigest() != item.sha256:
            raise ApplicationError(FILE_CHANGED.format(name=item.ref), code="changed")
        name = image_upload_path(Image(sha256=item.sha256), f"x.{item.extension}")
        new_file = not default_storage.exists(name)
        image, created = image_create(
            prompt=prompts[item.prompt],
            data=data,
            source=Image.Source.IMPORTED,
            model_name=item.model_name,
            seed=item.seed,
        )
        if created and new_file:
            written.append(image.file.name)
        if created and item.wanted_uid is not None and item.wanted_uid not in plan.taken_uids:
            # Keep the source's uid so its rows can be traced; unique in the database.
            Image.objects.filter(pk=image.pk).update(uid=item.wanted_uid)
            image.uid = item.wanted_uid
        result.images_created += created
        result.images_existing += not created
        images[key] = image
        if done % PROGRESS_EVERY == 0:
            _tell(progress, f"stored {done}/{len(plan.items)} images")

    if plan.labels:
        _write_labels(plan=plan, images=images, result=result, progress=progress)
    if build:
        touched = {image.prompt_id for image in images.values()}
        for prompt in prompts.values():
            if prompt.pk in touched:
                built = comparisons_build_for_prompt(campaign=campaign, prompt=prompt)
                result.comparisons_created += len(built)
    return result


def _reread(plan: ImportPlan) -> Iterator[tuple[str, bytes]]:
    """The plan's images again; one that cannot be read now has changed since the check."""
    try:
        yield from plan.read()
    except _Unreadable as exc:
        raise ApplicationError(FILE_GONE.format(problem=exc.args[0]), code="changed") from None


def _raters(*, campaign: Campaign, user_ids: set[str], result: ImageImportResult) -> dict:
    """One inactive account and active annotator membership per imported rater id."""
    users = {}
    model = get_user_model()
    for user_id in sorted(user_ids):
        user, created = model.objects.get_or_create(
            username=_rater_username(campaign, user_id), defaults={"is_active": False}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            result.raters_created += 1
        membership_set(
            campaign=campaign,
            user=user,
            role=Membership.Role.ANNOTATOR,
            gate_state=Membership.Gate.ACTIVE,
        )
        users[user_id] = user
    return users


def _pair_comparisons(
    *,
    campaign: Campaign,
    pairs: set[tuple[int, int]],
    images: dict[int, Image],
    result: ImageImportResult,
) -> dict[tuple[int, int], Comparison]:
    """The regular comparison for each image pair, created where missing."""
    by_prompt: dict[int, list[tuple[Image, Image]]] = defaultdict(list)
    for a, b in sorted(pairs):
        by_prompt[images[a].prompt_id].append((images[a], images[b]))
    for groups in by_prompt.values():
        created = comparisons_create(campaign=campaign, prompt=groups[0][0].prompt, groups=groups)
        result.comparisons_created += len(created)
    keys = {comparison_key(pair): pair for pair in pairs}
    found: dict[tuple[int, int], Comparison] = {}
    for chunk in _chunks(list(keys)):
        for comparison in Comparison.objects.filter(campaign=campaign, key__in=chunk):
            found[keys[comparison.key]] = comparison
    return found


def _write_labels(
    *, plan: ImportPlan, images: dict[str, Image], result: ImageImportResult, progress: Progress
) -> None:
    """Each labelled row becomes a submitted assignment and its judgment by an imported rater.

    A rater's second judgment of the same pair is recorded as a repeat of their previous
    one (it measures consistency and does not count toward overlap). Rows already imported
    are recognised by count: the n-th judgment of a pair by a rater is the n-th such row.
    """
    campaign = plan.campaign
    criterion = campaign.criteria[0]["key"]
    users = _raters(campaign=campaign, user_ids={r.user_id for r in plan.labels}, result=result)
    by_pk = {image.pk: image for image in images.values()}
    pair_of = [tuple(sorted((images[r.image_0].pk, images[r.image_1].pk))) for r in plan.labels]
    comparisons = _pair_comparisons(
        campaign=campaign, pairs=set(pair_of), images=by_pk, result=result
    )
    comparison_ids = [c.pk for c in comparisons.values()]
    user_pks = [u.pk for u in users.values()]
    before: Counter = Counter()
    last: dict[tuple[int, int], int] = {}
    for chunk in _chunks(comparison_ids):
        rows = (
            Judgment.objects.filter(comparison_id__in=chunk, annotator_id__in=user_pks)
            .values("comparison_id", "annotator_id")
            .annotate(n=Count("id"), last=Max("id"))
        )
        for row in rows:
            group = (row["comparison_id"], row["annotator_id"])
            before[group], last[group] = row["n"], row["last"]

    memberships = {
        m.user_id: m
        for m in Membership.objects.select_for_update().filter(
            campaign=campaign, user_id__in=user_pks
        )
    }
    seen: Counter = Counter()
    counted: Counter = Counter()  # new judgments toward each comparison's overlap
    for done, (label, pair) in enumerate(zip(plan.labels, pair_of, strict=True), start=1):
        comparison = comparisons[pair]
        user = users[label.user_id]
        group = (comparison.pk, user.pk)
        seen[group] += 1
        if seen[group] <= before[group]:
            result.judgments_existing += 1
            continue
        first, second = images[label.image_0], images[label.image_1]
        presented = [str(first.uid), str(second.uid)]
        answer = TIE if label.winner is None else presented[label.winner]
        repeat_of = last.get(group)
        membership = memberships[user.pk]
        assignment = Assignment.objects.create(
            campaign=campaign,
            comparison=comparison,
            annotator=user,
            presented=presented,
            issued_at=label.created_at,
            expires_at=label.created_at,
            closed_at=label.created_at,
            state=Assignment.State.SUBMITTED,
            is_repeat=repeat_of is not None,
            repeat_of_id=repeat_of,
            sequence=membership.issued,
        )
        membership.issued += 1
        judgment = Judgment.objects.create(
            assignment=assignment,
            campaign=campaign,
            comparison=comparison,
            annotator=user,
            answers={criterion: answer},
            presented=presented,
            server_ms=0,
            is_repeat=repeat_of is not None,
        )
        # created_at is set on insert; the source's time is what exports and quality need.
        Judgment.objects.filter(pk=judgment.pk).update(created_at=label.created_at)
        last[group] = judgment.pk
        if repeat_of is None:
            counted[comparison.pk] += 1
        result.judgments_created += 1
        if done % PROGRESS_EVERY == 0:
            _tell(progress, f"stored {done}/{len(plan.labels)} judgments")
    for membership in memberships.values():
        Membership.objects.filter(pk=membership.pk).update(issued=membership.issued)
    _count_judgments(counted=counted, overlap=campaign.overlap)


def _count_judgments(*, counted: Counter, overlap: int) -> None:
    """Move `done` by the new judgments and keep wanted >= done + in_flight (a DB check)."""
    ids = sorted(counted)
    for chunk in _chunks(ids):
        for comparison in Comparison.objects.select_for_update().filter(pk__in=chunk):
            done = comparison.done + counted[comparison.pk]
            wanted = max(overlap, done + comparison.in_flight)
            status = comparison.status
            if status != Comparison.Status.RETIRED:
                full = done + comparison.in_flight >= wanted
                status = Comparison.Status.FULL if full else Comparison.Status.OPEN
            Comparison.objects.filter(pk=comparison.pk).update(
                done=done, wanted=wanted, status=status
            )
