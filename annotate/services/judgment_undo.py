"""Undoing a pairwise answer: a short window in which the rater may take their last one back.

The judgment is deleted, every counter it moved is moved back (the comparison's, the
rater's and their co-raters' statistics), and the assignment is open again for the same
rater, so they answer it afresh. Whatever gating already did with the answer is not
undone: an answer that a gate decision followed can no longer be taken back.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotate.models import Assignment, Campaign, Comparison, Judgment, Membership
from annotate.quality.models import GateEvent
from annotate.quality.undo import quality_on_undo
from annotate.services.assignments import membership_ensure_annotator
from pickwise.errors import ApplicationError

UNDO_SECONDS = 10

UNDO_NOT_PAIRWISE = "Only pairwise answers can be undone; a ranking is changed before it is sent."
UNDO_NOT_ANSWERED = "This task has no answer to undo; it is still open."
UNDO_NOT_SUBMITTED = "This task is {state}; there is no answer to undo."
UNDO_TOO_LATE = "Answers can be undone for {seconds} seconds only; this one stands."
UNDO_NOT_LAST = "Only your last answer can be undone."
UNDO_GATED = "This answer already counted towards a decision about your access; it stands."
UNDO_COMPARISON_CLOSED = "This comparison is closed; the answer stands."
UNDO_CAMPAIGN_CLOSED = "This campaign is closed; the answer stands."
UNDO_BLOCKED = "You can no longer change answers in this campaign."


def _refuse(message: str, code: str, status: int = 409) -> ApplicationError:
    return ApplicationError(message, code=code, status=status)


@transaction.atomic
def judgment_undo(*, assignment: Assignment, now: datetime | None = None) -> Assignment:
    """Take back the answer to `assignment` (as assignment_get_for_annotator returns it, so
    its rater is the caller). Returns the assignment, open again with a fresh lease.

    Lock order as in judgment_submit: assignment, membership, comparison, then the stats
    rows in id order (stats_increment). The assignment row lock makes a concurrent submit
    or second undo of the same assignment wait, then see the state this one left.
    """
    now = now or timezone.now()
    campaign = assignment.campaign
    if campaign.kind != Campaign.Kind.PAIRWISE:
        raise _refuse(UNDO_NOT_PAIRWISE, "undo_not_pairwise")
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    assignment.campaign = campaign
    if assignment.state == Assignment.State.OPEN:
        raise _refuse(UNDO_NOT_ANSWERED, "assignment_open")
    if assignment.state != Assignment.State.SUBMITTED:
        raise _refuse(UNDO_NOT_SUBMITTED.format(state=assignment.state), "not_submitted")
    if campaign.status == Campaign.Status.CLOSED:
        raise _refuse(UNDO_CAMPAIGN_CLOSED, "campaign_closed")
    membership = (
        Membership.objects.select_for_update()
        .filter(campaign=campaign, user_id=assignment.annotator_id)
        .first()
    )
    membership_ensure_annotator(membership)
    if membership.gate_state == Membership.Gate.BLOCKED:
        raise _refuse(UNDO_BLOCKED, "blocked", status=403)
    judgment = Judgment.objects.get(assignment_id=assignment.pk)
    judgment.campaign, judgment.assignment = campaign, assignment
    _check_may_undo(judgment=judgment, now=now)

    comparison = Comparison.objects.filter(pk=judgment.comparison_id)
    if judgment.is_gold:
        comparison.update(done=F("done") - 1)
    elif not judgment.is_repeat:
        # The slot goes back from done to in flight: the reopened assignment holds it.
        comparison.update(done=F("done") - 1, in_flight=F("in_flight") + 1)
    quality_on_undo(judgment=judgment)
    judgment.delete()
    assignment.state = Assignment.State.OPEN
    assignment.closed_at = None
    assignment.expires_at = now + timedelta(seconds=campaign.lease_seconds)
    assignment.save(update_fields=["state", "closed_at", "expires_at"])
    return assignment


def _check_may_undo(*, judgment: Judgment, now: datetime) -> None:
    if now - judgment.created_at > timedelta(seconds=UNDO_SECONDS):
        raise _refuse(UNDO_TOO_LATE.format(seconds=UNDO_SECONDS), "undo_too_late")
    if judgment.excluded:
        raise _refuse(UNDO_BLOCKED, "blocked", status=403)
    later = Judgment.objects.filter(
        campaign_id=judgment.campaign_id, annotator_id=judgment.annotator_id, pk__gt=judgment.pk
    )
    if later.exists():
        raise _refuse(UNDO_NOT_LAST, "undo_not_last")
    if Assignment.objects.filter(repeat_of=judgment).exists():
        raise _refuse(UNDO_NOT_LAST, "undo_not_last")
    gated = GateEvent.objects.filter(
        campaign_id=judgment.campaign_id,
        annotator_id=judgment.annotator_id,
        created_at__gte=judgment.created_at,
    )
    if gated.exists():
        raise _refuse(UNDO_GATED, "undo_gated")
    status = Comparison.objects.values_list("status", flat=True).get(pk=judgment.comparison_id)
    if status == Comparison.Status.RETIRED:
        raise _refuse(UNDO_COMPARISON_CLOSED, "comparison_closed")
