"""Judgments made through the real services, and export builds, for the export tests."""

from collections.abc import Callable
from pathlib import Path

from annotate.models import Assignment, Image, Judgment
from annotate.services.assignments import assignment_next
from annotate.services.judgments import judgment_submit
from exports.models import Export
from exports.services import export_build, export_create

# The consensus columns a ranked row ends with (exports.consensus_ranking.FIELDS).
RANKED_CONSENSUS_COLUMNS = [
    "consensus_ranking",
    "consensus_confidence",
    "consensus_contested",
    "majority_ranking",
    "consensus_votes",
    "comparison_judgments",
    "comparison_settled",
]


def model_of(uid: str) -> str:
    return Image.objects.get(uid=uid).model_name


def prefer_models(*order: str) -> Callable[[Assignment], dict]:
    """Pairwise answers: the image whose model comes first in `order` wins."""

    def answer(assignment: Assignment) -> dict:
        winner = min(assignment.presented, key=lambda uid: order.index(model_of(uid)))
        return {"overall": winner}

    return answer


def constant(value: str) -> Callable[[Assignment], dict]:
    return lambda assignment: {"overall": value}


def judge_all(campaign, users, answer: Callable[[Assignment], dict]) -> list[Judgment]:
    """Each user judges every comparison they are offered until none is left."""
    judgments = []
    for user in users:
        while (assignment := assignment_next(campaign=campaign, annotator=user)) is not None:
            judgment, _ = judgment_submit(assignment=assignment, answers=answer(assignment))
            judgments.append(judgment)
    return judgments


def build(campaign, *, format: str = "pickapic", folder: Path | None = None, **options) -> Export:
    export = export_create(
        requested_by=None, campaign=campaign, format=format, enqueue=False, **options
    )
    export = export_build(export=export, folder=folder)
    assert export.status == Export.Status.FINISHED, export.error
    return export


def parquet_rows(folder: str, pattern: str) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for path in sorted(Path(folder).glob(pattern)):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def bulk_judge(campaign, users, answer: Callable[[Assignment], dict]) -> list[Judgment]:
    """Every user judges every regular comparison once, written in bulk (fast fixtures).

    The rows have the shape judgment_submit gives them (submitted assignment, presented
    order, normalised answers); the counters move as they would.
    """
    import random

    from django.db.models import F
    from django.utils import timezone

    from annotate.models import Comparison, ComparisonImage

    now = timezone.now()
    rng = random.Random(campaign.pk)
    uids: dict[int, list[str]] = {}
    for comparison_id, uid in ComparisonImage.objects.filter(
        comparison__campaign=campaign
    ).values_list("comparison_id", "image__uid"):
        uids.setdefault(comparison_id, []).append(str(uid))
    comparisons = list(Comparison.objects.filter(campaign=campaign, role="regular"))
    assignments = []
    for sequence, (user, comparison) in enumerate(
        (user, comparison) for user in users for comparison in comparisons
    ):
        presented = list(uids[comparison.pk])
        rng.shuffle(presented)
        assignments.append(
            Assignment(
                campaign=campaign,
                comparison=comparison,
                annotator=user,
                presented=presented,
                issued_at=now,
                expires_at=now,
                state=Assignment.State.SUBMITTED,
                sequence=sequence,
                closed_at=now,
            )
        )
    assignments = Assignment.objects.bulk_create(assignments)
    judgments = Judgment.objects.bulk_create(
        Judgment(
            assignment=assignment,
            campaign=campaign,
            comparison_id=assignment.comparison_id,
            annotator_id=assignment.annotator_id,
            answers=answer(assignment),
            presented=assignment.presented,
            duration_ms=1500,
            server_ms=1600,
        )
        for assignment in assignments
    )
    Comparison.objects.filter(campaign=campaign, role="regular").update(
        done=F("done") + len(users), wanted=F("done") + len(users)
    )
    return judgments
