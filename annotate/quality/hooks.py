"""What the submit transaction asks of quality: move the rater's counters, gate on gold.

Runs inside judgment_submit's transaction, with the membership row locked and, for regular
and gold judgments, the comparison row locked by the submit's counter update. Gold
qualification and gold blocks happen here, so the annotator's next request sees them; the
heavier rules run in a task enqueued on commit every few judgments.
"""

from django.db import transaction

from annotate.models import Judgment, Membership
from annotate.quality.gating import (
    QUALIFIED,
    REASONS,
    gate_transition,
    gold_llr,
    policy_for,
    stats_figures,
)
from annotate.quality.rater_stats import (
    primary_criterion,
    same_answer,
    stats_add,
    stats_for_update_free,
    stats_on_regular,
)


def _enqueue_evaluation(judgment: Judgment) -> None:
    from annotate.quality.tasks import rater_evaluate_task

    campaign_id, user_id = judgment.campaign_id, judgment.annotator_id
    transaction.on_commit(lambda: rater_evaluate_task.delay(campaign_id, user_id))


def _on_gold(*, judgment: Judgment, membership: Membership, policy: dict) -> None:
    if judgment.gold_correct is None:
        return
    # Read without a row lock: this rater's own submits are serialised by the membership
    # lock, and the stats row is locked only after any block has taken its comparison locks.
    stats = stats_for_update_free(campaign=judgment.campaign, annotator_id=judgment.annotator_id)
    step = {
        "gold_correct": int(judgment.gold_correct),
        "gold_wrong": int(not judgment.gold_correct),
    }
    llr = gold_llr(
        correct=stats.gold_correct + step["gold_correct"],
        wrong=stats.gold_wrong + step["gold_wrong"],
        p0=policy["sprt_p0"],
        p1=policy["sprt_p1"],
    )
    if not stats.manual_hold:
        state = membership.gate_state
        figures = {
            **stats_figures(stats, llr=llr),
            **{k: getattr(stats, k) + v for k, v in step.items()},
        }
        if llr <= -policy["sprt_bound"] and state != Membership.Gate.BLOCKED:
            gate_transition(
                membership=membership,
                to_state=Membership.Gate.BLOCKED,
                rule="gold_sprt",
                reason=REASONS["gold_sprt"],
                figures=figures,
            )
        elif llr >= policy["sprt_bound"] and state == Membership.Gate.QUALIFYING:
            gate_transition(
                membership=membership,
                to_state=Membership.Gate.ACTIVE,
                rule="gold_sprt",
                reason=QUALIFIED,
                figures=figures,
            )
    stats_add(stats=stats, **step)


def _on_repeat(*, judgment: Judgment) -> None:
    primary = primary_criterion(judgment.campaign)
    original = Judgment.objects.values_list("answers", flat=True).get(
        pk=judgment.assignment.repeat_of_id
    )
    stats = stats_for_update_free(campaign=judgment.campaign, annotator_id=judgment.annotator_id)
    same = same_answer(judgment.answers.get(primary), original.get(primary))
    stats_add(stats=stats, repeats=1, repeats_same=int(same))
    _enqueue_evaluation(judgment)


def quality_on_submit(*, judgment: Judgment, membership: Membership) -> None:
    policy = policy_for(judgment.campaign)
    if judgment.is_gold:
        _on_gold(judgment=judgment, membership=membership, policy=policy)
    elif judgment.is_repeat:
        _on_repeat(judgment=judgment)
    else:
        stats = stats_on_regular(judgment=judgment, campaign=judgment.campaign)
        if stats.judgments % max(1, int(policy["evaluate_every"])) == 0:
            _enqueue_evaluation(judgment)
