"""Gating writes: a rater's state changes, logged as GateEvents, and what a block does to
their judgments (excluded, comparisons reopened) and an unblock undoes. The decisions come
from annotate.quality.rules.

States: qualifying -> active (gold SPRT passed) -> warned (a warn flag; still counted) ->
blocked (a block rule or an admin).

Lock order everywhere: membership, then comparisons (in id order), then stats rows.
"""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, F, Value, When
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from annotate.models import Assignment, Comparison, Judgment, Membership
from annotate.quality.models import GateEvent, RaterStats, Rating


def gate_transition(
    *,
    membership: Membership,
    to_state: str,
    rule: str,
    reason: str,
    figures: dict[str, Any],
    by: AbstractBaseUser | None = None,
) -> GateEvent | None:
    """Move the rater to `to_state`, log it, exclude or restore their judgments.

    Needs a transaction with the membership row locked. A block reopens the rater's
    counted comparisons; an unblock restores what still fits (see judgments_restore).
    """
    from_state = membership.gate_state
    if from_state == to_state:
        return None
    figures = dict(figures)
    if to_state == Membership.Gate.BLOCKED:
        figures["exclusion"] = judgments_exclude(membership=membership)
    elif from_state == Membership.Gate.BLOCKED:
        figures["restore"] = judgments_restore(membership=membership)
    membership.gate_state = to_state
    membership.gate_reason = reason[:500]
    membership.gate_changed_at = timezone.now()
    membership.save(update_fields=["gate_state", "gate_reason", "gate_changed_at"])
    event = GateEvent.objects.create(
        campaign_id=membership.campaign_id,
        annotator_id=membership.user_id,
        from_state=from_state,
        to_state=to_state,
        rule=rule,
        reason=reason[:500],
        by=by,
        figures=figures,
    )
    from webhooks.events import rater_gate_announce

    rater_gate_announce(membership=membership, from_state=from_state, gate_event=event)
    if "exclusion" in figures or "restore" in figures:
        # Others' co-rater counters included (or lacked) this rater's ratings: rebuild them.
        from annotate.quality.tasks import quality_recompute_task
        from pickwise.enqueue import enqueue_on_commit

        # Not durable: quality.recompute_all redoes it if the broker is away.
        enqueue_on_commit(quality_recompute_task, membership.campaign_id, durable=False)
    return event


def _counted(membership: Membership):
    return Judgment.objects.filter(
        campaign_id=membership.campaign_id,
        annotator_id=membership.user_id,
        is_gold=False,
        is_repeat=False,
    )


def _lock_comparisons(ids: list[int]) -> list[Comparison]:
    return list(
        Comparison.objects.select_for_update()
        .filter(id__in=ids)
        .order_by("id")
        .only("id", "done", "in_flight", "wanted", "status")
    )


def judgments_exclude(*, membership: Membership) -> dict[str, int]:
    """Exclude all the rater's judgments and reopen their comparisons. Needs a transaction.

    Each counted judgment gives its slot back (done -= 1, status open unless retired), so
    overlap is met by others. The rater's open assignments expire and release theirs.
    """
    from annotate.services.assignments import assignment_expire

    counted = list(
        _counted(membership).filter(excluded=False).values_list("comparison_id", flat=True)
    )
    _lock_comparisons(counted)
    reopened = Comparison.objects.filter(id__in=counted).update(
        done=F("done") - 1,
        status=Case(
            When(status=Comparison.Status.RETIRED, then=Value(Comparison.Status.RETIRED)),
            default=Value(Comparison.Status.OPEN),
        ),
    )
    mine = Judgment.objects.filter(
        campaign_id=membership.campaign_id, annotator_id=membership.user_id
    )
    excluded = mine.filter(excluded=False).update(excluded=True)
    Rating.objects.filter(
        campaign_id=membership.campaign_id, annotator_id=membership.user_id
    ).update(excluded=True)
    expired = 0
    for assignment in Assignment.objects.filter(
        campaign_id=membership.campaign_id,
        annotator_id=membership.user_id,
        state=Assignment.State.OPEN,
    ):
        expired += int(assignment_expire(assignment=assignment))
    return {
        "judgments_excluded": excluded,
        "comparisons_reopened": reopened,
        "assignments_expired": expired,
    }


def judgments_restore(*, membership: Membership) -> dict[str, int]:
    """Count the rater's judgments again after an unblock. Needs a transaction.

    A regular judgment comes back only where its comparison still has a free slot
    (done + in_flight < wanted). Where others filled the slots meanwhile, it stays excluded:
    overlap is the campaign's budget per comparison and the labels that filled it were
    collected in good faith, so we neither exceed it nor raise `wanted` behind the
    campaign's back. Gold and repeat judgments always come back (they hold no slot).
    """
    rows = list(_counted(membership).filter(excluded=True).values_list("id", "comparison_id"))
    free = {
        c.pk
        for c in _lock_comparisons([comparison_id for _, comparison_id in rows])
        if c.done + c.in_flight < c.wanted
    }
    restored = [judgment_id for judgment_id, comparison_id in rows if comparison_id in free]
    Comparison.objects.filter(id__in=free).update(
        done=F("done") + 1,
        status=Case(
            When(status=Comparison.Status.RETIRED, then=Value(Comparison.Status.RETIRED)),
            When(
                GreaterThanOrEqual(F("done") + F("in_flight") + 1, F("wanted")),
                then=Value(Comparison.Status.FULL),
            ),
            default=Value(Comparison.Status.OPEN),
        ),
    )
    mine = Judgment.objects.filter(
        campaign_id=membership.campaign_id, annotator_id=membership.user_id
    )
    Judgment.objects.filter(id__in=restored).update(excluded=False)
    others = (
        mine.filter(excluded=True).exclude(is_gold=False, is_repeat=False).update(excluded=False)
    )
    Rating.objects.filter(judgment_id__in=restored).update(excluded=False)
    return {
        "judgments_restored": len(restored) + others,
        "judgments_kept_excluded": len(rows) - len(restored),
    }


def drift_check_open(*, stats: RaterStats) -> None:
    """Open a drift check (quality.rules.drift_check_due): more gold follows and the gold
    answered from now on decides. Needs the submit's transaction, whose UPDATE of the
    counters holds the stats row lock already."""
    RaterStats.objects.filter(pk=stats.pk).update(
        drift_check_at=max(1, stats.judgments), drift_gold_correct=0, drift_gold_wrong=0
    )


def drift_check_record(*, stats: RaterStats, correct: bool, outcome: str | None) -> None:
    """Count a gold answer given while a drift check is open. A passed check closes and
    starts the CUSUM afresh; after a block the figures stay as they were, for the record.
    Needs the submit's transaction, after any gate transition (stats rows lock last)."""
    if outcome == "pass":
        RaterStats.objects.filter(pk=stats.pk).update(
            drift_check_at=0, drift_gold_correct=0, drift_gold_wrong=0, drift_cusum=0.0
        )
        return
    RaterStats.objects.filter(pk=stats.pk).update(
        drift_gold_correct=F("drift_gold_correct") + int(correct),
        drift_gold_wrong=F("drift_gold_wrong") + int(not correct),
    )
