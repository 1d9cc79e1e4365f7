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

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction

from annotate.models import Campaign, Image
from annotate.services.image_imports.manifests import plan_folder, plan_zip, zip_open
from annotate.services.image_imports.messages import (
    FOLDER_MISSING,
    LABELS_NEED_PARQUET,
    TOO_MANY_PROMPTS,
    UNKNOWN_SOURCE,
)
from annotate.services.image_imports.parquet import parquet_open, plan_parquet
from annotate.services.image_imports.plan import ImageImportResult, ImportPlan, Progress
from annotate.services.image_imports.writing import write_plan
from pickwise.errors import ApplicationError

__all__ = [
    "ImageImportResult",
    "ImportPlan",
    "images_import",
    "images_import_apply",
    "images_import_check",
    "images_import_precheck",
]


def _looks_like(file: BinaryIO) -> str | None:
    head = file.read(4)
    file.seek(0)
    if head in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head == b"PAR1":
        return "parquet"
    return None


def images_import_precheck(*, campaign: Campaign, source: BinaryIO, with_labels: bool) -> str:
    """The checks that read no image: the file's type, a zip's central directory (member
    count, expanded size, manifest) or a parquet footer (columns, rows). Returns the kind,
    "zip" or "parquet"; raises ApplicationError as images_import_check would."""
    kind = _looks_like(source)
    if kind is None:
        raise ApplicationError(UNKNOWN_SOURCE, code="unknown_format")
    if with_labels and kind != "parquet":
        raise ApplicationError(LABELS_NEED_PARQUET, code="invalid")
    if kind == "zip":
        zip_open(file=source)
    else:
        parquet_open(campaign=campaign, file=source, with_labels=with_labels)
    source.seek(0)
    return kind


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
        plan = plan_folder(campaign=campaign, folder=source, progress=progress)
        _prompt_limit(len(plan.prompts))
        return plan
    if isinstance(source, Path):
        raise ApplicationError(FOLDER_MISSING.format(path=source), code="invalid_file")
    kind = _looks_like(source)
    if kind == "parquet":
        plan = plan_parquet(
            campaign=campaign, file=source, with_labels=with_labels, progress=progress
        )
    elif kind == "zip":
        if with_labels:
            raise ApplicationError(LABELS_NEED_PARQUET, code="invalid")
        plan = plan_zip(campaign=campaign, file=source, progress=progress)
    else:
        raise ApplicationError(UNKNOWN_SOURCE, code="unknown_format")
    _prompt_limit(len(plan.prompts))
    return plan


def _prompt_limit(count: int) -> None:
    limit = settings.PICKWISE_MAX_PROMPTS_PER_IMPORT
    if count > limit:
        raise ApplicationError(TOO_MANY_PROMPTS.format(count=count, limit=limit), code="too_many")


def images_import_apply(
    *,
    plan: ImportPlan,
    build: bool = True,
    progress: Progress = None,
    on_written: Callable[[ImageImportResult], None] | None = None,
) -> ImageImportResult:
    """Write a checked import in one transaction; remove its new files if that fails.

    `on_written(result)` runs inside that transaction, last: what it writes commits with
    the import, and if it raises nothing of the import is kept.
    """
    written: list[str] = []
    try:
        with transaction.atomic():
            result = write_plan(plan=plan, build=build, written=written, progress=progress)
            if on_written is not None:
                on_written(result)
            return result
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
