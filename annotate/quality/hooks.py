"""What the submit transaction asks of quality: update the rater's evidence, gate if due.

Runs inside judgment_submit's transaction with the membership row locked.
"""

import math

from django.db.models import Count, Q
from django.utils import timezone

from annotate.models import Judgment, Membership

# Gold SPRT (specs/quality.md): H0 p=0.6 correct vs H1 p=0.9, thresholds ln(19) = 2.944.
SPRT_P0, SPRT_P1 = 0.6, 0.9
SPRT_BOUND = math.log(19)
QUALIFIED = "Passed the qualification items."
FAILED_GOLD = "Too many wrong answers on items with a known answer."


def gold_llr(*, correct: int, wrong: int, p0: float = SPRT_P0, p1: float = SPRT_P1) -> float:
    return correct * math.log(p1 / p0) + wrong * math.log((1 - p1) / (1 - p0))


def quality_on_submit(*, judgment: Judgment, membership: Membership) -> None:
    if not judgment.is_gold or judgment.gold_correct is None:
        return
    counts = Judgment.objects.filter(
        campaign_id=judgment.campaign_id, annotator_id=judgment.annotator_id, is_gold=True
    ).aggregate(
        correct=Count("id", filter=Q(gold_correct=True)),
        wrong=Count("id", filter=Q(gold_correct=False)),
    )
    llr = gold_llr(correct=counts["correct"], wrong=counts["wrong"])
    state = membership.gate_state
    if llr <= -SPRT_BOUND and state != Membership.Gate.BLOCKED:
        _set_state(membership, Membership.Gate.BLOCKED, FAILED_GOLD)
    elif llr >= SPRT_BOUND and state == Membership.Gate.QUALIFYING:
        _set_state(membership, Membership.Gate.ACTIVE, QUALIFIED)


def _set_state(membership: Membership, state: str, reason: str) -> None:
    membership.gate_state = state
    membership.gate_reason = reason
    membership.gate_changed_at = timezone.now()
    membership.save(update_fields=["gate_state", "gate_reason", "gate_changed_at"])
