"""Reads for exports. The only module of this app that touches the annotate tables.

Judgments are read in bounded batches (windows of ids), so memory stays flat in the number
of judgments, and as raw driver rows, so a million of them take seconds.
"""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from django.db import connections
from django.db.models import CharField, Max, Min, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from annotate.models import (
    Campaign,
    Comparison,
    ComparisonImage,
    Image,
    Judgment,
    Membership,
    Prompt,
)
from exports.models import Export
from exports.policy import Policy, policy_left_out_q
from pickwise.errors import ApplicationError


def export_list(*, campaign: Campaign) -> QuerySet[Export]:
    return Export.objects.filter(campaign=campaign).order_by("-created_at", "-id")


def export_next_version(*, campaign: Campaign, format: str) -> int:
    return Export.objects.filter(campaign=campaign, format=format).count() + 1


class JudgmentRow(NamedTuple):
    """One judgment as the writers need it. `answer` is the export criterion's answer: a
    string (winner uid, "tie", "both_bad"), a list of tiers, or None when absent."""

    id: int
    comparison_id: int
    prompt_id: int
    annotator_id: int
    answer: Any  # pairwise answers are strings; rankings arrive as JSON text of the tiers
    is_gold: bool
    is_repeat: bool
    excluded: bool
    created_at: datetime | None  # naive, UTC


class AuditRow(NamedTuple):
    """What the audit format adds: all answers, presented order, timings, gold result."""

    answers: dict
    presented: list
    duration_ms: int | None
    server_ms: int
    gold_correct: bool | None
    never_shown: bool


JUDGMENT_FIELDS = (
    "id",
    "comparison_id",
    "annotator_id",
    "answer_text",
    "is_gold",
    "is_repeat",
    "excluded",
    "created_text",
)
AUDIT_FIELDS = (
    "answers",
    "presented",
    "duration_ms",
    "server_ms",
    "gold_correct",
    "never_shown",
)
EPOCH = datetime(1970, 1, 1)


def _moment(text: str) -> datetime:
    """A naive UTC datetime from the timestamp's text (Django keeps UTC on SQLite, without
    an offset; PostgreSQL's text has one)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _raw_rows(queryset: QuerySet) -> list[tuple]:
    """The rows of a values_list query as the driver returns them.

    Skips Django's per-value converters, which cost more than the whole export row on a
    million judgments; callers convert the few values they use.
    """
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def judgment_last_id(*, campaign: Campaign) -> int:
    """The snapshot boundary: judgments made after this id are not part of the export."""
    return Judgment.objects.filter(campaign=campaign).aggregate(last=Max("id"))["last"] or 0


def judgment_count(*, campaign: Campaign, last_id: int) -> int:
    return Judgment.objects.filter(campaign=campaign, id__lte=last_id).count()


def judgment_count_under_policy(*, campaign: Campaign, policy: Policy) -> int:
    """Judgments a policy keeps, before answers are looked at (a cheap emptiness check)."""
    left_out = policy_left_out_q(policy, campaign_id=campaign.pk)
    return Judgment.objects.filter(campaign=campaign).exclude(left_out).count()


def judgment_batches(
    *,
    campaign: Campaign,
    criterion: str,
    last_id: int,
    batch_size: int,
    audit: bool = False,
    with_time: bool = True,
) -> Iterator[list[JudgmentRow] | list[tuple[JudgmentRow, AuditRow]]]:
    """Every judgment of the campaign up to `last_id`, in id (time) order, in batches.

    Each batch is its own short query over a window of `batch_size` ids, so it is a range
    scan of the primary key whatever the database and however the campaign's judgments
    interleave with others': no long-lived cursor, no sort, linear in the judgments. A
    window holds at most `batch_size` rows; empty windows are skipped. With `audit`, each
    row comes with its AuditRow; without `with_time`, created_at is None (the counting
    pass does not need it).
    """
    first = Judgment.objects.filter(campaign=campaign).aggregate(first=Min("id"))["first"]
    if first is None:
        return
    base = Judgment.objects.filter(campaign=campaign).annotate(
        answer_text=KeyTextTransform(criterion, "answers"),
        # As text: fromisoformat is several times faster than the driver's converters.
        created_text=Cast("created_at", CharField()),
    )
    fields = JUDGMENT_FIELDS if with_time else JUDGMENT_FIELDS[:-1]
    fields += AUDIT_FIELDS if audit else ()
    prompt_of: dict[int, int] = {}
    for low in range(first, last_id + 1, batch_size):
        window = base.filter(id__gte=low, id__lt=min(low + batch_size, last_id + 1))
        raw = _raw_rows(window.order_by("id").values_list(*fields))
        if not raw:
            continue
        # Prompts through a lookup of the window's comparisons rather than a join: joined,
        # PostgreSQL hashes the whole comparison table for every window of a big campaign.
        if len(prompt_of) > PROMPT_MEMORY:
            prompt_of.clear()
        missing = {r[1] for r in raw} - prompt_of.keys()
        if missing:
            prompt_of.update(comparison_prompts(comparison_ids=sorted(missing)))
        if with_time:
            rows = [
                JudgmentRow(
                    r[0],
                    r[1],
                    prompt_of[r[1]],
                    r[2],
                    json.loads(r[3]) if r[3] and r[3][0] == "[" else r[3],
                    bool(r[4]),
                    bool(r[5]),
                    bool(r[6]),
                    _moment(r[7]),
                )
                for r in raw
            ]
        else:
            rows = [
                JudgmentRow(
                    r[0],
                    r[1],
                    prompt_of[r[1]],
                    r[2],
                    json.loads(r[3]) if r[3] and r[3][0] == "[" else r[3],
                    r[4],
                    r[5],
                    r[6],
                    None,
                )
                for r in raw
            ]
        if audit:
            yield [
                (
                    row,
                    AuditRow(
                        _json(r[8]), _json(r[9]), r[10], r[11], _bool_or_none(r[12]), bool(r[13])
                    ),
                )
                for row, r in zip(rows, raw, strict=True)
            ]
        else:
            yield rows


# Comparisons whose prompt is remembered between windows (a few MB).
PROMPT_MEMORY = 200_000


def comparison_prompts(*, comparison_ids: list[int]) -> dict[int, int]:
    """Each comparison's prompt id: primary-key lookups, one plain IN query."""
    connection = connections[Comparison.objects.db]
    table = connection.ops.quote_name(Comparison._meta.db_table)
    marks = ", ".join(["%s"] * len(comparison_ids))
    sql = f"SELECT id, prompt_id FROM {table} WHERE id IN ({marks})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, list(comparison_ids))
        return dict(cursor.fetchall())


def _bool_or_none(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _dashed(uid: Any) -> str:
    if isinstance(uid, str) and len(uid) == 32:
        return f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:]}".lower()
    return str(uuid.UUID(str(uid)))


class ImageRow(NamedTuple):
    id: int
    uid: str
    model_name: str
    file: str


def comparison_images(*, comparison_ids: list[int]) -> dict[int, list[ImageRow]]:
    """Each comparison's images in canonical order (slot order, i.e. ascending image id).

    Plain SQL: building an ORM IN-lookup of a thousand ids costs more than running it.
    """
    found: dict[int, list[ImageRow]] = {}
    if not comparison_ids:
        return found
    connection = connections[ComparisonImage.objects.db]
    quote = connection.ops.quote_name
    slots, images = quote(ComparisonImage._meta.db_table), quote(Image._meta.db_table)
    marks = ", ".join(["%s"] * len(comparison_ids))
    sql = (
        f"SELECT s.comparison_id, s.image_id, i.uid, i.model_name, i.file "  # noqa: S608
        f"FROM {slots} s JOIN {images} i ON i.id = s.image_id "
        f"WHERE s.comparison_id IN ({marks}) ORDER BY s.comparison_id, s.slot"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(comparison_ids))
        rows = cursor.fetchall()
    for comparison_id, image_id, uid, model_name, file in rows:
        # SQLite keeps uuids as 32 hex digits, PostgreSQL as uuid: answers use the dashed form.
        found.setdefault(comparison_id, []).append(
            ImageRow(image_id, _dashed(uid), model_name, file)
        )
    return found


class Rater(NamedTuple):
    rater_key: int
    gate_state: str


def campaign_raters(*, campaign: Campaign) -> dict[int, Rater]:
    """Every member's pseudonymous key and gate state, by user id (one row per member)."""
    return {
        user_id: Rater(rater_key, gate_state)
        for user_id, rater_key, gate_state in Membership.objects.filter(
            campaign=campaign
        ).values_list("user_id", "rater_key", "gate_state")
    }


def prompt_texts(*, prompt_ids: list[int]) -> dict[int, str]:
    """Each prompt's text, 2,000 ids a query. Plain SQL: for the 55k prompts of a million
    judgments, building the ORM's IN lookups took longer than the queries."""
    connection = connections[Prompt.objects.db]
    table = connection.ops.quote_name(Prompt._meta.db_table)
    texts: dict[int, str] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(prompt_ids), 2000):
            chunk = prompt_ids[start : start + 2000]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"SELECT id, text FROM {table} WHERE id IN ({marks})", chunk)  # noqa: S608
            texts.update(cursor.fetchall())
    return texts


def campaign_summary(*, campaign: Campaign) -> dict[str, Any]:
    """What the manifest says about the campaign an export came from."""
    return {
        "id": campaign.pk,
        "slug": campaign.slug,
        "title": campaign.title,
        "kind": campaign.kind,
        "k": campaign.k,
        "criteria": campaign.criteria,
        "qc_policy": campaign.qc_policy,
    }


NOT_FINISHED = "Export {id} is {status}; its files are available once it has finished."
NO_SUCH_FILE = "Export {id} has no file named {name!r}; the manifest lists its files."


def export_files(*, export: Export) -> list[dict]:
    """The files a finished export offers: the manifest's list, and the manifest itself."""
    if export.status != Export.Status.FINISHED or not export.manifest:
        return []
    return [*export.manifest.get("files", []), {"name": "manifest.json"}]


def export_file_path(*, export: Export, name: str) -> Path:
    """The path of one of the export's files. Only names the manifest lists are served, so
    no request can reach outside the export folder."""
    if export.status != Export.Status.FINISHED:
        raise ApplicationError(
            NOT_FINISHED.format(id=export.pk, status=export.status), code="not_finished", status=409
        )
    listed = {entry["name"] for entry in export_files(export=export)}
    folder = Path(export.folder).resolve()
    path = (folder / name).resolve() if name in listed else None
    if path is None or not path.is_relative_to(folder) or not path.is_file():
        raise ApplicationError(
            NO_SUCH_FILE.format(id=export.pk, name=name), code="not_found", status=404
        )
    return path
