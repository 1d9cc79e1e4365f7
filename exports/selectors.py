"""Reads for exports. The only module of this app that touches the annotate tables.

Judgments are read in bounded batches with keyset pagination in (comparison, id) order, so
memory stays flat in the number of judgments and rows that share images come together.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db.models import Max, Q, QuerySet

from annotate.models import Campaign, ComparisonImage, Judgment, Membership, Prompt
from exports.models import Export
from pickwise.errors import ApplicationError


def export_list(*, campaign: Campaign) -> QuerySet[Export]:
    return Export.objects.filter(campaign=campaign).order_by("-created_at", "-id")


def export_next_version(*, campaign: Campaign, format: str) -> int:
    return Export.objects.filter(campaign=campaign, format=format).count() + 1


@dataclass(frozen=True, slots=True)
class JudgmentRow:
    id: int
    comparison_id: int
    prompt_id: int
    annotator_id: int
    answers: dict
    presented: list
    is_gold: bool
    is_repeat: bool
    excluded: bool
    created_at: datetime
    duration_ms: int | None
    server_ms: int
    gold_correct: bool | None


JUDGMENT_FIELDS = (
    "id",
    "comparison_id",
    "comparison__prompt_id",
    "annotator_id",
    "answers",
    "presented",
    "is_gold",
    "is_repeat",
    "excluded",
    "created_at",
    "duration_ms",
    "server_ms",
    "gold_correct",
)


def judgment_last_id(*, campaign: Campaign) -> int:
    """The snapshot boundary: judgments made after this id are not part of the export."""
    return Judgment.objects.filter(campaign=campaign).aggregate(last=Max("id"))["last"] or 0


def judgment_count(*, campaign: Campaign, last_id: int) -> int:
    return Judgment.objects.filter(campaign=campaign, id__lte=last_id).count()


def judgment_count_under_policy(
    *, campaign: Campaign, states: list[str], gold: bool, repeats: bool
) -> int:
    """Judgments a policy keeps, before answers are looked at (a cheap emptiness check)."""
    raters = Membership.objects.filter(campaign=campaign, gate_state__in=states).values("user_id")
    judgments = Judgment.objects.filter(campaign=campaign, excluded=False, annotator_id__in=raters)
    if not gold:
        judgments = judgments.filter(is_gold=False)
    if not repeats:
        judgments = judgments.filter(is_repeat=False)
    return judgments.count()


def judgment_batches(
    *, campaign: Campaign, last_id: int, batch_size: int
) -> Iterator[list[JudgmentRow]]:
    """Every judgment of the campaign up to `last_id`, in (comparison, id) order, in batches.

    Each batch is its own short query (no long-lived cursor or transaction), resuming after
    the last (comparison, id) seen.
    """
    base = Judgment.objects.filter(campaign=campaign, id__lte=last_id).order_by(
        "comparison_id", "id"
    )
    after: tuple[int, int] | None = None
    while True:
        query = base
        if after is not None:
            query = query.filter(
                Q(comparison_id__gt=after[0]) | Q(comparison_id=after[0], id__gt=after[1])
            )
        rows = [JudgmentRow(*values) for values in query.values_list(*JUDGMENT_FIELDS)[:batch_size]]
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        after = (rows[-1].comparison_id, rows[-1].id)


@dataclass(frozen=True, slots=True)
class ImageRow:
    id: int
    uid: str
    model_name: str
    file: str


def comparison_images(*, comparison_ids: list[int]) -> dict[int, list[ImageRow]]:
    """Each comparison's images in canonical order (slot order, i.e. ascending image id)."""
    found: dict[int, list[ImageRow]] = {}
    rows = (
        ComparisonImage.objects.filter(comparison_id__in=comparison_ids)
        .order_by("comparison_id", "slot")
        .values_list("comparison_id", "image_id", "image__uid", "image__model_name", "image__file")
    )
    for comparison_id, image_id, uid, model_name, file in rows:
        found.setdefault(comparison_id, []).append(ImageRow(image_id, str(uid), model_name, file))
    return found


@dataclass(frozen=True, slots=True)
class Rater:
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
    texts: dict[int, str] = {}
    for start in range(0, len(prompt_ids), 2000):
        chunk = prompt_ids[start : start + 2000]
        texts.update(Prompt.objects.filter(id__in=chunk).values_list("id", "text"))
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
