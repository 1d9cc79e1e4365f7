"""The rules of specs/quality.md as pure functions: the policy, the gold SPRT, the block and
warn rules and the figures that justify a decision. No writes here: annotate.quality.gating
carries decisions out (state changes, exclusions, restores), and the assignment engine asks
gold_rate_for without importing any write.

Block rules use only taste-independent evidence (gold, chance-level agreement, position bias,
tie spam, self-consistency); agreement with the crowd only warns, because that is where a
minority taste shows.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from annotate.models import Campaign
from annotate.quality.encoding import speed_median_ms
from annotate.quality.models import RaterStats

DEFAULT_POLICY: dict[str, Any] = {
    # Gold SPRT: H0 p = 0.6 correct vs H1 p = 0.9; bounds ln(19) = 2.944 (5% errors).
    "sprt_p0": 0.6,
    "sprt_p1": 0.9,
    "sprt_bound": math.log(19),
    # The block bound of the gold SPRTs once qualified: ln(99), a 1% error where qualifying
    # keeps ln(19) both ways. A qualified rater is tested on every gold answer over a long
    # tenure, so at ln(19) an honest one at 0.93 gold accuracy was blocked 1.3% of the time
    # in 1,000 tasks (bench/gating_monte_carlo.py).
    "sprt_block_bound": math.log(99),
    # The block bound while qualifying; 0: sprt_bound, as the spec says (three early misses
    # block). At 0.93 gold accuracy that blocks about 0.8% of honest raters before their
    # first judgment; ln(99) (four misses) brings it under 0.1% (bench/gating_monte_carlo.py).
    "sprt_qualify_block_bound": 0.0,
    # After qualifying, gold keeps coming at this rate (instead of the campaign's gold_rate)
    # until the SPRT on the gold answered since qualifying passes again, so a rater cannot
    # behave only while every task is a test. 0 turns it off; campaigns with gold_rate 0
    # never get it.
    "confirm_gold_rate": 0.3,
    # The same SPRT over the rater's last gold_window gold answers only (a sliding window,
    # kept on RaterStats as a bitmask), once qualified: lifetime counters let a long honest
    # record mask a rater who stops trying.
    "gold_window": 20,
    # Chance-level agreement with co-raters.
    "chance_min": 30,
    "chance_z": 3.09,
    "chance_margin": 0.05,
    # Position bias.
    "position_z": 4.4,
    "position_effect": 0.15,
    # Tie spam.
    "tie_min": 30,
    "tie_z": 3.09,
    "tie_rate": 0.5,
    # Self-consistency on side-swapped repeats. Checked after every repeat over a long
    # tenure, so the test is one-sided at z 3.09 against a rate of 0.5, well below an honest
    # rater's 0.65 to 0.85 and above a random rater's 1/3 (bench/gating_monte_carlo.py).
    "repeat_min": 20,
    "repeat_z": 3.09,
    "repeat_rate": 0.5,
    # Speed: warn below this share of the campaign median; block only with a suspicion.
    "speed_ratio": 0.35,
    "speed_min": 20,
    # A suspicion: a block rule's test at this laxer z; it turns a speed warning into a block.
    "suspicion_z": 1.96,
    # Agreement with the crowd (Cohen's kappa vs the leave-one-out majority): warn only.
    "kappa_warn": 0.1,
    "kappa_min": 30,
    # Drift: a CUSUM on agreement with co-raters (H0 a co-rater agrees with probability
    # drift_p_honest, H1 with drift_p_random: a rater answering at random among left, right
    # and tie), kept on RaterStats and moved in the submit's UPDATE. It never blocks on its
    # own (a minority taste also agrees less): at drift_bound it opens a drift check, gold
    # comes at drift_gold_rate, and the SPRT on the gold answered since then decides: a
    # block at -drift_block_bound (ln 999: a check may open several times in an honest
    # rater's tenure), the check closed and the CUSUM reset at +sprt_bound. 0 turns it off.
    # Tuned in bench/gating_monte_carlo.py: a rater who turns random is blocked within 50
    # judgments of the switch, an honest one is not.
    "drift_p_honest": 0.6,
    "drift_p_random": 1 / 3,
    "drift_bound": 4.0,
    "drift_gold_rate": 0.5,
    "drift_block_bound": math.log(999),
    # The recent figures beside the lifetime ones: agreement with co-raters weighted by
    # (1 - 1/recent_pairs) per later pair, the typical judgment time (a geometric mean)
    # weighted by (1 - 1/recent_judgments) per later judgment.
    "recent_pairs": 100,
    "recent_judgments": 50,
    # Dataset-level alpha.
    "alpha_min_units": 200,
    "alpha_window_units": 200,
    "alpha_drop": 0.05,
    "alpha_trailing_windows": 5,
    "bootstrap_replicates": 1000,
    # Heavier rules run in a task after every this many counted judgments.
    "evaluate_every": 5,
}

BLOCK_RULES = (
    "gold_sprt",
    "gold_after_qualifying",
    "gold_recent",
    "chance_agreement",
    "position_bias",
    "tie_spam",
    "self_consistency",
    "drift_gold",
)
REASONS = {
    "gold_sprt": "Too many wrong answers on items with a known answer.",
    "gold_after_qualifying": "Too many wrong answers on items with a known answer since qualifying.",
    "gold_recent": "Too many wrong answers among the latest items with a known answer.",
    "chance_agreement": "Answers agree with other raters no more than chance would.",
    "position_bias": "Answers follow the screen position rather than the images.",
    "tie_spam": "Most answers are ties.",
    "self_consistency": "Answers change when the same pair is shown again.",
    "speed": "Answers come much faster than the campaign's usual pace.",
    "speed_with_suspicion": "Very fast answers that also look careless.",
    "crowd_kappa": "Answers often differ from the majority; worth a review (taste may differ).",
    "drift_gold": (
        "Recent answers stopped agreeing with other raters, and too many of the items with "
        "a known answer given since then were wrong."
    ),
    "speed_recent": "Recent answers come much faster than the campaign's usual pace.",
}
QUALIFIED = "Passed the qualification items."
CLEARED = "No warning applies any more."


def policy_for(campaign: Campaign) -> dict[str, Any]:
    """The defaults, overridden by the campaign's qc_policy where a value is a usable number.

    Unknown keys are left for others (exports read their own); a malformed threshold falls
    back to the default rather than breaking every submit of the campaign.
    """
    policy = dict(DEFAULT_POLICY)
    for key, value in (campaign.qc_policy or {}).items():
        default = DEFAULT_POLICY.get(key)
        if default is None or isinstance(value, bool) or not isinstance(value, int | float):
            if key not in DEFAULT_POLICY:
                policy[key] = value
            continue
        if math.isfinite(value) and value >= 0:
            policy[key] = type(default)(value) if isinstance(default, int) else float(value)
    return policy


def wilson(successes: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(successes / n, 0.0), 1.0)
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return (centre - spread) / denominator, (centre + spread) / denominator


def gold_llr(*, correct: int, wrong: int, p0: float = 0.6, p1: float = 0.9) -> float:
    """LLR = k ln(p1/p0) + (n-k) ln((1-p1)/(1-p0)): +0.405 per right, -1.386 per wrong."""
    return correct * math.log(p1 / p0) + wrong * math.log((1 - p1) / (1 - p0))


def policy_llr(policy: dict, *, correct: int, wrong: int) -> float:
    return gold_llr(correct=correct, wrong=wrong, p0=policy["sprt_p0"], p1=policy["sprt_p1"])


GOLD_COUNTERS = (
    "gold_correct",
    "gold_wrong",
    "gold_passed_at",
    "post_gold_correct",
    "post_gold_wrong",
    "gold_recent_bits",
    "gold_recent_n",
)
GOLD_WINDOW_MAX = 30  # the bitmask fits a 32-bit integer column


def gold_window_size(policy: dict) -> int:
    return max(1, min(int(policy["gold_window"]), GOLD_WINDOW_MAX))


def gold_window(counters: Mapping[str, Any], *, policy: dict) -> tuple[int, int]:
    """(right, wrong) among the last gold_window gold answers: bit i of gold_recent_bits is
    1 when the i-th latest answer was wrong; gold_recent_n answers are in the window."""
    size = min(counters.get("gold_recent_n", 0), gold_window_size(policy))
    wrong = (counters.get("gold_recent_bits", 0) & ((1 << size) - 1)).bit_count()
    return size - wrong, wrong


def gold_step(counters: dict[str, int], *, correct: bool, policy: dict) -> dict[str, int]:
    """What one gold answer adds to the gold counters (GOLD_COUNTERS), given their values
    before it: every figure as an increment, the window's bitmask and length included, so
    the submit's `F(name) + step` and the replays all apply it the same way.

    The submit, the undo and the recompute all go through here, in the order of the
    answers, so they agree exactly. An answer counts as post-qualification once the
    lifetime SPRT has passed before it.
    """
    size = gold_window_size(policy)
    bits = counters["gold_recent_bits"]
    window_bits = ((bits << 1) | int(not correct)) & ((1 << size) - 1)
    step = {
        "gold_correct": int(correct),
        "gold_wrong": int(not correct),
        "gold_recent_bits": window_bits - bits,
        "gold_recent_n": min(counters["gold_recent_n"] + 1, size) - counters["gold_recent_n"],
    }
    if counters["gold_passed_at"]:
        step.update(post_gold_correct=int(correct), post_gold_wrong=int(not correct))
        return step
    right = counters["gold_correct"] + step["gold_correct"]
    wrong = counters["gold_wrong"] + step["gold_wrong"]
    if policy_llr(policy, correct=right, wrong=wrong) >= policy["sprt_bound"]:
        step["gold_passed_at"] = right + wrong
    return step


def gold_replay(counters: dict[str, Any], *, answers: Iterable[bool | None], policy: dict) -> None:
    """Apply gold_step for each answer in order (None: unknown, skipped), in place.

    The recompute's loop over every rater's gold answers: the same arithmetic as summing
    gold_step's increments answer by answer, with the policy's constants and the LLR's two
    logarithms taken once instead of per answer (the same float operations, so the
    qualifying answer is the same one).
    """
    size = gold_window_size(policy)
    mask = (1 << size) - 1
    per_right = math.log(policy["sprt_p1"] / policy["sprt_p0"])
    per_wrong = math.log((1 - policy["sprt_p1"]) / (1 - policy["sprt_p0"]))
    bound = policy["sprt_bound"]
    right, wrong = counters["gold_correct"], counters["gold_wrong"]
    passed_at = counters["gold_passed_at"]
    post_right, post_wrong = counters["post_gold_correct"], counters["post_gold_wrong"]
    bits, n = counters["gold_recent_bits"], counters["gold_recent_n"]
    for correct in answers:
        if correct is None:
            continue
        miss = int(not correct)
        bits = ((bits << 1) | miss) & mask
        n = min(n + 1, size)
        right += 1 - miss
        wrong += miss
        if passed_at:
            post_right += 1 - miss
            post_wrong += miss
        elif right * per_right + wrong * per_wrong >= bound:
            passed_at += right + wrong
    counters.update(
        gold_correct=right,
        gold_wrong=wrong,
        gold_passed_at=passed_at,
        post_gold_correct=post_right,
        post_gold_wrong=post_wrong,
        gold_recent_bits=bits,
        gold_recent_n=n,
    )


@dataclass(frozen=True)
class GoldVerdict:
    """What the gold answers so far say: the three SPRTs' log-likelihood ratios (lifetime,
    since qualifying, the latest window), the gold rule that blocks (None if none does)
    and whether the rater has qualified."""

    llr: float
    post_llr: float
    block: str | None
    qualified: bool
    recent_llr: float = 0.0
    recent: tuple[int, int] = (0, 0)  # (right, wrong) in the window


def gold_verdict(counters: Mapping[str, Any], *, policy: dict) -> GoldVerdict:
    """The one decision on gold, for the submit (annotate.quality.hooks) and the heavier
    evaluation (rules_evaluate): the SPRT over all gold answers blocks first, then the one
    over the gold answered since qualifying, then, once qualified, the one over the latest
    gold_window answers; the first SPRT's upper bound qualifies. Before qualifying a block
    needs -sprt_qualify_block_bound, after it -sprt_block_bound. `counters`: GOLD_COUNTERS."""
    llr = policy_llr(policy, correct=counters["gold_correct"], wrong=counters["gold_wrong"])
    post_llr = policy_llr(
        policy, correct=counters["post_gold_correct"], wrong=counters["post_gold_wrong"]
    )
    right, wrong = gold_window(counters, policy=policy)
    recent_llr = policy_llr(policy, correct=right, wrong=wrong)
    bound = policy["sprt_bound"]
    qualified_before = bool(counters.get("gold_passed_at"))
    block_bound = (
        policy["sprt_block_bound"]
        if qualified_before
        else (policy["sprt_qualify_block_bound"] or bound)
    )
    block = None
    if llr <= -block_bound:
        block = "gold_sprt"
    elif post_llr <= -block_bound:
        block = "gold_after_qualifying"
    elif qualified_before and recent_llr <= -block_bound:
        block = "gold_recent"
    return GoldVerdict(
        llr=llr,
        post_llr=post_llr,
        block=block,
        qualified=llr >= bound,
        recent_llr=recent_llr,
        recent=(right, wrong),
    )


def gold_rate_for(
    *,
    campaign: Campaign,
    gold_passed_at: int | None,
    post_gold_correct: int = 0,
    post_gold_wrong: int = 0,
    drift_check_at: int | None = 0,
) -> float:
    """The share of a qualified rater's tasks that are gold: the campaign's gold_rate, or
    the policy's confirm_gold_rate while the SPRT on the gold answered since qualifying
    (the rater's counters since gold_passed_at) has not passed, or its drift_gold_rate
    while a drift check is open; room is left for the campaign's repeats."""
    policy = policy_for(campaign)
    rate = campaign.gold_rate
    if rate > 0 and gold_passed_at and drift_check_at:
        rate = max(rate, min(policy["drift_gold_rate"], 1 - campaign.repeat_rate))
    confirm = min(policy["confirm_gold_rate"], 1 - campaign.repeat_rate)
    if rate <= 0 or confirm <= rate or not gold_passed_at:
        return rate
    if policy_llr(policy, correct=post_gold_correct, wrong=post_gold_wrong) >= policy["sprt_bound"]:
        return rate
    return confirm


# -- drift: windowed evidence on the regular judgments ---------------------------------------

DRIFT_COUNTERS = ("drift_check_at", "drift_gold_correct", "drift_gold_wrong")


def drift_steps(policy: dict) -> tuple[float, float]:
    """The CUSUM's step for an agreeing and for a disagreeing co-rater pair:
    ln(p_random / p_honest) < 0 and ln((1 - p_random) / (1 - p_honest)) > 0."""
    honest, random = policy["drift_p_honest"], policy["drift_p_random"]
    return math.log(random / honest), math.log((1 - random) / (1 - honest))


def drift_cusum_step(cusum: float, *, pairs: int, agree: int, policy: dict) -> float:
    """The CUSUM after `pairs` more co-rater pairs, `agree` of them agreeing: never below 0,
    so a long honest record cannot bank credit against a later switch. The submit's UPDATE
    computes the same (rater_stats.stats_increment)."""
    if pairs <= 0:
        return cusum
    up_agree, up_disagree = drift_steps(policy)
    return max(0.0, cusum + agree * up_agree + (pairs - agree) * up_disagree)


def recent_decay(policy: dict, *, steps: int, span_key: str) -> float:
    """The weight left to the earlier figures after `steps` more (pairs or judgments)."""
    span = max(1.0, float(policy[span_key]))
    return (1 - 1 / span) ** max(0, steps)


def drift_check_due(stats: RaterStats, *, policy: dict) -> bool:
    """Whether a qualified rater's agreement CUSUM reached drift_bound with no check open."""
    bound = policy["drift_bound"]
    return (
        bool(bound > 0 and stats.gold_passed_at and not stats.drift_check_at)
        and stats.drift_cusum >= bound
    )


def drift_gold_llr(counters: Mapping[str, Any], *, policy: dict) -> float:
    return policy_llr(
        policy, correct=counters["drift_gold_correct"], wrong=counters["drift_gold_wrong"]
    )


def drift_gold_outcome(counters: Mapping[str, Any], *, policy: dict) -> str | None:
    """What the gold answered since a drift check opened says (`counters`: DRIFT_COUNTERS,
    that answer counted): "block" at or below -drift_block_bound, "pass" at or above
    sprt_bound, None while undecided or when no check is open."""
    if not counters["drift_check_at"]:
        return None
    llr = drift_gold_llr(counters, policy=policy)
    if llr <= -policy["drift_block_bound"]:
        return "block"
    if llr >= policy["sprt_bound"]:
        return "pass"
    return None


def recent_agreement(stats: RaterStats) -> float | None:
    """Agreement with co-raters, the latest pairs weighted most (about recent_pairs)."""
    return stats.co_recent_agree / stats.co_recent_pairs if stats.co_recent_pairs else None


def recent_median_ms(stats: RaterStats) -> float | None:
    """The typical time of the latest judgments (about recent_judgments): a geometric mean."""
    log_ms = stats.speed_recent_log
    return math.exp(log_ms) if log_ms is not None else None


@dataclass
class Verdict:
    block: list[str] = field(default_factory=list)
    warn: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        return self.block + self.warn


def chance_level(
    stats: RaterStats, policy: dict, *, p_e: float | None, z: float, minimum: int
) -> bool:
    if p_e is None or stats.co_rated < minimum or stats.co_pairs == 0:
        return False
    rate = stats.co_agree / stats.co_pairs
    _, upper = wilson(rate * stats.co_rated, stats.co_rated, z)
    return upper < p_e + policy["chance_margin"]


def position_biased(stats: RaterStats, policy: dict, *, z: float) -> bool:
    if stats.pos_sumsq == 0 or stats.pos_pairs == 0:
        return False
    score = stats.pos_sum / math.sqrt(stats.pos_sumsq)
    effect = stats.pos_sum / stats.pos_pairs / 2  # = L/N - 1/2 for pairs
    return abs(score) > z and abs(effect) > policy["position_effect"]


def tie_spamming(stats: RaterStats, policy: dict, *, z: float, minimum: int) -> bool:
    if stats.judgments < minimum:
        return False
    lower, _ = wilson(stats.tie_judgments, stats.judgments, z)
    return lower > policy["tie_rate"]


def inconsistent(stats: RaterStats, policy: dict, *, z: float, minimum: int) -> bool:
    if stats.repeats < minimum:
        return False
    _, upper = wilson(stats.repeats_same, stats.repeats, z)
    return upper < policy["repeat_rate"]


def rules_evaluate(
    *,
    stats: RaterStats,
    policy: dict,
    p_e: float | None,
    campaign_median_ms: float | None,
) -> Verdict:
    """Which block and warn rules fire on these counters (gold SPRT is decided on submit)."""
    verdict = Verdict()
    gold = gold_verdict(_gold_counters(stats), policy=policy)
    if gold.block:
        verdict.block.append(gold.block)
    if chance_level(stats, policy, p_e=p_e, z=policy["chance_z"], minimum=policy["chance_min"]):
        verdict.block.append("chance_agreement")
    if position_biased(stats, policy, z=policy["position_z"]):
        verdict.block.append("position_bias")
    if tie_spamming(stats, policy, z=policy["tie_z"], minimum=policy["tie_min"]):
        verdict.block.append("tie_spam")
    if inconsistent(stats, policy, z=policy["repeat_z"], minimum=policy["repeat_min"]):
        verdict.block.append("self_consistency")

    rater_median = speed_median_ms(list(stats.speed_hist or []))
    fast = (
        stats.judgments >= policy["speed_min"]
        and rater_median is not None
        and campaign_median_ms
        and rater_median < policy["speed_ratio"] * campaign_median_ms
    )
    if fast:
        lax = policy["suspicion_z"]
        suspicious = (
            chance_level(stats, policy, p_e=p_e, z=lax, minimum=policy["chance_min"] // 2)
            or position_biased(stats, policy, z=lax)
            or tie_spamming(stats, policy, z=lax, minimum=policy["tie_min"] // 2)
            or inconsistent(stats, policy, z=lax, minimum=policy["repeat_min"] // 2)
        )
        (verdict.block if suspicious else verdict.warn).append(
            "speed_with_suspicion" if suspicious else "speed"
        )
    recent_ms = recent_median_ms(stats)
    if (
        not fast
        and stats.judgments >= policy["speed_min"]
        and recent_ms is not None
        and campaign_median_ms
        and recent_ms < policy["speed_ratio"] * campaign_median_ms
    ):
        verdict.warn.append("speed_recent")
    # An open drift check is no warning: it opens for about a third of honest raters at some
    # point in a long tenure (bench/simulate_crowd.py) and its gold settles it either way, so a
    # warning would flood the rater table and tell the rater that checks are coming. The
    # table marks it "(check open)" instead.
    if (
        stats.kappa is not None
        and stats.kappa_n >= policy["kappa_min"]
        and stats.kappa < policy["kappa_warn"]
    ):
        verdict.warn.append("crowd_kappa")
    verdict.figures = stats_figures(
        stats, policy=policy, p_e=p_e, campaign_median_ms=campaign_median_ms
    )
    verdict.figures["rater_median_ms"] = rater_median
    verdict.figures["recent_median_ms"] = recent_ms and round(recent_ms)
    return verdict


def _gold_counters(stats: RaterStats) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in GOLD_COUNTERS}


def stats_figures(
    stats: RaterStats,
    *,
    policy: dict,
    gold: GoldVerdict | None = None,
    p_e: float | None = None,
    campaign_median_ms=None,
) -> dict[str, Any]:
    """The counters that justify a decision, as written into a GateEvent; the gold LLRs are
    `gold`'s (the submit's, which counts the answer being stored) or the stats' own, both
    with the campaign's SPRT (policy's sprt_p0 and sprt_p1)."""
    if gold is None:
        gold = gold_verdict(_gold_counters(stats), policy=policy)
    llr, post_llr = gold.llr, gold.post_llr
    recent_right, recent_wrong = gold.recent
    return {
        "judgments": stats.judgments,
        "gold_correct": stats.gold_correct,
        "gold_wrong": stats.gold_wrong,
        "gold_llr": round(llr, 4),
        "gold_passed_at": stats.gold_passed_at,
        "post_gold_correct": stats.post_gold_correct,
        "post_gold_wrong": stats.post_gold_wrong,
        "post_gold_llr": round(post_llr, 4),
        "recent_gold_correct": recent_right,
        "recent_gold_wrong": recent_wrong,
        "recent_gold_llr": round(gold.recent_llr, 4),
        "co_rated": stats.co_rated,
        "co_pairs": stats.co_pairs,
        "co_agree": stats.co_agree,
        "chance_p_e": p_e,
        "pos_n": stats.pos_n,
        "pos_sum": stats.pos_sum,
        "pos_sumsq": stats.pos_sumsq,
        "tie_judgments": stats.tie_judgments,
        "repeats": stats.repeats,
        "repeats_same": stats.repeats_same,
        "kappa": stats.kappa,
        "campaign_median_ms": campaign_median_ms,
        "recent_agreement": _rounded(recent_agreement(stats)),
        "recent_pairs": round(stats.co_recent_pairs or 0.0, 2),
        "drift_cusum": round(stats.drift_cusum or 0.0, 4),
        "drift_check_at": stats.drift_check_at,
        "drift_gold_correct": stats.drift_gold_correct,
        "drift_gold_wrong": stats.drift_gold_wrong,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
