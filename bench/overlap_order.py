"""Dynamic overlap's assignment order at a budget: consensus accuracy part-way through.

    python bench/overlap_order.py                                # 3 seeds x 2 crowds
    python bench/overlap_order.py --seeds 7 --budgets 1 1.5 2 2.5

Which comparison the engine serves next does not change how many judgments a dynamic
campaign uses in the end (each comparison stops on its own votes), so bench/dynamic_overlap.py
cannot see it. Here a crowd works through a campaign concurrently and the consensus is scored
after every `budget` judgments per pair: what the order buys is accuracy before the end.

The world is bench/dynamic_overlap.py's, with every rater's vote on every pair drawn up front
(so any rater can be served any pair). Every rater holds one task; the task finished next is
drawn at random among those held (raters answer at different speeds), its vote is settled as
the submit settles it (annotate.quality.posterior.settled and overlap_wanted, and the
priority annotate.services.overlap.next_priority writes), and its rater, and any rater left
waiting with nothing open to them, takes the next task as the engine picks it: among the open comparisons the rater has not met, the highest
priority, then the most judgments done or in flight, then the lowest id. Orders compared on
the same world and the same draws:

- fullest: the engine without the worth order (priority 0 everywhere);
- worth, started first: started comparisons by the worth of their next judgment, fresh ones
  at 0 after them (a first design, measured here and not adopted);
- worth: the product's order, fresh comparisons at the worth of their first judgment
  (annotate.services.overlap.fresh_priority), which is more than any further judgment is
  worth, so every comparison gets its first judgments before any gets more.

Accuracy: the export's consensus (exports.consensus_model) over the votes so far, every pair
scored (a pair without votes scores one half); 95% bootstrap intervals over prompts, pooled
over seeds, and the paired difference of worth (the product) minus fullest.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from annotate.quality.posterior import overlap_wanted, settled  # noqa: E402
from annotate.services.overlap import fresh_priority, next_priority  # noqa: E402
from bench.consensus_accuracy import MIXTURES, bootstrap, score  # noqa: E402
from bench.dynamic_overlap import SIGN, world  # noqa: E402
from exports.consensus_model import consensus  # noqa: E402

ORDERS = ("fullest", "worth, started first", "worth")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 2024, 31337])
    parser.add_argument("--budgets", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--raters", type=int, default=60)
    parser.add_argument("--min-raters", type=int, default=2)
    parser.add_argument("--max-raters", type=int, default=5)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--bootstrap", type=int, default=2000)
    return parser.parse_args()


def run(w: dict, order: str, args, seed: int) -> dict[float, np.ndarray]:
    """Per budget: each pair's score once that many judgments per pair were submitted."""
    rng = np.random.default_rng([seed, 1])
    pairs, raters = len(w["truth"]), w["raters"]
    position = np.argsort(w["order"], axis=1)  # position[i, r]: rater r's column on pair i
    done = np.zeros(pairs, dtype=int)
    in_flight = np.zeros(pairs, dtype=int)
    wanted = np.full(pairs, args.min_raters)
    campaign = SimpleNamespace(
        dynamic_overlap=True, active_sampling=False, k=2, max_raters=args.max_raters
    )
    priority = np.full(pairs, fresh_priority(campaign) if order == ORDERS[2] else 0)
    met = np.zeros((raters, pairs), dtype=bool)
    cast: list[list[tuple[int, float]]] = [[] for _ in range(pairs)]
    log_items, log_raters, log_outcomes = [], [], []
    ids = np.arange(pairs)

    def pick(rater: int) -> int | None:
        open_ = (done + in_flight < wanted) & ~met[rater]
        if not open_.any():
            return None
        candidates = ids[open_]
        key = np.lexsort((candidates, -(done + in_flight)[open_], -priority[open_]))
        return int(candidates[key[0]])

    held: list[tuple[int, int]] = []
    idle = [int(r) for r in rng.permutation(raters)]  # raters waiting for a task

    def serve() -> None:
        """Every idle rater asks again (nothing open for one now may open later)."""
        for rater in list(idle):
            item = pick(rater)
            if item is not None:
                met[rater, item], in_flight[item] = True, in_flight[item] + 1
                held.append((rater, item))
                idle.remove(rater)

    serve()
    checkpoints = sorted(args.budgets)
    scores: dict[float, np.ndarray] = {}
    submitted = 0
    while held and checkpoints:
        rater, item = held.pop(int(rng.integers(len(held))))
        outcome = int(w["votes"][item, position[item, rater]])
        in_flight[item] -= 1
        done[item] += 1
        cast[item].append((SIGN[outcome], float(w["accuracy"][rater])))
        log_items.append(item)
        log_raters.append(rater)
        log_outcomes.append(outcome)
        submitted += 1
        is_settled = done[item] >= args.min_raters and settled(
            cast[item], confidence=args.confidence
        )
        wanted[item] = overlap_wanted(
            done=int(done[item]),
            in_flight=int(in_flight[item]),
            wanted=int(wanted[item]),
            is_settled=is_settled,
            max_raters=args.max_raters,
        )
        if order != ORDERS[0]:
            priority[item] = next_priority(
                votes={(0, 1): cast[item]},
                done=int(done[item]),
                wanted=int(wanted[item]),
                used=int(done[item] + in_flight[item]),
                max_raters=args.max_raters,
            )
        while checkpoints and submitted >= checkpoints[0] * pairs:
            scores[checkpoints.pop(0)] = _scores(w, log_items, log_raters, log_outcomes)
        idle.append(rater)
        serve()
    for budget in checkpoints:  # the campaign finished below this budget
        scores[budget] = _scores(w, log_items, log_raters, log_outcomes)
    return scores


def _scores(w: dict, items: list, raters: list, outcomes: list) -> np.ndarray:
    result = consensus(
        items=np.asarray(items),
        raters=np.asarray(raters),
        outcomes=np.asarray(outcomes),
        n_items=len(w["truth"]),
        n_raters=w["raters"],
    )
    return score(result.p_first, w["truth"])


def main() -> None:
    args = parse()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    print(
        f"{args.prompts} prompts x 6 pairs, {args.raters} raters each holding one task; "
        f"dynamic overlap min {args.min_raters}, max {args.max_raters}, confidence "
        f"{args.confidence}; seeds {args.seeds}\n"
    )
    print(
        "| crowd | judgments per pair | "
        + " | ".join(f"{o}: accuracy, 95% interval" for o in ORDERS)
        + " | worth minus fullest, 95% interval |"
    )
    print("|---|---|" + "---|" * (len(ORDERS) + 1))
    for name, mixture in MIXTURES.items():
        per_order = {o: {b: [] for b in args.budgets} for o in ORDERS}
        for seed in args.seeds:
            w = world(seed, mixture, prompts=args.prompts, raters=args.raters, depth=args.raters)
            counts = np.bincount(w["prompt_of"])
            for order in ORDERS:
                for budget, scores in run(w, order, args, seed).items():
                    per_prompt = np.bincount(w["prompt_of"], weights=scores) / counts
                    per_order[order][budget].append(per_prompt)
        for budget in sorted(args.budgets):
            pooled = {o: np.concatenate(per_order[o][budget]) for o in ORDERS}
            cells = []
            for order in ORDERS:
                low, high = bootstrap(pooled[order], rng, args.bootstrap)
                cells.append(f"{pooled[order].mean():.3f}, {low:.3f} to {high:.3f}")
            gain = pooled[ORDERS[2]] - pooled[ORDERS[0]]
            low, high = bootstrap(gain, rng, args.bootstrap)
            print(
                f"| {name} | {budget:g} | {' | '.join(cells)} | "
                f"{gain.mean():+.3f}, {low:+.3f} to {high:+.3f} |"
            )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
