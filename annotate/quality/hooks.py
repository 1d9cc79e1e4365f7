"""What the submit transaction asks of quality: move the rater's counters, gate on gold.

Runs inside judgment_submit's transaction, with the membership row locked and, for regular
and gold judgments, the comparison row locked by the submit's counter update. Gold
qualification and gold blocks happen here, so the annotator's next request sees them; the
heavier rules run in a task enqueued on commit every few judgments.
"""

from annotate.models import Judgment, Membership
from annotate.quality.active import ACTIVE_REFRESH_EVERY
from annotate.quality.gating import drift_check_open, drift_check_record, gate_transition
from annotate.quality.rater_stats import (
    primary_criterion,
    same_answer,
    stats_add,
    stats_for_update_free,
    stats_increment,
    stats_on_regular,
)
from annotate.quality.rules import (
    DRIFT_COUNTERS,
    GOLD_COUNTERS,
    QUALIFIED,
    REASONS,
    drift_check_due,
    drift_gold_outcome,
    gold_step,
    gold_verdict,
    policy_for,
    stats_figures,
)
from pickwise.enqueue import enqueue_on_commit


def _enqueue_evaluation(judgment: Judgment) -> None:
    from annotate.quality.tasks import rater_evaluate_task

    # Not durable: quality.recompute_all evaluates every rater again if the broker is away.
    enqueue_on_commit(
        rater_evaluate_task, judgment.campaign_id, judgment.annotator_id, durable=False
    )


def _enqueue_active_refresh(judgment: Judgment) -> None:
    from annotate.quality.tasks import active_sampling_refresh_task

    # Not durable: the periodic quality recompute refreshes the order too.
    enqueue_on_commit(active_sampling_refresh_task, judgment.campaign_id, durable=False)


def _on_gold(*, judgment: Judgment, membership: Membership, policy: dict) -> None:
    if judgment.gold_correct is None:
        return
    # Read without a row lock: this rater's own submits are serialised by the membership
    # lock, and the stats row is locked only after any block has taken its comparison locks.
    stats = stats_for_update_free(campaign=judgment.campaign, annotator_id=judgment.annotator_id)
    step = gold_step(
        {name: getattr(stats, name) for name in GOLD_COUNTERS},
        correct=judgment.gold_correct,
        policy=policy,
    )
    after = {name: getattr(stats, name) + step.get(name, 0) for name in GOLD_COUNTERS}
    gold = gold_verdict(after, policy=policy)
    drift = {name: getattr(stats, name) for name in DRIFT_COUNTERS}
    drift["drift_gold_correct"] += int(judgment.gold_correct)
    drift["drift_gold_wrong"] += int(not judgment.gold_correct)
    outcome = drift_gold_outcome(drift, policy=policy)
    if not stats.manual_hold:
        state = membership.gate_state
        figures = {**stats_figures(stats, policy=policy, gold=gold), **after}
        block = gold.block or ("drift_gold" if outcome == "block" else None)
        if block and state != Membership.Gate.BLOCKED:
            gate_transition(
                membership=membership,
                to_state=Membership.Gate.BLOCKED,
                rule=block,
                reason=REASONS[block],
                figures={**figures, **drift},
            )
        elif gold.qualified and state == Membership.Gate.QUALIFYING:
            gate_transition(
                membership=membership,
                to_state=Membership.Gate.ACTIVE,
                rule="gold_sprt",
                reason=QUALIFIED,
                figures=figures,
            )
    stats_add(stats=stats, **step)
    if stats.drift_check_at:
        drift_check_record(stats=stats, correct=judgment.gold_correct, outcome=outcome)


def repeat_agrees(judgment: Judgment) -> bool:
    """Whether a repeat judgment gives its original's answer on the first criterion."""
    primary = primary_criterion(judgment.campaign)
    original = Judgment.objects.values_list("answers", flat=True).get(
        pk=judgment.assignment.repeat_of_id
    )
    return same_answer(judgment.answers.get(primary), original.get(primary))


def _on_repeat(*, judgment: Judgment) -> None:
    stats_increment(
        campaign_id=judgment.campaign_id,
        annotator_id=judgment.annotator_id,
        own={"repeats": 1, "repeats_same": int(repeat_agrees(judgment))},
    )
    _enqueue_evaluation(judgment)


def quality_on_submit(
    *, judgment: Judgment, membership: Membership, images: list[tuple[int, str]] | None = None
) -> None:
    """`images`: a regular judgment's comparison images in canonical order, if already read."""
    policy = policy_for(judgment.campaign)
    if judgment.is_gold:
        _on_gold(judgment=judgment, membership=membership, policy=policy)
    elif judgment.is_repeat:
        _on_repeat(judgment=judgment)
    else:
        stats = stats_on_regular(
            judgment=judgment, campaign=judgment.campaign, images=images, policy=policy
        )
        due = drift_check_due(stats, policy=policy)
        if due:
            drift_check_open(stats=stats)
        if due or stats.judgments % max(1, int(policy["evaluate_every"])) == 0:
            _enqueue_evaluation(judgment)
        if judgment.campaign.active_sampling and judgment.pk % ACTIVE_REFRESH_EVERY == 0:
            _enqueue_active_refresh(judgment)
