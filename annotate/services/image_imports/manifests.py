"""Reading an import with manifest.csv: from a zip (never extracted) or a folder."""

import csv
import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from annotate.models import Campaign
from annotate.services.image_imports.messages import (
    ARCHIVE_TOO_LARGE,
    BAD_MODEL_NAME,
    BAD_PROMPT,
    BAD_SEED,
    CORRUPT_MEMBER,
    FOLDER_MISSING,
    MANIFEST_COLUMNS,
    MANIFEST_NOT_UTF8,
    MANIFEST_TOO_LARGE,
    MISSING_MEMBER,
    NO_MANIFEST,
    NOT_A_ZIP,
    OUTSIDE_FOLDER,
    TOO_MANY_MEMBERS,
)
from annotate.services.image_imports.plan import (
    CHECKING,
    PROGRESS_EVERY,
    ImageItem,
    ImportPlan,
    Progress,
    RowErrors,
    Unreadable,
    check_row_count,
    prompt_text,
    tell,
)
from annotate.uploads import CheckedImage, check_image_bytes
from pickwise.errors import ApplicationError
from pickwise.text_input import record_problem

MANIFEST = "manifest.csv"
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_SEED = 2**63 - 1


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
    check_row_count(len(records))
    return records


def _plan_manifest(
    *, campaign: Campaign, data: bytes, read: Callable[[str], bytes], progress: Progress
) -> ImportPlan:
    """Check each manifest line; `read(name)` returns a file's bytes or raises Unreadable."""
    errors = RowErrors("line")
    prompts: dict[str, int] = {}
    items: dict[str, ImageItem] = {}
    checked: dict[str, CheckedImage] = {}  # file -> what its check found (bytes dropped)
    records = _manifest_records(data)
    for done, (line, record) in enumerate(records, start=1):
        if problem := record_problem(record):
            errors.add(line, problem)
            continue
        text = prompt_text(record.get("prompt"))
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
            except Unreadable as exc:
                errors.add(line, str(exc.args[0]))
                continue
            except ApplicationError as exc:
                errors.add(line, f"{name}: {exc.message}")
                continue
            checked[name] = replace(image, data=b"")
        image = checked[name]
        prompts.setdefault(text, line)
        # The same file for the same prompt is one image; image_create would dedupe it anyway.
        items.setdefault(
            f"{text}\n{image.sha256}",
            ImageItem(
                name,
                text,
                model_name,
                seed,
                image.sha256,
                image.extension,
                image.width,
                image.height,
            ),
        )
        if done % PROGRESS_EVERY == 0:
            tell(progress, CHECKING, done, len(records), "lines")
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
            raise Unreadable(MISSING_MEMBER.format(name=name))
        try:
            with archive.open(info) as member:
                return member.read(limit + 1)  # one byte over is enough to refuse it
        except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError):
            # Corrupt, encrypted or oddly compressed.
            raise Unreadable(CORRUPT_MEMBER.format(name=name)) from None

    return read


def zip_open(*, file: BinaryIO) -> tuple[zipfile.ZipFile, str]:
    """The archive and the folder its manifest is in, after the checks that need no member
    decompressed (readable, member count, expanded size, a manifest): cheap enough to run
    while the upload request waits."""
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
        return archive, ""
    # A zipped folder: accept one top-level folder holding the manifest.
    nested = [n for n in names if n.count("/") == 1 and n.endswith("/" + MANIFEST)]
    if len(nested) != 1:
        raise ApplicationError(NO_MANIFEST, code="no_manifest")
    return archive, nested[0][: -len(MANIFEST)]


def plan_zip(*, campaign: Campaign, file: BinaryIO, progress: Progress) -> ImportPlan:
    archive, base = zip_open(file=file)
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


def plan_folder(*, campaign: Campaign, folder: Path, progress: Progress) -> ImportPlan:
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
            raise Unreadable(OUTSIDE_FOLDER.format(name=name))
        if not name or not path.is_file():
            raise Unreadable(MISSING_MEMBER.format(name=name))
        with path.open("rb") as handle:
            return handle.read(limit + 1)

    if manifest.stat().st_size > MAX_MANIFEST_BYTES:
        raise ApplicationError(
            MANIFEST_TOO_LARGE.format(size=manifest.stat().st_size, limit=MAX_MANIFEST_BYTES),
            code="too_large",
        )
    data = manifest.read_bytes()
    return _plan_manifest(campaign=campaign, data=data, read=read, progress=progress)
