"""Consensus rankings against a known latent truth: the ranked export's consensus ranking
(exports.consensus_ranking) beside the Borda majority and crowd-kit's aggregators over the
rankings' expanded pairs.

    python bench/ranked_consensus_accuracy.py                     # 3 seeds x 2 crowds
    python bench/ranked_consensus_accuracy.py --seeds 7 --prompts 100

The ranking world, beside bench/consensus_accuracy.py's pairwise one: each prompt has four
images (one per model) with a latent quality (the model's effect plus noise) and a style
value; the majority taste's utility is quality + style, a minority taste's quality - style,
so the truth (the majority's order) is transitive and every pair of a prompt has one. Each
prompt is ranked by OVERLAP distinct raters, every image at once; no gating. A rater
perceives each image's utility through noise correlated per (rater, image) (bench/
crowd_model.py's split into a fixed and a fresh part, per image sd noise / sqrt 2 so that a
pair's gap has the pairwise world's noise), orders the images and puts two neighbours in
one tier where their perceived gap is under the rater's tie threshold. Behaviours as in
bench/crowd_model.py: honest, minority taste, sloppy, random (a random order with random
tiers), always first (the screen order, random per judgment), always tie (one tier),
contrarian (the perceived order reversed); a lapse answers like a random rater.

Each ranking becomes its six pairs (a tie where the two share a tier), as the export does.
Scored per pair of a prompt against the truth (two images left level score one half):

- ours: the consensus ranking (one-coin Dawid-Skene over the pairs, then
  exports.consensus_ranking.consensus_ranks) at a threshold of 0.5, where only an even pair
  or a cycle is left level; and at the export's default 0.9 (the share of pairs left level,
  and the accuracy on the pairs it orders);
- ours: the pairwise Dawid-Skene label of each pair, transitivity not imposed;
- the Borda majority ranking (`majority_ranking`);
- crowd-kit's aggregators over the expanded pairs (bench/consensus_accuracy.py's set, ties
  dropped for the class models), when crowd-kit is installed (requirements/bench.txt).

Intervals: 95% bootstrap over prompts, pooled over seeds; the paired difference of our
consensus ranking (0.5) against the best other aggregator is bootstrapped the same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.consensus_accuracy import _crowdkit, bootstrap  # noqa: E402
from bench.crowd_model import (  # noqa: E402
    FIXED_SD,
    FRESH_SD,
    HONEST_LAPSE,
    HONEST_NOISE,
    MIXTURES,
    SLOPPY_LAPSE,
    SLOPPY_NOISE,
    TIE_THRESHOLD,
)
from exports.consensus_model import FIRST, SECOND, TIE, consensus  # noqa: E402
from exports.consensus_ranking import borda_points, consensus_ranks, dense_ranks  # noqa: E402

IMAGES = 4
OVERLAP = 5
PAIRS = list(combinations(range(IMAGES), 2))
OURS = "ours: consensus ranking (Dawid-Skene, threshold 0.5)"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 2024, 31337])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--raters", type=int, default=60)
    parser.add_argument("--bootstrap", type=int, default=2000)
    return parser.parse_args()


def tiers_to_ranks(order: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    """Dense ranks per image from an order (best first) and where a new tier starts."""
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = 1 + np.concatenate([[0], np.cumsum(breaks)])
    return ranks


def rank_images(rng, *, group, utility, minority, noise, lapse, tie_threshold, key):
    """One rater's ranks (1 = best, dense) of a prompt's images."""
    if group == "random" or (group not in ("always_tie",) and rng.random() < lapse):
        return tiers_to_ranks(rng.permutation(IMAGES), rng.random(IMAGES - 1) < 2 / 3)
    if group == "always_tie":
        return np.ones(IMAGES, dtype=np.int64)
    if group == "always_first":
        return tiers_to_ranks(rng.permutation(IMAGES), np.ones(IMAGES - 1, dtype=bool))
    seen = minority if group == "minority_taste" else utility
    sd = noise / np.sqrt(2)
    perceived = (
        seen
        + np.random.default_rng(key).normal(0, sd * FIXED_SD, IMAGES)
        + rng.normal(0, sd * FRESH_SD, IMAGES)
    )
    if group == "contrarian":
        perceived = -perceived
    order = np.argsort(-perceived)
    return tiers_to_ranks(order, -np.diff(perceived[order]) >= tie_threshold)


def simulate(seed: int, mixture: dict, *, prompts: int, raters: int):
    """Rankings per (prompt, rater), their pairs as votes, and the truth per pair."""
    rng = np.random.default_rng(seed)
    model_effect = rng.normal(0, 0.5, IMAGES)
    quality = model_effect + rng.normal(0, 0.7, (prompts, IMAGES))
    style = rng.normal(0, 0.6, (prompts, IMAGES))
    groups = rng.choice(list(mixture), size=raters, p=list(mixture.values()))
    noise = np.where(
        groups == "sloppy", rng.uniform(*SLOPPY_NOISE, raters), rng.uniform(*HONEST_NOISE, raters)
    )
    lapse = np.where(groups == "sloppy", SLOPPY_LAPSE, HONEST_LAPSE)
    tie_threshold = rng.uniform(*TIE_THRESHOLD, raters)
    votes, rankings = [], []  # (prompt, a, b, rater, outcome); (prompt, ranks)
    for p in range(prompts):
        utility, minority = quality[p] + style[p], quality[p] - style[p]
        for r in rng.choice(raters, OVERLAP, replace=False):
            ranks = rank_images(
                rng,
                group=groups[r],
                utility=utility,
                minority=minority,
                noise=noise[r],
                lapse=lapse[r],
                tie_threshold=tie_threshold[r],
                key=[seed, p, int(r)],
            )
            rankings.append((p, ranks))
            for a, b in PAIRS:
                outcome = FIRST if ranks[a] < ranks[b] else SECOND if ranks[a] > ranks[b] else TIE
                votes.append((p, a, b, int(r), outcome))
    truth = np.array(
        [
            (quality[p] + style[p])[a] > (quality[p] + style[p])[b]
            for p in range(prompts)
            for a, b in PAIRS
        ]
    )
    return np.array(votes, dtype=np.int64), rankings, truth


def ranking_pair_scores(ranks: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per pair of a prompt (PAIRS order): 1 right, 0 wrong, 0.5 where left level."""
    out = []
    for (a, b), first in zip(PAIRS, truth, strict=True):
        out.append(0.5 if ranks[a] == ranks[b] else float((ranks[a] < ranks[b]) == first))
    return np.array(out)


def evaluate(votes, rankings, truth, prompts: int) -> tuple[dict, dict]:
    """Per method, the per-pair scores (prompt-major, PAIRS order); and the 0.9 coverage."""
    prompt, a, b, rater, outcome = (votes[:, i] for i in range(5))
    item = prompt * len(PAIRS) + np.array([PAIRS.index(pair) for pair in zip(a, b, strict=True)])
    n_items = prompts * len(PAIRS)
    result = consensus(
        items=item, raters=rater, outcomes=outcome, n_items=n_items, n_raters=int(rater.max()) + 1
    )
    p_first = result.p_first.reshape(prompts, len(PAIRS))
    truth = truth.reshape(prompts, len(PAIRS))
    borda = np.zeros((prompts, IMAGES))
    for p, ranks in rankings:
        borda[p] += borda_points(list(ranks))
    scores = {OURS: [], "ours: consensus ranking (threshold 0.9)": [], "Borda majority": []}
    for p in range(prompts):
        matrix = np.full((IMAGES, IMAGES), 0.5)
        for index, (i, j) in enumerate(PAIRS):
            matrix[i, j], matrix[j, i] = p_first[p, index], 1.0 - p_first[p, index]
        for name, threshold in ((OURS, 0.5), ("ours: consensus ranking (threshold 0.9)", 0.9)):
            ranks = np.array(consensus_ranks(matrix, contested_below=threshold))
            scores[name].append(ranking_pair_scores(ranks, truth[p]))
        scores["Borda majority"].append(
            ranking_pair_scores(np.array(dense_ranks(borda[p])), truth[p])
        )
    out = {name: np.concatenate(values) for name, values in scores.items()}
    labels = result.p_first
    out["ours: Dawid-Skene pair labels (no transitivity)"] = np.where(
        labels == 0.5, 0.5, (labels > 0.5) == truth.ravel()
    ).astype(float)
    for name, predicted in _crowdkit(item, rater, outcome, prompt, a, b, n_items).items():
        out[name] = np.where(predicted == 0.5, 0.5, (predicted > 0.5) == truth.ravel()).astype(
            float
        )
    level = out["ours: consensus ranking (threshold 0.9)"] == 0.5
    ordered = out["ours: consensus ranking (threshold 0.9)"][~level]
    return out, {"level": level.mean(), "ordered_accuracy": ordered.mean()}


def main() -> None:
    args = parse()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    print(
        f"seeds {args.seeds}, {args.prompts} prompts x {IMAGES} images ranked by {OVERLAP} "
        f"raters ({len(PAIRS)} pairs each), {args.raters} raters per crowd\n"
    )
    for name, mixture in MIXTURES.items():
        per_prompt: dict[str, list] = {}
        per_seed: dict[str, list] = {}
        coverage = []
        for seed in args.seeds:
            votes, rankings, truth = simulate(
                seed, mixture, prompts=args.prompts, raters=args.raters
            )
            scores, cover = evaluate(votes, rankings, truth, args.prompts)
            coverage.append(cover)
            for method, values in scores.items():
                per_prompt.setdefault(method, []).append(values.reshape(args.prompts, -1).mean(1))
                per_seed.setdefault(method, []).append(values.mean())
        pooled = {m: np.concatenate(v) for m, v in per_prompt.items()}
        print(f"## {name}: " + ", ".join(f"{g} {s:.0%}" for g, s in mixture.items()))
        print("| aggregator | pairwise accuracy (seeds pooled) | 95% interval | per seed |")
        print("|---|---|---|---|")
        for method, values in sorted(pooled.items(), key=lambda kv: -kv[1].mean()):
            low, high = bootstrap(values, rng, args.bootstrap)
            seeds = ", ".join(f"{v:.3f}" for v in per_seed[method])
            print(f"| {method} | {values.mean():.3f} | {low:.3f} to {high:.3f} | {seeds} |")
        others = {m: v for m, v in pooled.items() if not m.startswith("ours")}
        best = max(others, key=lambda m: others[m].mean())
        diff = pooled[OURS] - others[best]
        low, high = bootstrap(diff, rng, args.bootstrap)
        print(
            f"\nours (consensus ranking, 0.5) minus the best other ({best}): {diff.mean():+.4f}, "
            f"95% interval {low:+.4f} to {high:+.4f}"
        )
        print(
            "at 0.9: pairs left level per seed "
            + ", ".join(f"{c['level']:.1%}" for c in coverage)
            + "; accuracy on the pairs ordered "
            + ", ".join(f"{c['ordered_accuracy']:.3f}" for c in coverage)
            + "\n"
        )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
