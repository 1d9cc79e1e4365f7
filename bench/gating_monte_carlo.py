"""The gating rules' own functions on simulated raters: honest false blocks over long tenure,
and how soon a rater who turns random is blocked.

    python bench/gating_monte_carlo.py                    # 2,000 raters per row, seed 1
    python bench/gating_monte_carlo.py --raters 1000 --seed 2
    python bench/gating_monte_carlo.py --policy sprt_qualify_block_bound=4.595

No database: each simulated rater's counters live in an unsaved RaterStats, updated the way
a submit updates them, and every decision is made by annotate.quality.rules itself, all
rules at once: gold_step and gold_verdict on each gold answer (the lifetime SPRT, the one
since qualifying and the one over the latest gold_window answers); on each regular judgment
the recent figures and the drift CUSUM (recent_decay, drift_cusum_step), a drift check
opened by drift_check_due and decided by drift_gold_outcome on the gold that follows;
rules_evaluate every `evaluate_every` counted judgments; gold_rate_for for the share of
gold. The default policy, or with --policy values.

The campaign: pairwise, gold_rate 0.02, repeat_rate 0.05 (repeats from 20 tasks back on),
qualification on gold, overlap 3 (each regular judgment ends with two co-raters, counted at
once). A rater: gold right with probability g, ties on a share of pairs, picks left or
right at random where it does not tie (screen order is random), agrees with each co-rater
with probability q, repeats a judgment identically with probability r. The chance agreement
P_e of the campaign is that of an honest crowd's labels (about 0.43 here). Speed and crowd
kappa are left out (a speed block needs another rule's suspicion; kappa only warns).

Honest raters: the grid g in {0.93, 0.96, 0.99} x r in {0.65, 0.75, 0.85} (and both drawn
uniformly over those ranges), q in 0.55 to 0.75, ties 5% to 20%; 1,000 tasks each; the
worst cell is printed. Minority taste: honest, gold 0.93 to 0.99, but q in 0.45 to 0.55,
with and without the drift check. A random rater (after the switch): gold right 1 in 3,
answers left, right or tie at random, agrees with a co-rater 1 in 3 and with their own
repeat 1 in 3. Seeds: the honest table draws from default_rng(seed) in order, the drift
table from default_rng([seed, 3]), minority rater i from default_rng([seed, i]) in both of
its rows, so each table's figures do not depend on which others ran (--sections).
"""

from __future__ import annotations

import argparse
import functools
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
    parser.add_argument(
        "--sections",
        default="honest,minority,drift",
        help="which tables to print, comma-separated (honest, minority, drift)",
    )
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a qc_policy value for every rater, e.g. sprt_qualify_block_bound=4.595",
    )
    return parser.parse_args()


class Campaign:
    """What gold_rate_for reads of a campaign."""

    gold_rate = GOLD_RATE
    repeat_rate = REPEAT_RATE
    qc_policy: dict = {}


def run_rater(rng, *, gold, agree, repeat, ties, tasks, switch_at=None, qc_policy=None):
    """(blocked, the rules that fired, counted judgments when blocked, drift checks opened)
    for one rater; GOLD_SEEN counts the gold tasks after qualifying and all tasks."""
    from annotate.quality.models import RaterStats
    from annotate.quality.rules import (
        DRIFT_COUNTERS,
        GOLD_COUNTERS,
        drift_check_due,
        drift_cusum_step,
        drift_gold_outcome,
        gold_rate_for,
        gold_step,
        gold_verdict,
        policy_for,
        recent_decay,
        rules_evaluate,
    )

    campaign = Campaign()
    campaign.qc_policy = {**BASE_POLICY, **(qc_policy or {})}
    policy = policy_for(campaign)
    stats = RaterStats(speed_hist=[])
    checks = 0
    # Pure functions of their arguments: asked once per distinct argument, not per task.
    rate_for = functools.lru_cache(maxsize=None)(
        lambda *figures: gold_rate_for(
            campaign=campaign,
            gold_passed_at=figures[0],
            post_gold_correct=figures[1],
            post_gold_wrong=figures[2],
            drift_check_at=figures[3],
        )
    )
    decay = recent_decay(policy, steps=CO_RATERS, span_key="recent_pairs")
    for _task in range(tasks):
        random_now = switch_at is not None and stats.judgments >= switch_at
        g, q, r, t = (1 / 3, 1 / 3, 1 / 3, 1 / 3) if random_now else (gold, agree, repeat, ties)
        qualifying = not stats.gold_passed_at
        rate = (
            1.0
            if qualifying
            else rate_for(
                stats.gold_passed_at,
                stats.post_gold_correct,
                stats.post_gold_wrong,
                stats.drift_check_at,
            )
        )
        draw = rng.random()
        GOLD_SEEN[1] += not qualifying
        if draw < rate:
            GOLD_SEEN[0] += not qualifying
            correct = bool(rng.random() < g)
            counters = {k: getattr(stats, k) for k in GOLD_COUNTERS}
            step = gold_step(counters, correct=correct, policy=policy)
            for key, value in step.items():  # the submit's F(name) + step
                setattr(stats, key, getattr(stats, key) + value)
            decision = gold_verdict({k: getattr(stats, k) for k in GOLD_COUNTERS}, policy=policy)
            if decision.block:
                return True, [decision.block], stats.judgments, checks
            if stats.drift_check_at:  # hooks._on_gold and gating.drift_check_record
                stats.drift_gold_correct += correct
                stats.drift_gold_wrong += not correct
                outcome = drift_gold_outcome(
                    {k: getattr(stats, k) for k in DRIFT_COUNTERS}, policy=policy
                )
                if outcome == "block":
                    return True, ["drift_gold"], stats.judgments, checks
                if outcome == "pass":
                    stats.drift_check_at = stats.drift_gold_correct = 0
                    stats.drift_gold_wrong, stats.drift_cusum = 0, 0.0
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
            agreeing = sum(rng.random() < q for _ in range(CO_RATERS))
            stats.co_rated += 1
            stats.co_pairs += CO_RATERS
            stats.co_agree += agreeing
            # The submit's UPDATE (rater_stats.recent_steps and stats_increment).
            stats.co_recent_pairs = stats.co_recent_pairs * decay + CO_RATERS
            stats.co_recent_agree = stats.co_recent_agree * decay + agreeing
            stats.drift_cusum = drift_cusum_step(
                stats.drift_cusum, pairs=CO_RATERS, agree=agreeing, policy=policy
            )
            if drift_check_due(stats, policy=policy):  # hooks: gating.drift_check_open
                stats.drift_check_at = stats.judgments
                stats.drift_gold_correct = stats.drift_gold_wrong = 0
                checks += 1
        if stats.judgments % policy["evaluate_every"] == 0:
            verdict = rules_evaluate(stats=stats, policy=policy, p_e=P_E, campaign_median_ms=None)
            if verdict.block:
                return True, verdict.block, stats.judgments, checks
    return False, [], stats.judgments, checks


HONEST_AGREE = (0.55, 0.75)  # agreement with a co-rater, honest majority taste
MINORITY_AGREE = (0.45, 0.55)  # honest, another taste: agrees less, gold as good
TODAY = {"drift_bound": 0}  # the drift check switched off: the rules before it
BASE_POLICY: dict = {}  # --policy
GOLD_SEEN = [0, 0]  # gold tasks after qualifying, tasks after qualifying


def honest_cell(
    rng, *, raters, tasks, gold, repeat, agree=HONEST_AGREE, qc_policy=None, paired_seed=None
):
    """(blocked, {rule: blocks}, blocked after qualifying, drift checks per rater); the
    share of gold among the tasks after qualifying is left in GOLD_SEEN. With
    `paired_seed`, rater i draws from its own generator default_rng([paired_seed, i]), so
    two policies meet the same raters (same tastes, same answers until they diverge)."""
    GOLD_SEEN[:] = [0, 0]
    blocked, after_qualifying, rules, checks = 0, 0, {}, 0
    for index in range(raters):
        if paired_seed is not None:
            rng = np.random.default_rng([paired_seed, index])
        hit, fired, at, opened = run_rater(
            rng,
            gold=rng.uniform(*gold) if isinstance(gold, tuple) else gold,
            agree=rng.uniform(*agree),
            repeat=rng.uniform(*repeat) if isinstance(repeat, tuple) else repeat,
            ties=rng.uniform(0.05, 0.2),
            tasks=tasks,
            qc_policy=qc_policy,
        )
        blocked += hit
        after_qualifying += hit and at > 0
        checks += opened
        for rule in fired:
            rules[rule] = rules.get(rule, 0) + 1
    return blocked, rules, after_qualifying, checks / raters


def _share(count: int, n: int) -> str:
    low, high = _wilson(count, n)
    return f"{count} | {count / n:.2%} | {low:.2%} to {high:.2%}"


def main() -> None:
    import django

    django.setup()
    args = parse()
    rng = np.random.default_rng(args.seed)
    n = args.raters
    for item in args.policy:
        key, value = item.split("=", 1)
        BASE_POLICY[key] = float(value)

    print(f"seed {args.seed}, {n} raters per row, {args.tasks} tasks each, policy {BASE_POLICY}\n")
    sections = set(args.sections.split(","))
    if "honest" in sections:
        honest_tables(rng, args)
    if "minority" in sections:
        minority_table(args)
    if "drift" in sections:
        # Its own generator, so each table's figures do not depend on which others ran.
        drift_table(np.random.default_rng([args.seed, 3]), args)


def honest_tables(rng, args) -> None:
    n = args.raters
    print("Honest raters (co-rater agreement 0.55 to 0.75), false blocks over the tasks:\n")
    print(
        "| gold accuracy | repeat agreement | blocked | share | 95% interval "
        "| after qualifying | rules | drift checks per rater | gold share after qualifying |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    cells = [(g, r) for g in (0.93, 0.96, 0.99) for r in (0.65, 0.75, 0.85)]
    cells.append(((0.93, 0.99), (0.65, 0.85)))
    worst = (-1, None)
    for gold, repeat in cells:
        blocked, rules, after, checks = honest_cell(
            rng, raters=n, tasks=args.tasks, gold=gold, repeat=repeat
        )
        named = ", ".join(f"{k} {v}" for k, v in sorted(rules.items())) or "none"
        label = lambda v: f"{v[0]} to {v[1]}" if isinstance(v, tuple) else f"{v}"  # noqa: E731
        print(
            f"| {label(gold)} | {label(repeat)} | {_share(blocked, n)} | {after} | {named} "
            f"| {checks:.1f} | {GOLD_SEEN[0] / max(1, GOLD_SEEN[1]):.1%} |"
        )
        if not isinstance(gold, tuple) and blocked > worst[0]:
            worst = (blocked, (gold, repeat))
    print(f"\nworst cell: gold {worst[1][0]}, repeat {worst[1][1]}: {_share(worst[0], n)}\n")


def minority_table(args) -> None:
    n = args.raters
    print(
        "Minority taste (co-rater agreement 0.45 to 0.55, gold 0.93 to 0.99), today vs now, "
        "the same raters in both rows:\n"
    )
    print(
        "| rules | blocked | share | 95% interval | after qualifying | rules | drift checks "
        "| gold share after qualifying |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, qc_policy in (("today (no drift check)", TODAY), ("with the drift check", None)):
        blocked, rules, after, checks = honest_cell(
            None,
            raters=n,
            tasks=args.tasks,
            gold=(0.93, 0.99),
            repeat=(0.65, 0.85),
            agree=MINORITY_AGREE,
            qc_policy=qc_policy,
            paired_seed=args.seed,
        )
        named = ", ".join(f"{k} {v}" for k, v in sorted(rules.items())) or "none"
        print(
            f"| {name} | {_share(blocked, n)} | {after} | {named} | {checks:.1f} "
            f"| {GOLD_SEEN[0] / max(1, GOLD_SEEN[1]):.1%} |"
        )


def drift_table(rng, args) -> None:
    n = args.raters
    print("\nRaters who turn random after S counted judgments (honest before, g 0.93 to 0.99):\n")
    print(
        "| S | blocked within 50 after the switch | share | 95% interval | blocked at all "
        "| median delay | rules |"
    )
    print("|---|---|---|---|---|---|---|")
    for switch in (20, 60, 200):
        within, ever, delays, rules = 0, 0, [], {}
        for _ in range(n):
            hit, fired, at, _checks = run_rater(
                rng,
                gold=rng.uniform(0.93, 0.99),
                agree=rng.uniform(*HONEST_AGREE),
                repeat=rng.uniform(0.65, 0.85),
                ties=rng.uniform(0.05, 0.2),
                tasks=args.tasks,
                switch_at=switch,
            )
            if hit and at >= switch:
                ever += 1
                delays.append(at - switch)
                within += at - switch <= 50
                for rule in fired:
                    rules[rule] = rules.get(rule, 0) + 1
        median = f"{np.median(delays):.0f}" if delays else "-"
        named = ", ".join(f"{k} {v}" for k, v in sorted(rules.items())) or "none"
        print(f"| {switch} | {_share(within, n)} | {ever / n:.1%} | {median} | {named} |")


def _wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    from annotate.quality.rules import wilson

    return wilson(successes, n, z)


if __name__ == "__main__":
    main()
