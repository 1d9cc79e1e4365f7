"""Submitting a judgment: validate, store once, move the counters, all in one transaction."""

import json
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotate.answers import validate_answers
from annotate.models import Assignment, Campaign, Comparison, Judgment, Membership
from annotate.quality.hooks import quality_on_submit
from annotate.selectors import comparison_canonical_images
from annotate.services.assignments import assignment_expire, membership_ensure_annotator
from annotate.services.overlap import comparison_settle
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


def _canonical(answers: dict) -> dict:
    """Answers compared as meaning: the order of images within a ranking tier is not."""
    return {
        key: [sorted(tier) for tier in value] if isinstance(value, list) else value
        for key, value in answers.items()
    }


def judgment_answers_match(*, judgment: Judgment, campaign: Campaign, answers: Any) -> bool:
    """Whether `answers` say what the stored judgment says: a resend of the same answer
    (after a lost response) rather than a second, different answer, which is not stored."""
    try:
        normalised = validate_answers(
            kind=campaign.kind,
            criteria=campaign.criteria,
            image_uids=judgment.presented,
            answers=answers,
        )
    except ApplicationError:
        return False
    return _canonical(normalised) == _canonical(judgment.answers)


def _state_after_failed_claim(*, assignment: Assignment) -> tuple[Judgment, bool]:
    """The claim updated nothing: answer a repeated submit, or say why the task is gone."""
    state = Assignment.objects.values_list("state", flat=True).get(pk=assignment.pk)
    if state == Assignment.State.SUBMITTED:
        return Judgment.objects.get(assignment_id=assignment.pk), False
    if state == Assignment.State.SKIPPED:
        raise ApplicationError(ASSIGNMENT_SKIPPED, code="assignment_skipped", status=409)
    if state == Assignment.State.EXPIRED:
        raise ApplicationError(ASSIGNMENT_EXPIRED, code="assignment_expired", status=409)
    # Still open, so its lease ran out.
    if assignment.campaign.status == Campaign.Status.CLOSED:
        raise ApplicationError(CAMPAIGN_CLOSED, code="campaign_closed", status=409)
    raise _LeaseRanOut


# PostgreSQL: move a regular comparison's slot from in flight to done and read its images in
# canonical order (what the ratings are encoded against) in one round trip.
_COUNT_REGULAR_SQL = """
UPDATE annotate_comparison SET done = done + 1, in_flight = in_flight - 1
WHERE id = %(comparison)s
RETURNING (
    SELECT json_agg(json_build_array(i.id, i.uid) ORDER BY i.id)
    FROM annotate_comparisonimage ci JOIN annotate_image i ON i.id = ci.image_id
    WHERE ci.comparison_id = %(comparison)s
)::text
"""


def _count_regular(comparison_id: int) -> list[tuple[int, str]]:
    """The slot moves from in flight to done (the sum, and so the status, is unchanged).

    Returns the comparison's (image id, uid) in canonical order. Takes the comparison's row
    lock, which serialises the submits of one comparison (see stats_on_regular).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_COUNT_REGULAR_SQL, {"comparison": comparison_id})
            images = json.loads(cursor.fetchone()[0])
        return [(image_id, str(uid)) for image_id, uid in images]
    Comparison.objects.filter(pk=comparison_id).update(
        done=F("done") + 1, in_flight=F("in_flight") - 1
    )
    return comparison_canonical_images(comparison_id=comparison_id)


# The claim and the membership lock as written SQL: the ORM built and compiled them anew on
# every submit, about 0.8 ms of CPU of the request's 6 to 7 (bench/RESULTS.md, "Annotation
# loop"). Plain SQL that SQLite and PostgreSQL both speak; FOR UPDATE where there is one.
_CLAIM_SQL = """
UPDATE annotate_assignment SET state = %s, closed_at = %s
WHERE id = %s AND state = %s AND expires_at > %s
"""
_MEMBERSHIP_SQL = "SELECT * FROM annotate_membership WHERE campaign_id = %s AND user_id = %s"


def _claim(*, assignment_id: int, now: datetime) -> bool:
    """Open and within its lease -> submitted; True if this call did it. Locks the row."""
    at = connection.ops.adapt_datetimefield_value(now)  # as the ORM stores it (SQLite: text)
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL, [Assignment.State.SUBMITTED, at, assignment_id, Assignment.State.OPEN, at]
        )
        return cursor.rowcount == 1


def _membership_for_update(*, campaign_id: int, user_id: int) -> Membership | None:
    sql = _MEMBERSHIP_SQL + (" FOR UPDATE" if connection.features.has_select_for_update else "")
    return next(iter(Membership.objects.raw(sql, [campaign_id, user_id])), None)


@transaction.atomic
def _submit(
    *, assignment: Assignment, answers: Any, duration_ms: Any, now: datetime
) -> tuple[Judgment, bool]:
    """Needs `assignment` with its campaign, as the fetch-and-authorise helper returns it.

    Lock order: assignment, membership, comparison (the same as assignment_next's tail).
    The assignment is claimed with a conditional update, which locks its row: a concurrent
    submit of the same assignment waits here, then finds it submitted and answers with the
    stored judgment. Any error below rolls the claim back with everything else.
    """
    claimed = _claim(assignment_id=assignment.pk, now=now)
    if not claimed:
        return _state_after_failed_claim(assignment=assignment)
    campaign = assignment.campaign
    if campaign.status == Campaign.Status.CLOSED:
        raise ApplicationError(CAMPAIGN_CLOSED, code="campaign_closed", status=409)
    if duration_ms is not None and (
        isinstance(duration_ms, bool)
        or not isinstance(duration_ms, int)
        or not 0 <= duration_ms <= MAX_DURATION_MS
    ):
        raise ApplicationError(BAD_DURATION, code="invalid")
    membership = membership_ensure_annotator(
        _membership_for_update(campaign_id=campaign.pk, user_id=assignment.annotator_id)
    )
    if membership.gate_state == Membership.Gate.BLOCKED:
        raise ApplicationError(BLOCKED, code="blocked", status=403)

    normalised = validate_answers(
        kind=campaign.kind,
        criteria=campaign.criteria,
        image_uids=assignment.presented,
        answers=answers,
    )
    gold_correct, images = None, None
    if assignment.is_repeat:
        pass  # a repeat measures the rater; it does not count toward overlap
    elif assignment.is_gold:
        Comparison.objects.filter(pk=assignment.comparison_id).update(done=F("done") + 1)
        gold_answer = Comparison.objects.values_list("gold_answer", flat=True).get(
            pk=assignment.comparison_id
        )
        if gold_answer:
            gold_correct = gold_is_correct(gold_answer=gold_answer, answers=normalised)
    else:
        images = _count_regular(assignment.comparison_id)
    judgment = Judgment.objects.create(
        assignment=assignment,
        campaign=campaign,
        comparison_id=assignment.comparison_id,
        annotator_id=assignment.annotator_id,
        answers=normalised,
        presented=assignment.presented,
        duration_ms=duration_ms,
        server_ms=max(0, int((now - assignment.issued_at).total_seconds() * 1000)),
        is_gold=assignment.is_gold,
        is_repeat=assignment.is_repeat,
        gold_correct=gold_correct,
        never_shown=duration_ms is None,
    )
    assignment.state = Assignment.State.SUBMITTED
    assignment.closed_at = now
    quality_on_submit(judgment=judgment, membership=membership, images=images)
    if images is not None and campaign.dynamic_overlap:
        # After the ratings are stored: the settling test reads them. Off by default, and
        # one query and one update per submit when on.
        comparison_settle(campaign=campaign, comparison_id=assignment.comparison_id)
    return judgment, True
