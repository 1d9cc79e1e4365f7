"""The gating rules' own functions on simulated raters: honest false blocks over long tenure,
and how soon a rater who turns random is blocked.

    python bench/gating_monte_carlo.py                    # 2,000 raters per cell, seed 1
    python bench/gating_monte_carlo.py --raters 500 --seed 2

No database: each simulated rater's counters live in an unsaved RaterStats, updated the way
a submit updates them, and every decision is made by annotate.quality.gating itself
(gold_step and gold_verdict on each gold answer: the lifetime SPRT, the one since
qualifying and the one over the latest gold_window answers; rules_evaluate every
`evaluate_every` counted judgments; gold_rate_for for the share of gold), with the default
policy.

The campaign: pairwise, gold_rate 0.02, repeat_rate 0.05 (repeats from 20 tasks back on),
qualification on gold, overlap 3 (each regular judgment ends with two co-raters). A rater:
gold right with probability g, ties on a share of pairs, picks left or right at random where
it does not tie (screen order is random), agrees with each co-rater with probability q,
repeats a judgment identically with probability r. The chance agreement P_e of the campaign
is that of an honest crowd's labels (about 0.43 here). Speed and crowd kappa are left out
(a speed block needs another rule's suspicion; kappa only warns).

Honest raters: g uniform in 0.93 to 0.99 (and at the ends), q in 0.55 to 0.75, r in 0.65 to
0.85, ties 5% to 20%; counted over 1,000 tasks. A random rater (after the switch): gold
right 1 in 3, answers left, right or tie at random, agrees with a co-rater 1 in 3 and with
their own repeat 1 in 3.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-key-not-secret")
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/pickwise_gating_mc.sqlite3")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

GOLD_RATE, REPEAT_RATE, CO_RATERS = 0.02, 0.05, 2
P_E = 0.43  # (0.45^2 + 0.1^2 + 0.45^2): lo, tie and hi shares of an honest crowd


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--raters", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=1000)
    return parser.parse_args()


class Campaign:
    """What gold_rate_for reads of a campaign."""

    gold_rate = GOLD_RATE
    repeat_rate = REPEAT_RATE
    qc_policy: dict = {}


def run_rater(rng, *, gold, agree, repeat, ties, tasks, switch_at=None):
    """(blocked, the rules that fired, counted judgments when blocked) for one rater."""
    from annotate.quality.models import RaterStats
    from annotate.quality.rules import (
        GOLD_COUNTERS,
        gold_rate_for,
        gold_step,
        gold_verdict,
        policy_for,
        rules_evaluate,
    )

    campaign = Campaign()
    policy = policy_for(campaign)
    stats = RaterStats(speed_hist=[])
    for _task in range(tasks):
        random_now = switch_at is not None and stats.judgments >= switch_at
        g, q, r, t = (1 / 3, 1 / 3, 1 / 3, 1 / 3) if random_now else (gold, agree, repeat, ties)
        qualifying = not stats.gold_passed_at
        rate = (
            1.0
            if qualifying
            else gold_rate_for(
                campaign=campaign,
                gold_passed_at=stats.gold_passed_at,
                post_gold_correct=stats.post_gold_correct,
                post_gold_wrong=stats.post_gold_wrong,
            )
        )
        draw = rng.random()
        if draw < rate:
            counters = {k: getattr(stats, k) for k in GOLD_COUNTERS}
            step = gold_step(counters, correct=bool(rng.random() < g), policy=policy)
            for key, value in step.items():  # the submit's F(name) + step
                setattr(stats, key, getattr(stats, key) + value)
            decision = gold_verdict({k: getattr(stats, k) for k in GOLD_COUNTERS}, policy=policy)
            if decision.block:
                return True, [decision.block], stats.judgments
            continue
        if qualifying:
            continue
        if draw < rate + REPEAT_RATE and stats.judgments >= 20:
            stats.repeats += 1
            stats.repeats_same += int(rng.random() < r)
        else:
            stats.judgments += 1
            tie = rng.random() < t
            if tie:
                stats.tie_judgments += 1
                stats.n_tie += 1
            else:
                side = 1 if rng.random() < 0.5 else -1
                stats.pos_n += 1
                stats.pos_pairs += 1
                stats.pos_sum += side
                stats.pos_sumsq += 1
                stats.n_lo += side > 0
                stats.n_hi += side < 0
            stats.co_rated += 1
            stats.co_pairs += CO_RATERS
            stats.co_agree += int((rng.random(CO_RATERS) < q).sum())
        if stats.judgments % policy["evaluate_every"] == 0:
            verdict = rules_evaluate(stats=stats, policy=policy, p_e=P_E, campaign_median_ms=None)
            if verdict.block:
                return True, verdict.block, stats.judgments
    return False, [], stats.judgments


def main() -> None:
    import django

    django.setup()
    args = parse()
    rng = np.random.default_rng(args.seed)

    print(f"seed {args.seed}, {args.raters} raters per row, {args.tasks} tasks each\n")
    print("Honest raters over 1,000 tasks (false blocks, 95% Wilson interval):\n")
    print("| gold accuracy | blocked | share | 95% interval | rules |")
    print("|---|---|---|---|---|")
    for gold in ("0.93", "0.96", "0.99", "0.93 to 0.99"):
        blocked, rules = 0, {}
        for _ in range(args.raters):
            g = rng.uniform(0.93, 0.99) if " " in gold else float(gold)
            hit, fired, _n = run_rater(
                rng,
                gold=g,
                agree=rng.uniform(0.55, 0.75),
                repeat=rng.uniform(0.65, 0.85),
                ties=rng.uniform(0.05, 0.2),
                tasks=args.tasks,
            )
            blocked += hit
            for rule in fired:
                rules[rule] = rules.get(rule, 0) + 1
        low, high = _wilson(blocked, args.raters)
        named = ", ".join(f"{k} {v}" for k, v in sorted(rules.items())) or "none"
        print(
            f"| {gold} | {blocked} | {blocked / args.raters:.2%} | {low:.2%} to {high:.2%} | {named} |"
        )

    print("\nRaters who turn random after S counted judgments (honest before, g 0.93 to 0.99):\n")
    print(
        "| S | blocked within 50 after the switch | share | 95% interval | blocked at all | median delay |"
    )
    print("|---|---|---|---|---|---|")
    for switch in (20, 60, 200):
        within, ever, delays = 0, 0, []
        for _ in range(args.raters):
            hit, _fired, at = run_rater(
                rng,
                gold=rng.uniform(0.93, 0.99),
                agree=rng.uniform(0.55, 0.75),
                repeat=rng.uniform(0.65, 0.85),
                ties=rng.uniform(0.05, 0.2),
                tasks=args.tasks,
                switch_at=switch,
            )
            if hit and at >= switch:
                ever += 1
                delays.append(at - switch)
                within += at - switch <= 50
        low, high = _wilson(within, args.raters)
        median = f"{np.median(delays):.0f}" if delays else "-"
        print(
            f"| {switch} | {within} | {within / args.raters:.1%} | {low:.1%} to {high:.1%} | "
            f"{ever / args.raters:.1%} | {median} |"
        )


def _wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    from annotate.quality.rules import wilson

    return wilson(successes, n, z)


if __name__ == "__main__":
    main()
