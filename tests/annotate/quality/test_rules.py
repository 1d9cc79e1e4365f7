"""The gating rules on counters built by the real encoding and counter arithmetic."""

import math
import random

import pytest

from annotate.quality.encoding import encode_answer, speed_bucket
from annotate.quality.models import RaterStats
from annotate.quality.rater_stats import SPEED_BUCKETS, co_rater_updates, own_increments
from annotate.quality.rules import DEFAULT_POLICY, gold_llr, rules_evaluate, wilson

IMAGES = [(1, "lo"), (2, "hi")]


def _honest(truth: str, style: bool, rng: random.Random, *, flip_style: bool = False) -> str:
    """Sees the better image 78% of the time; ties when unsure (personal threshold)."""
    if rng.random() < 0.08:
        return "tie"
    correct = rng.random() < 0.78
    if flip_style and style:
        correct = not correct
    return truth if correct else ("hi" if truth == "lo" else "lo")


def _counters(behaviour, *, judgments: int, seed: int = 0, ms: int = 3000) -> RaterStats:
    """Run `behaviour` over fresh units, each with two honest co-raters, through the real
    own_increments and co_rater_updates."""
    rng = random.Random(seed)
    stats = RaterStats(speed_hist=[0] * SPEED_BUCKETS)
    for _ in range(judgments):
        truth = rng.choice(["lo", "hi"])
        style = rng.random() < 0.4
        presented = rng.sample(["lo", "hi"], 2)
        answer = behaviour(truth=truth, style=style, presented=presented, rng=rng)
        units = encode_answer(answer=answer, images=IMAGES, presented=presented)
        increments = own_increments(units, milliseconds=ms)
        stats.speed_hist[increments.pop("bucket")] += 1
        others = []
        for co_rater in (101, 102):
            value = encode_answer(
                answer=_honest(truth, style, rng), images=IMAGES, presented=presented
            )[0].value
            others.append((co_rater, 1, 2, value, False))
        own, _ = co_rater_updates(units, others)
        for name, step in {**increments, **own}.items():
            setattr(stats, name, getattr(stats, name) + step)
    return stats


BEHAVIOURS = {
    "honest": lambda truth, style, presented, rng: _honest(truth, style, rng),
    "minority_taste": lambda truth, style, presented, rng: _honest(
        truth, style, rng, flip_style=True
    ),
    "always_left": lambda truth, style, presented, rng: presented[0],
    "always_tie": lambda truth, style, presented, rng: "tie",
    "contrarian": lambda truth, style, presented, rng: (
        "hi" if _honest(truth, style, rng) == "lo" else "lo"
    ),
    "random": lambda truth, style, presented, rng: rng.choice(["lo", "hi", "tie"]),
}
# Label shares of an honest crowd: about 46% / 8% / 46%.
P_E = 0.46**2 * 2 + 0.08**2


def _verdict(stats: RaterStats, median_ms: float = 3000.0):
    return rules_evaluate(stats=stats, policy=DEFAULT_POLICY, p_e=P_E, campaign_median_ms=median_ms)


def test_the_sprt_steps_and_bounds_are_the_specs():
    # The spec prints three decimals: ln 1.5 = 0.4055, ln 0.25 = -1.3863 and ln 19 = 2.9444 are
    # within 5e-4 of them, so abs=1e-3 checks the printed figure and nothing looser.
    assert gold_llr(correct=1, wrong=0) == pytest.approx(0.405, abs=1e-3)
    assert gold_llr(correct=0, wrong=1) == pytest.approx(-1.386, abs=1e-3)
    assert DEFAULT_POLICY["sprt_bound"] == pytest.approx(2.944, abs=1e-3)
    assert gold_llr(correct=7, wrong=0) < 2.944 <= gold_llr(correct=8, wrong=0)
    assert gold_llr(correct=0, wrong=2) > -2.944 >= gold_llr(correct=0, wrong=3)
    # Once qualified a block needs ln 99 = 4.595: four misses, not three.
    assert DEFAULT_POLICY["sprt_block_bound"] == pytest.approx(4.595, abs=1e-3)
    assert gold_llr(correct=0, wrong=3) > -4.595 >= gold_llr(correct=0, wrong=4)
    # A float64 sum of logs: equal up to rounding (approx's default rel 1e-6).
    assert gold_llr(correct=10, wrong=3) == pytest.approx(10 * math.log(1.5) + 3 * math.log(0.25))


def test_wilson_bounds_match_a_hand_computation():
    low, high = wilson(8, 10, 1.96)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)


@pytest.mark.parametrize(
    ("behaviour", "rule", "judgments"),
    [
        ("always_left", "position_bias", 40),
        ("always_tie", "tie_spam", 30),
        ("contrarian", "chance_agreement", 300),
        ("random", "chance_agreement", 300),
    ],
)
def test_each_block_rule_fires_on_its_planted_rater(behaviour, rule, judgments):
    verdict = _verdict(_counters(BEHAVIOURS[behaviour], judgments=judgments))
    assert rule in verdict.block


@pytest.mark.parametrize("behaviour", ["honest", "minority_taste"])
@pytest.mark.parametrize("seed", range(5))
def test_no_rule_blocks_an_honest_or_minority_taste_rater(behaviour, seed):
    verdict = _verdict(_counters(BEHAVIOURS[behaviour], judgments=400, seed=seed))
    assert verdict.block == []


def test_crowd_disagreement_only_warns():
    stats = _counters(BEHAVIOURS["minority_taste"], judgments=200)
    stats.kappa, stats.kappa_n = 0.02, 200
    verdict = _verdict(stats)
    assert verdict.block == [] and verdict.warn == ["crowd_kappa"]


def test_self_consistency_blocks_only_with_enough_repeats():
    stats = _counters(BEHAVIOURS["honest"], judgments=10)
    stats.repeats, stats.repeats_same = 19, 0
    assert "self_consistency" not in _verdict(stats).block
    # Wilson upper bound at z 3.09 of 5 in 30 is 0.447, under the policy's 0.5.
    stats.repeats, stats.repeats_same = 30, 5
    assert "self_consistency" in _verdict(stats).block
    # 12 in 30 (0.4, far below an honest rater's 0.65) has an upper bound of 0.67: no block.
    stats.repeats, stats.repeats_same = 30, 12
    assert "self_consistency" not in _verdict(stats).block


def test_speed_warns_alone_and_blocks_only_with_a_suspicion():
    fast_honest = _counters(BEHAVIOURS["honest"], judgments=60, ms=600)
    assert _verdict(fast_honest, median_ms=4000).warn == ["speed"]
    assert _verdict(fast_honest, median_ms=4000).block == []
    fast_random = _counters(BEHAVIOURS["random"], judgments=60, ms=600)
    assert _verdict(fast_random, median_ms=1200).block == []  # 0.6 s is not fast against 1.2 s
    assert "speed_with_suspicion" in _verdict(fast_random, median_ms=4000).block
    assert speed_bucket(600) < speed_bucket(4000 * 0.35)


def test_a_campaigns_policy_overrides_defaults_and_ignores_malformed_values():
    from annotate.models import Campaign
    from annotate.quality.rules import policy_for

    campaign = Campaign(
        qc_policy={"tie_min": 50, "chance_z": "high", "position_z": -1, "export": "x"}
    )
    policy = policy_for(campaign)
    assert policy["tie_min"] == 50
    assert policy["chance_z"] == DEFAULT_POLICY["chance_z"]
    assert policy["position_z"] == DEFAULT_POLICY["position_z"]
    assert policy["export"] == "x"


def test_gold_missed_since_qualifying_blocks_even_with_credit_from_qualification():
    stats = _counters(BEHAVIOURS["honest"], judgments=40)
    stats.gold_correct, stats.gold_wrong, stats.gold_passed_at = 12, 4, 12
    stats.post_gold_correct, stats.post_gold_wrong = 0, 4
    verdict = _verdict(stats)
    assert verdict.block == ["gold_after_qualifying"]
    assert verdict.figures["post_gold_llr"] < -DEFAULT_POLICY["sprt_block_bound"]
    stats.gold_correct, stats.post_gold_correct = 20, 8  # the misses spread among rights
    assert "gold_after_qualifying" not in _verdict(stats).block
