"""Adding prompts to a campaign, from the API's JSON or from uploaded files.

An import either completes or leaves nothing behind: every row is checked before any is
written, and bad rows are reported with their line numbers.
"""

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from annotate.models import Campaign, Prompt
from annotate.prompt_length import MAX_PROMPT_CHARS
from pickwise.errors import ApplicationError
from pickwise.text_input import (
    MAX_INDEXED_TEXT_BYTES,
    json_loads_storable,
    json_problem,
    text_problem,
)

# The text is in the unique (campaign, text) index: bytes count, not characters.
MAX_PROMPT_BYTES = MAX_INDEXED_TEXT_BYTES
MAX_REPORTED_ERRORS = 50
NO_PROMPTS = "No prompts found in the input."
TOO_MANY_PROMPTS = "An import takes at most {limit} prompts; this one has {count}."
UNKNOWN_FORMAT = "Unknown prompt file format {fmt!r}; use txt, csv, json or jsonl."
NOT_UTF8 = "The file is not UTF-8 text."
CSV_NEEDS_TEXT = "The CSV file needs a 'text' column."
BAD_ROWS = "{count} bad row(s); nothing was imported."
FORMATS = ("txt", "csv", "json", "jsonl")
TEXT_TOO_LONG = "'text' is longer than {limit} characters."
NEGATIVE_TOO_LONG = "'negative_prompt' must be a string of at most {limit} characters."


@dataclass
class PromptRow:
    line: int
    text: str
    negative_prompt: str = ""
    meta: dict = field(default_factory=dict)


@dataclass
class PromptImportResult:
    created: int
    existing: int

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "existing": self.existing}


def _row_from_object(line: int, obj: Any, errors: list[dict]) -> PromptRow | None:
    if isinstance(obj, str):
        obj = {"text": obj}
    if not isinstance(obj, dict):
        errors.append(
            {"line": line, "error": "Expected an object with a 'text' field or a string."}
        )
        return None
    text = obj.get("text")
    negative = obj.get("negative_prompt") or ""
    meta = obj.get("meta", {})
    if not isinstance(text, str) or not text.strip():
        errors.append({"line": line, "error": "'text' must be a non-empty string."})
        return None
    if len(text.strip()) > MAX_PROMPT_CHARS:
        errors.append({"line": line, "error": TEXT_TOO_LONG.format(limit=MAX_PROMPT_CHARS)})
        return None
    text = text.strip()
    if problem := text_problem(text, field="'text'", max_bytes=MAX_PROMPT_BYTES):
        errors.append({"line": line, "error": problem})
        return None
    if not isinstance(negative, str) or len(negative.strip()) > MAX_PROMPT_CHARS:
        errors.append({"line": line, "error": NEGATIVE_TOO_LONG.format(limit=MAX_PROMPT_CHARS)})
        return None
    if not isinstance(meta, dict):
        errors.append({"line": line, "error": "'meta' must be an object."})
        return None
    problem = text_problem(negative, field="'negative_prompt'") or json_problem(
        meta, field="'meta'"
    )
    if problem:
        errors.append({"line": line, "error": problem})
        return None
    return PromptRow(line=line, text=text, negative_prompt=negative.strip(), meta=meta)


def prompt_rows_parse(*, data: bytes, fmt: str) -> list[PromptRow]:
    """Parse an uploaded prompt file; raise ApplicationError listing bad rows by line number."""
    if fmt not in FORMATS:
        raise ApplicationError(UNKNOWN_FORMAT.format(fmt=fmt), code="unknown_format")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError(NOT_UTF8, code="invalid_file") from None
    errors: list[dict] = []
    rows: list[PromptRow] = []

    def add(line: int, obj: Any) -> None:
        row = _row_from_object(line, obj, errors)
        if row is not None:
            rows.append(row)

    if fmt == "txt":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                add(number, line)
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise ApplicationError(CSV_NEEDS_TEXT, code="invalid_file")
        try:
            for record in reader:
                meta = {
                    k: v for k, v in record.items() if k not in ("text", "negative_prompt") and k
                }
                add(
                    reader.line_num,
                    {
                        "text": record.get("text") or "",
                        "negative_prompt": record.get("negative_prompt") or "",
                        "meta": meta,
                    },
                )
        except csv.Error as exc:
            raise ApplicationError(
                f"CSV error at line {reader.line_num}: {exc}", code="invalid_file"
            ) from None
    elif fmt == "json":
        try:
            payload = json_loads_storable(text, field="The file")
        except json.JSONDecodeError as exc:
            raise ApplicationError(
                f"Invalid JSON at line {exc.lineno}: {exc.msg}.", code="invalid_file"
            ) from None
        except ValueError as exc:
            raise ApplicationError(str(exc), code="invalid_file") from None
        if isinstance(payload, dict) and "prompts" in payload:
            payload = payload["prompts"]
        if not isinstance(payload, list):
            raise ApplicationError("A JSON prompt file must hold a list.", code="invalid_file")
        for index, obj in enumerate(payload, start=1):
            add(index, obj)
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                add(number, json_loads_storable(line, field="The line"))
            except json.JSONDecodeError as exc:
                errors.append({"line": number, "error": f"Invalid JSON: {exc.msg}."})
            except ValueError as exc:
                errors.append({"line": number, "error": str(exc)})
    _raise_if_errors(errors)
    return rows


def _raise_if_errors(errors: list[dict]) -> None:
    if errors:
        raise ApplicationError(
            BAD_ROWS.format(count=len(errors)),
            code="invalid_rows",
            extra={"errors": errors[:MAX_REPORTED_ERRORS]},
        )


def prompt_rows_from_payload(*, prompts: Any) -> list[PromptRow]:
    """Check the API's `{prompts: [...]}` list; raise with the bad items' positions."""
    if not isinstance(prompts, list):
        raise ApplicationError("prompts must be a list.", code="invalid")
    errors: list[dict] = []
    rows = [r for i, obj in enumerate(prompts, start=1) if (r := _row_from_object(i, obj, errors))]
    _raise_if_errors(errors)
    return rows


@transaction.atomic
def prompts_add(*, campaign: Campaign, rows: list[PromptRow]) -> PromptImportResult:
    """Add prompts, skipping those the campaign has already (same text). All or nothing."""
    if not rows:
        raise ApplicationError(NO_PROMPTS, code="empty")
    limit = settings.PICKWISE_MAX_PROMPTS_PER_IMPORT
    if len(rows) > limit:
        raise ApplicationError(
            TOO_MANY_PROMPTS.format(limit=limit, count=len(rows)), code="too_many"
        )
    unique: dict[str, PromptRow] = {}
    for row in rows:
        unique.setdefault(row.text, row)
    existing = set(
        Prompt.objects.filter(campaign=campaign, text__in=list(unique)).values_list(
            "text", flat=True
        )
    )
    new = [
        Prompt(campaign=campaign, text=r.text, negative_prompt=r.negative_prompt, meta=r.meta)
        for text, r in unique.items()
        if text not in existing
    ]
    Prompt.objects.bulk_create(new, batch_size=1000)
    return PromptImportResult(created=len(new), existing=len(rows) - len(new))
