"""Submitting a judgment: validate, store once, move the counters, all in one transaction."""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotate.answers import validate_answers
from annotate.models import Assignment, Campaign, Comparison, Judgment, Membership
from annotate.quality.hooks import quality_on_submit
from annotate.services.assignments import assignment_expire
from pickwise.errors import ApplicationError

ASSIGNMENT_EXPIRED = "This task's lease ran out and it went back to the pool; take the next one."
ASSIGNMENT_SKIPPED = "This task was skipped and cannot be answered any more."
CAMPAIGN_CLOSED = "This campaign is closed; answers are no longer accepted."
BLOCKED = "You can no longer submit in this campaign."
BAD_DURATION = "duration_ms must be a whole number of milliseconds between 0 and 86400000."
MAX_DURATION_MS = 86_400_000


def gold_is_correct(*, gold_answer: dict, answers: dict[str, Any]) -> bool:
    """Every criterion the gold speaks to must be answered as the gold says."""
    return all(answers.get(key) == expected for key, expected in gold_answer.items())


class _LeaseRanOut(Exception):
    pass


def judgment_submit(
    *,
    assignment: Assignment,
    answers: Any,
    duration_ms: Any = None,
    now: datetime | None = None,
) -> tuple[Judgment, bool]:
    """Store the annotator's answer to their assignment. Returns (judgment, created).

    Idempotent: a second submit for the same assignment returns the first judgment, so a
    client may resend until it hears back. A submit after the lease ran out expires the
    assignment (its slot goes back to the pool) and is refused.
    """
    now = now or timezone.now()
    try:
        return _submit(assignment=assignment, answers=answers, duration_ms=duration_ms, now=now)
    except _LeaseRanOut:
        assignment_expire(assignment=assignment, now=now)
        raise ApplicationError(ASSIGNMENT_EXPIRED, code="assignment_expired", status=409) from None


@transaction.atomic
def _submit(
    *, assignment: Assignment, answers: Any, duration_ms: Any, now: datetime
) -> tuple[Judgment, bool]:
    # Lock order: assignment, membership, comparison (the same as assignment_next's tail).
    assignment = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("campaign", "comparison")
        .get(pk=assignment.pk)
    )
    if assignment.state == Assignment.State.SUBMITTED:
        return Judgment.objects.get(assignment=assignment), False
    if assignment.state == Assignment.State.SKIPPED:
        raise ApplicationError(ASSIGNMENT_SKIPPED, code="assignment_skipped", status=409)
    if assignment.state == Assignment.State.EXPIRED:
        raise ApplicationError(ASSIGNMENT_EXPIRED, code="assignment_expired", status=409)
    campaign = assignment.campaign
    if campaign.status == Campaign.Status.CLOSED:
        raise ApplicationError(CAMPAIGN_CLOSED, code="campaign_closed", status=409)
    if assignment.expires_at <= now:
        raise _LeaseRanOut
    if duration_ms is not None and (
        isinstance(duration_ms, bool)
        or not isinstance(duration_ms, int)
        or not 0 <= duration_ms <= MAX_DURATION_MS
    ):
        raise ApplicationError(BAD_DURATION, code="invalid")
    membership = Membership.objects.select_for_update().get(
        campaign=campaign, user_id=assignment.annotator_id
    )
    if membership.gate_state == Membership.Gate.BLOCKED:
        raise ApplicationError(BLOCKED, code="blocked", status=403)

    comparison = assignment.comparison
    normalised = validate_answers(
        kind=campaign.kind,
        criteria=campaign.criteria,
        image_uids=assignment.presented,
        answers=answers,
    )
    gold_correct = None
    if assignment.is_gold and comparison.gold_answer:
        gold_correct = gold_is_correct(gold_answer=comparison.gold_answer, answers=normalised)
    judgment = Judgment.objects.create(
        assignment=assignment,
        campaign=campaign,
        comparison=comparison,
        annotator_id=assignment.annotator_id,
        answers=normalised,
        presented=assignment.presented,
        duration_ms=duration_ms,
        server_ms=max(0, int((now - assignment.issued_at).total_seconds() * 1000)),
        is_gold=assignment.is_gold,
        is_repeat=assignment.is_repeat,
        gold_correct=gold_correct,
    )
    assignment.state = Assignment.State.SUBMITTED
    assignment.closed_at = now
    assignment.save(update_fields=["state", "closed_at"])
    if assignment.is_repeat:
        pass  # a repeat measures the rater; it does not count toward overlap
    elif assignment.is_gold:
        Comparison.objects.filter(pk=comparison.pk).update(done=F("done") + 1)
    else:
        # The slot moves from in flight to done; the sum, and so the status, is unchanged.
        Comparison.objects.filter(pk=comparison.pk).update(
            done=F("done") + 1, in_flight=F("in_flight") - 1
        )
    quality_on_submit(judgment=judgment, membership=membership)
    return judgment, True
