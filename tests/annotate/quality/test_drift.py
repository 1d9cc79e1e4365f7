"""Drift: the agreement CUSUM and the drift check it opens (quality.rules), the recent
figures kept beside the lifetime ones, and a rater who turns against the crowd after an
honest start blocked through the real submit path."""

import math

import pytest

from annotate.models import Campaign, Image, Membership
from annotate.quality.models import GateEvent, RaterStats
from annotate.quality.rules import (
    DEFAULT_POLICY,
    drift_check_due,
    drift_cusum_step,
    drift_gold_outcome,
    drift_steps,
    gold_rate_for,
    recent_agreement,
    recent_decay,
    recent_median_ms,
    rules_evaluate,
)
from annotate.quality.selectors import rater_table
from annotate.services.assignments import assignment_next
from annotate.services.gold import gold_build
from annotate.services.judgment_undo import judgment_undo
from annotate.services.judgments import judgment_submit
from tests.annotate.quality.test_gating import _answer_gold, _gold_answer
from tests.factories import annotator, campaign_with_comparisons

POLICY = DEFAULT_POLICY
# ln((1/3) / 0.6) and ln((2/3) / 0.4), by hand.
AGREE, DISAGREE = -0.587787, 0.510826


def _check(correct: int, wrong: int, at: int = 30) -> dict:
    return {"drift_check_at": at, "drift_gold_correct": correct, "drift_gold_wrong": wrong}


def test_the_cusum_steps_are_the_log_likelihood_ratios_of_a_random_rater():
    assert drift_steps(POLICY) == pytest.approx((AGREE, DISAGREE), abs=1e-6)
    assert drift_cusum_step(0.0, pairs=2, agree=0, policy=POLICY) == pytest.approx(2 * DISAGREE)
    assert drift_cusum_step(2.0, pairs=2, agree=1, policy=POLICY) == pytest.approx(
        2.0 + AGREE + DISAGREE
    )
    # It never goes below 0: a long honest record banks no credit against a later switch.
    assert drift_cusum_step(1.0, pairs=2, agree=2, policy=POLICY) == 0.0
    assert drift_cusum_step(1.5, pairs=0, agree=0, policy=POLICY) == 1.5


def test_a_check_is_due_at_the_bound_once_qualified_and_not_while_one_is_open():
    # Four judgments that both co-raters disagree with: 8 x 0.5108 = 4.09 >= 4.
    cusum = 0.0
    for _ in range(4):
        cusum = drift_cusum_step(cusum, pairs=2, agree=0, policy=POLICY)
    assert cusum == pytest.approx(8 * DISAGREE)
    stats = RaterStats(drift_cusum=cusum, gold_passed_at=8)
    assert drift_check_due(stats, policy=POLICY)
    three = RaterStats(drift_cusum=6 * DISAGREE, gold_passed_at=8)  # 3.06
    assert not drift_check_due(three, policy=POLICY)
    assert not drift_check_due(RaterStats(drift_cusum=cusum), policy=POLICY)  # qualifying
    stats.drift_check_at = 40
    assert not drift_check_due(stats, policy=POLICY)
    stats.drift_check_at = 0
    assert not drift_check_due(stats, policy={**POLICY, "drift_bound": 0})


def test_the_gold_after_a_check_opened_blocks_at_ln_999_and_passes_at_ln_19():
    # +ln(0.9/0.6) = 0.4055 per right answer, ln(0.1/0.4) = -1.3863 per wrong one.
    assert drift_gold_outcome(_check(8, 0), policy=POLICY) == "pass"  # 3.24 >= 2.944
    assert drift_gold_outcome(_check(7, 0), policy=POLICY) is None  # 2.84
    assert drift_gold_outcome(_check(0, 5), policy=POLICY) == "block"  # -6.93 <= -6.907
    assert drift_gold_outcome(_check(0, 4), policy=POLICY) is None  # -5.55
    assert drift_gold_outcome(_check(2, 6), policy=POLICY) == "block"  # -7.51
    assert drift_gold_outcome(_check(0, 9, at=0), policy=POLICY) is None  # no check open


def test_recent_figures_weigh_the_latest_evidence_most():
    assert recent_decay(POLICY, steps=2, span_key="recent_pairs") == pytest.approx(0.99**2)
    assert recent_decay(POLICY, steps=1, span_key="recent_judgments") == pytest.approx(0.98)
    stats = RaterStats(co_recent_pairs=40.0, co_recent_agree=10.0, speed_recent_log=math.log(900))
    assert recent_agreement(stats) == 0.25
    assert recent_median_ms(stats) == pytest.approx(900)
    assert recent_agreement(RaterStats()) is None and recent_median_ms(RaterStats()) is None


def test_an_open_check_raises_the_gold_rate_of_a_qualified_rater():
    campaign = Campaign(gold_rate=0.02, repeat_rate=0.05, qc_policy={})
    confirmed = {"gold_passed_at": 8, "post_gold_correct": 10, "post_gold_wrong": 0}
    assert gold_rate_for(campaign=campaign, **confirmed) == 0.02
    assert gold_rate_for(campaign=campaign, **confirmed, drift_check_at=40) == 0.5
    crowded = Campaign(gold_rate=0.02, repeat_rate=0.6, qc_policy={})
    assert gold_rate_for(campaign=crowded, **confirmed, drift_check_at=40) == pytest.approx(0.4)
    no_gold = Campaign(gold_rate=0.0, repeat_rate=0.05, qc_policy={})
    assert gold_rate_for(campaign=no_gold, **confirmed, drift_check_at=40) == 0.0


def test_fast_recent_answers_warn_and_an_open_check_does_not():
    stats = RaterStats(judgments=60, gold_passed_at=8, speed_hist=[], drift_check_at=55)
    stats.speed_recent_log = math.log(1000)
    verdict = rules_evaluate(stats=stats, policy=POLICY, p_e=None, campaign_median_ms=4000)
    assert verdict.block == [] and verdict.warn == ["speed_recent"]
    assert verdict.figures["recent_median_ms"] == 1000
    assert verdict.figures["drift_check_at"] == 55
    # 1,000 ms is not under 0.35 x 2,500 ms; no check open.
    stats.drift_check_at = 0
    verdict = rules_evaluate(stats=stats, policy=POLICY, p_e=None, campaign_median_ms=2500)
    assert verdict.warn == []


# -- through the submit -----------------------------------------------------------------------


def _campaign() -> Campaign:
    # The campaign's normal gold rate; no repeats, so every non-gold task is counted.
    campaign = campaign_with_comparisons(
        prompts=60, qualification_size=15, gold_rate=0.02, repeat_rate=0.0, overlap=3
    )
    gold_build(campaign=campaign, count=40)
    return campaign


def _pick(assignment, *, model: str) -> dict:
    uid = Image.objects.filter(uid__in=assignment.presented, model_name=model).values_list(
        "uid", flat=True
    )
    return {"overall": str(uid.get())}


def _judge(campaign, user, *, model: str, regular: int, gold_correct=True) -> None:
    """Answer tasks until `regular` more are counted: regular ones for `model`'s image,
    gold right (or as `gold_correct` says, cycling)."""
    answers = iter(gold_correct) if isinstance(gold_correct, list) else None
    target = RaterStats.objects.get(annotator=user).judgments + regular
    while RaterStats.objects.get(annotator=user).judgments < target:
        if Membership.objects.get(user=user).gate_state == Membership.Gate.BLOCKED:
            return
        assignment = assignment_next(campaign=campaign, annotator=user)
        if assignment.is_gold:
            correct = next(answers, True) if answers else gold_correct
            judgment_submit(
                assignment=assignment, answers=_gold_answer(assignment, correct=correct)
            )
        else:
            judgment_submit(assignment=assignment, answers=_pick(assignment, model=model))


@pytest.mark.django_db
def test_the_submit_moves_the_cusum_and_recent_figures_as_the_rules_do():
    campaign = _campaign()
    crowd = annotator(campaign)
    _answer_gold(campaign, crowd, correct=True, times=8)
    _judge(campaign, crowd, model="model-a", regular=10)
    user = annotator(campaign)
    _answer_gold(campaign, user, correct=True, times=8)
    _judge(campaign, user, model="model-b", regular=3)
    stats = RaterStats.objects.get(annotator=user)
    # The crowd judged the first ten comparisons; each disagreeing judgment on one of them
    # moved the CUSUM by 0.5108 and the recent pairs by one, none agreeing.
    pairs = stats.co_pairs
    assert stats.co_agree == 0 and stats.co_recent_agree == 0.0
    assert stats.drift_cusum == pytest.approx(pairs * DISAGREE)
    assert stats.co_recent_pairs == pytest.approx(sum(0.99**i for i in range(pairs)))
    assert stats.speed_recent_log is not None
    # The crowd rater gained the same pairs on their own counters, disagreeing too.
    theirs = RaterStats.objects.get(annotator=crowd)
    assert theirs.drift_cusum == pytest.approx(pairs * DISAGREE)
    # The stats page shows the recent figures beside the lifetime ones.
    row = next(r for r in rater_table(campaign=campaign) if r["user_id"] == user.pk)
    assert row["agreement"] == 0.0 and row["recent_agreement"] == 0.0
    assert row["recent_median_seconds"] is not None and row["drift_check"] is False
    # Every gold answer so far (the qualifying eight and any since) is in the window of 20.
    stats.refresh_from_db()
    assert row["recent_gold_n"] == stats.gold_correct + stats.gold_wrong
    assert row["recent_gold_wrong"] == stats.gold_wrong == 0


@pytest.mark.django_db
def test_undo_of_a_gold_answer_takes_it_out_of_an_open_check():
    campaign = _campaign()
    user = annotator(campaign)
    _answer_gold(campaign, user, correct=True, times=8)
    RaterStats.objects.filter(annotator=user).update(drift_check_at=3, drift_gold_correct=2)
    for correct in (False, True):
        assignment = assignment_next(campaign=campaign, annotator=user)
        while not assignment.is_gold:  # half the tasks are gold while the check is open
            judgment_submit(assignment=assignment, answers=_pick(assignment, model="model-a"))
            assignment = assignment_next(campaign=campaign, annotator=user)
        judgment_submit(assignment=assignment, answers=_gold_answer(assignment, correct=correct))
        stats = RaterStats.objects.get(annotator=user)
        assert (stats.drift_gold_correct, stats.drift_gold_wrong) == (2 + correct, 1 - correct)
        judgment_undo(assignment=assignment)
        stats.refresh_from_db()
        assert (stats.drift_gold_correct, stats.drift_gold_wrong, stats.drift_check_at) == (2, 0, 3)
        reopened = assignment_next(campaign=campaign, annotator=user)
        judgment_submit(assignment=reopened, answers=_gold_answer(reopened, correct=True))
        RaterStats.objects.filter(annotator=user).update(drift_gold_correct=2)


@pytest.mark.django_db
@pytest.mark.slow
def test_a_rater_who_turns_against_the_crowd_is_blocked_through_the_submit():
    campaign = _campaign()
    crowd = [annotator(campaign) for _ in range(2)]
    for rater in crowd:
        _answer_gold(campaign, rater, correct=True, times=8)
        _judge(campaign, rater, model="model-a", regular=50)
    user = annotator(campaign)
    _answer_gold(campaign, user, correct=True, times=8)
    _judge(campaign, user, model="model-a", regular=20)
    stats = RaterStats.objects.get(annotator=user)
    assert stats.drift_cusum == 0.0 and not stats.drift_check_at
    # The switch: every later answer differs from the crowd's and gold is right 1 time in 3.
    _judge(campaign, user, model="model-b", regular=30, gold_correct=[False, False, True] * 20)
    membership = Membership.objects.get(user=user)
    assert membership.gate_state == Membership.Gate.BLOCKED
    event = GateEvent.objects.get(annotator=user, to_state="blocked")
    # The check opened on the agreement CUSUM and its gold (half the tasks, where the
    # campaign asks 2%) blocked: by its own SPRT or by the one since qualifying, whichever
    # crosses first on the same answers.
    assert event.figures["drift_check_at"] > 20
    assert event.rule in ("drift_gold", "gold_after_qualifying")
    stats = RaterStats.objects.get(annotator=user)
    assert stats.judgments - 20 <= 30
    assert event.figures["drift_gold_wrong"] >= 3  # gold answered since the check opened
    # The lifetime gold SPRT alone would not have blocked yet.
    assert event.figures["gold_llr"] > -DEFAULT_POLICY["sprt_block_bound"]
