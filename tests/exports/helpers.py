"""Judgments made through the real services, and export builds, for the export tests."""

from collections.abc import Callable
from pathlib import Path

from annotate.models import Assignment, Image, Judgment
from annotate.services.assignments import assignment_next
from annotate.services.judgments import judgment_submit
from exports.models import Export
from exports.services import export_build, export_create


def model_of(uid: str) -> str:
    return Image.objects.get(uid=uid).model_name


def prefer_models(*order: str) -> Callable[[Assignment], dict]:
    """Pairwise answers: the image whose model comes first in `order` wins."""

    def answer(assignment: Assignment) -> dict:
        winner = min(assignment.presented, key=lambda uid: order.index(model_of(uid)))
        return {"overall": winner}

    return answer


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
