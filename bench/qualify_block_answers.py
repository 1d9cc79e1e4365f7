"""How many gold answers a bad rater gives before the qualification SPRT blocks them: exact.

    python bench/qualify_block_answers.py

While qualifying every task is gold and the one decision is gold_verdict on the lifetime
counters: a block at LLR <= -sprt_qualify_block_bound, qualification at LLR >= sprt_bound.
For a rater right with probability p on each gold item, independently, this walks the
distribution over (right, wrong) exactly (no sampling) until it is absorbed, for the old
bound (ln 19, three misses) and the current default (ln 99, four misses). p: an always-left
rater is right on half of the gold (the faithful image is on the left half the time); a
random clicker over left, right, tie and both-bad on a quarter; a random one over the two
sides only on half; 0.93, an honest rater at the grid's lowest gold accuracy.

"Still qualifying after G": the chance that G gold answers decide nothing. A campaign holds
gold_count_for(...) gold items (15 at least, the demo 24); a qualifying rater who has met
them all is served regular tasks (assignment_next falls back to regular when _pick_gold
finds none), so that is the share of raters who give regular judgments while qualifying.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-key-not-secret")
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/pickwise_gating_mc.sqlite3")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

GOLD_ITEMS = (15, 24)  # MIN_GOLD, and the demo campaign's gold
RATERS = (("always left", 0.5), ("random over four keys", 0.25), ("honest, gold 0.93", 0.93))
MAX_ANSWERS = 200  # what is still undecided after this many answers is printed as such


def absorb(*, p: float, policy: dict) -> tuple[dict[int, float], dict[int, float], float]:
    """({answers: P(blocked at that answer)}, {answers: P(qualified)}, P(undecided))."""
    from annotate.quality.rules import gold_verdict

    blocked: dict[int, float] = {}
    qualified: dict[int, float] = {}
    alive = {(0, 0): 1.0}
    for answers in range(1, MAX_ANSWERS + 1):
        step: dict[tuple[int, int], float] = {}
        for (right, wrong), mass in alive.items():
            for state, q in (((right + 1, wrong), p), ((right, wrong + 1), 1 - p)):
                step[state] = step.get(state, 0.0) + mass * q
        alive = {}
        for (right, wrong), mass in step.items():
            counters = {
                "gold_correct": right,
                "gold_wrong": wrong,
                "post_gold_correct": 0,
                "post_gold_wrong": 0,
                "gold_recent_bits": 0,
                "gold_recent_n": 0,
                "gold_passed_at": 0,
            }
            verdict = gold_verdict(counters, policy=policy)
            if verdict.block:
                blocked[answers] = blocked.get(answers, 0.0) + mass
            elif verdict.qualified:
                qualified[answers] = qualified.get(answers, 0.0) + mass
            else:
                alive[(right, wrong)] = mass
    return blocked, qualified, sum(alive.values())


def _quantile(dist: dict[int, float], q: float) -> int | str:
    total = sum(dist.values())
    seen = 0.0
    for answers in sorted(dist):
        seen += dist[answers]
        if seen >= q * total - 1e-12:
            return answers
    return "-"


def main() -> None:
    import django

    django.setup()
    from annotate.quality.rules import DEFAULT_POLICY

    print(
        "| rater | p right | block bound | blocked | mean answers to block | median | 99th "
        "percentile | qualified | "
        + " | ".join(f"still qualifying after {g}" for g in GOLD_ITEMS)
        + " |"
    )
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(GOLD_ITEMS))
    most_undecided = 0.0
    for name, p in RATERS:
        for label, bound in (("ln 19", math.log(19)), ("ln 99", math.log(99))):
            policy = {**DEFAULT_POLICY, "sprt_qualify_block_bound": bound}
            blocked, qualified, undecided = absorb(p=p, policy=policy)
            most_undecided = max(most_undecided, undecided)
            share = sum(blocked.values())
            mean = sum(n * m for n, m in blocked.items()) / share if share else float("nan")
            left = [
                1.0
                - sum(m for n, m in blocked.items() if n <= g)
                - sum(m for n, m in qualified.items() if n <= g)
                for g in GOLD_ITEMS
            ]
            print(
                f"| {name} | {p} | {label} | {share:.3%} | {mean:.2f} | {_quantile(blocked, 0.5)} "
                f"| {_quantile(blocked, 0.99)} | {sum(qualified.values()):.2%} | "
                + " | ".join(f"{x:.2%}" for x in left)
                + " |"
            )
    print(f"\nundecided after {MAX_ANSWERS} answers: at most {most_undecided:.0e} in any row")


if __name__ == "__main__":
    main()
