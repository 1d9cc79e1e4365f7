"""The gold SPRT over the latest gold answers (policy gold_window): a rater who stops trying
after a long honest record is blocked, an honest one is not, and the window stays exact
through undo and recompute."""

import itertools

import pytest

from annotate.models import Membership
from annotate.quality.models import GateEvent, RaterStats
from annotate.quality.rater_stats import stats_compute
from annotate.quality.rules import (
    DEFAULT_POLICY,
    GOLD_COUNTERS,
    gold_step,
    gold_verdict,
    gold_window,
)
from annotate.services.assignments import assignment_next
from annotate.services.gold import gold_build
from annotate.services.judgment_undo import judgment_undo
from annotate.services.judgments import judgment_submit
from pickwise.errors import ApplicationError
from tests.annotate.quality.test_gating import _answer_gold, _gold_answer
from tests.factories import annotator, campaign_with_comparisons

BOUND = DEFAULT_POLICY["sprt_block_bound"]  # once qualified


def _replay(answers: list[bool], policy=DEFAULT_POLICY) -> dict[str, int]:
    counters = dict.fromkeys(GOLD_COUNTERS, 0)
    for correct in answers:
        for name, step in gold_step(counters, correct=correct, policy=policy).items():
            counters[name] += step
    return counters


def test_the_window_holds_only_the_latest_answers():
    counters = _replay([False] * 5 + [True] * 20)
    assert gold_window(counters, policy=DEFAULT_POLICY) == (20, 0)
    assert (counters["gold_correct"], counters["gold_wrong"]) == (20, 5)
    counters = _replay([True] * 30 + [False, True, False])
    assert gold_window(counters, policy=DEFAULT_POLICY) == (18, 2)
    assert counters["gold_recent_n"] == 20
    small = {**DEFAULT_POLICY, "gold_window": 4}
    assert gold_window(_replay([False, False, True, True, True], small), policy=small) == (3, 1)


def test_the_window_blocks_where_the_lifetime_sprts_are_masked_by_a_long_record():
    # 40 right, then 8 wrong among the latest 20: lifetime LLR 40*0.405 - 8*1.386 = 5.1 and
    # since qualifying (32 right, 8 wrong) 1.9, but the window's 12 right, 8 wrong: -6.2.
    answers = [True] * 28 + [True, False, True, False, True] * 4
    counters = _replay(answers)
    assert gold_window(counters, policy=DEFAULT_POLICY) == (12, 8)
    verdict = gold_verdict(counters, policy=DEFAULT_POLICY)
    assert verdict.llr > BOUND and verdict.post_llr > -BOUND
    assert verdict.recent_llr == pytest.approx(12 * 0.4055 - 8 * 1.3863, abs=1e-3)
    assert verdict.block == "gold_recent"
    # Seven wrong of the latest 20 (-4.44) is still short of ln 99 = 4.595.
    seven = _replay([True] * 27 + [True, True, False] * 6 + [True, False])
    assert gold_window(seven, policy=DEFAULT_POLICY) == (13, 7)
    assert gold_verdict(seven, policy=DEFAULT_POLICY).block is None


def test_the_window_does_not_block_before_qualifying():
    # Before qualifying the lifetime SPRT decides; the window only adds to it afterwards.
    counters = {**dict.fromkeys(GOLD_COUNTERS, 0), "gold_recent_bits": 0b111, "gold_recent_n": 3}
    counters.update(gold_correct=4, gold_wrong=3)  # lifetime LLR -2.54: still undecided
    assert gold_verdict(counters, policy=DEFAULT_POLICY).block is None
    counters.update(gold_recent_bits=0b1111, gold_recent_n=4)  # four wrong: -5.55
    counters.update(gold_correct=8, gold_wrong=4)  # lifetime -2.30
    assert gold_verdict(counters, policy=DEFAULT_POLICY).block is None
    assert gold_verdict({**counters, "gold_passed_at": 8}, policy=DEFAULT_POLICY).block


def _campaign(**policy):
    campaign = campaign_with_comparisons(
        prompts=160, qualification_size=15, gold_rate=0.25, repeat_rate=0.0, qc_policy=policy
    )
    gold_build(campaign=campaign, count=90)
    return campaign


def _work(campaign, user, *, honest_for: int, after, max_tasks: int = 260) -> int | None:
    """Regular tasks answered with a tie; gold right while fewer than `honest_for` regular
    judgments are counted, then from the cycle `after`. Returns the counted judgments when
    the rater was blocked, None if never."""
    after = itertools.cycle(after)
    for _ in range(max_tasks):
        if Membership.objects.get(user=user).gate_state == Membership.Gate.BLOCKED:
            return RaterStats.objects.get(annotator=user).judgments
        try:
            assignment = assignment_next(campaign=campaign, annotator=user)
        except ApplicationError:
            break
        if assignment is None:
            break
        if assignment.is_gold:
            counted = RaterStats.objects.get(annotator=user).judgments
            correct = True if counted < honest_for else next(after)
            answers = _gold_answer(assignment, correct=correct)
        else:
            answers = {"overall": "tie"}
        judgment_submit(assignment=assignment, answers=answers)
    state = Membership.objects.get(user=user).gate_state
    return RaterStats.objects.get(annotator=user).judgments if state == "blocked" else None


def _assert_gold_counters_match(campaign, user) -> None:
    stats = RaterStats.objects.get(annotator=user)
    computed = stats_compute(campaign=campaign)[user.pk]
    for name in GOLD_COUNTERS:
        assert getattr(stats, name) == computed[name], name


@pytest.mark.django_db
@pytest.mark.slow
def test_a_rater_honest_for_60_judgments_then_random_is_blocked_by_the_window():
    campaign = _campaign()
    user = annotator(campaign)
    _answer_gold(campaign, user, correct=True, times=8)
    # Random from the 60th counted judgment: gold right one time in three.
    blocked_at = _work(campaign, user, honest_for=60, after=[False, True, False])
    assert blocked_at is not None and blocked_at >= 60
    event = GateEvent.objects.get(annotator=user, to_state="blocked")
    assert event.rule == "gold_recent"
    # The lifetime SPRTs would not have moved: the honest record masks the switch.
    assert event.figures["gold_llr"] > -BOUND and event.figures["post_gold_llr"] > -BOUND
    assert event.figures["recent_gold_llr"] <= -BOUND
    assert event.figures["recent_gold_wrong"] >= 8
    _assert_gold_counters_match(campaign, user)


@pytest.mark.django_db
@pytest.mark.slow
def test_an_honest_rater_with_a_miss_in_ten_is_not_blocked():
    campaign = _campaign()
    user = annotator(campaign)
    _answer_gold(campaign, user, correct=True, times=8)
    misses = [True] * 4 + [False] + [True] * 5
    assert _work(campaign, user, honest_for=0, after=misses, max_tasks=200) is None
    stats = RaterStats.objects.get(annotator=user)
    assert stats.gold_wrong >= 3 and stats.gold_recent_n == DEFAULT_POLICY["gold_window"]
    assert not GateEvent.objects.filter(annotator=user, to_state="blocked").exists()
    _assert_gold_counters_match(campaign, user)


@pytest.mark.django_db
def test_undo_of_a_gold_answer_puts_the_window_back_exactly():
    # sprt_bound out of reach: no gate decision follows an answer, so each may be undone.
    campaign = campaign_with_comparisons(
        prompts=20, qualification_size=15, gold_rate=0.5, qc_policy={"sprt_bound": 1000}
    )
    gold_build(campaign=campaign, count=15)
    user = annotator(campaign)
    for correct in [True, False, True, True, False, False, True]:
        before = {
            name: getattr(RaterStats.objects.filter(annotator=user).first(), name, 0)
            for name in GOLD_COUNTERS
        }
        assignment = assignment_next(campaign=campaign, annotator=user)
        assert assignment.is_gold
        judgment_submit(assignment=assignment, answers=_gold_answer(assignment, correct=correct))
        stats = RaterStats.objects.get(annotator=user)
        assert stats.gold_recent_bits & 1 == int(not correct)
        assert stats.gold_recent_n == before["gold_recent_n"] + 1
        judgment_undo(assignment=assignment)
        stats.refresh_from_db()
        assert {name: getattr(stats, name) for name in GOLD_COUNTERS} == before
        _assert_gold_counters_match(campaign, user) if before["gold_recent_n"] else None
        # Answered again, as the annotator does after an undo.
        reopened = assignment_next(campaign=campaign, annotator=user)
        judgment_submit(assignment=reopened, answers=_gold_answer(reopened, correct=correct))
        _assert_gold_counters_match(campaign, user)
    stats = RaterStats.objects.get(annotator=user)
    assert (stats.gold_recent_bits, stats.gold_recent_n) == (0b0100110, 7)
