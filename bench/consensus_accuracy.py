"""Consensus accuracy against a known latent truth: our models beside crowd-kit's aggregators.

    python bench/consensus_accuracy.py                       # 3 seeds x 2 crowds (about a minute)
    python bench/consensus_accuracy.py --seeds 7 2024 99 --items-per-prompt 6
    python bench/consensus_accuracy.py --variants            # candidate models against ours

A world of its own, in numpy, on the lines of bench/simulate_crowd.py's: each prompt has four
images (one per model); an image has a latent quality (its model's effect plus noise) and a
style value; 40% of pairs turn on style, where minority-taste raters legitimately prefer the
other image. The truth of a pair is the majority taste's preference. Each of the prompt's six
pairs is judged by OVERLAP distinct raters (no gating: every judgment counts, so the models
face the bad raters too).

Rater models: bench/crowd_model.py's (shared with bench/simulate_crowd.py): the perception
noise is correlated per rater and pair (a fixed offset drawn once per (rater, pair) plus a
small fresh draw, so a rater's repeat of a pair is not an independent vote); honest,
minority taste, sloppy, random clicker, always first-on-screen, always tie, contrarian.

Aggregators, each scored on every pair against the truth (an exact draw scores one half):
ours (exports.consensus_model: one-coin Dawid-Skene with ties left out of the class model,
and the majority with a tie as a vote), and crowd-kit's MajorityVote (tie as a label; draws
broken as crowd-kit breaks them), DawidSkene, OneCoinDawidSkene, GLAD and MACE over
the votes with ties dropped, and BradleyTerry over images (ties dropped; a pair's winner is
the image with the higher score). Intervals: 95% bootstrap over prompts, pooled over seeds;
the paired difference against the best crowd-kit aggregator is bootstrapped the same way.
(crowd-kit 1.4.2's Wawa fails under scikit-learn 1.6 and later, so it is left out.)

`--variants` scores candidate models that are not in the app (a two-coin Dawid-Skene: one
accuracy per rater and class) against the export's one-coin model, paired over prompts, fast
and without crowd-kit; a candidate becomes the default only if it is better on both crowds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crowd_model import (  # noqa: E402
    HONEST_LAPSE,
    HONEST_NOISE,
    MIXTURES,
    SLOPPY_LAPSE,
    SLOPPY_NOISE,
    STYLE_SHARE,
    TIE_THRESHOLD,
    vote,
)
from exports.consensus_model import FIRST, TIE, consensus  # noqa: E402

MODELS_PER_PROMPT = 4
OVERLAP = 5


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 2024, 31337])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--raters", type=int, default=60)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument(
        "--contested",
        action="store_true",
        help="only our Dawid-Skene: the share of pairs contested at the export's default "
        "threshold (0.9) and the accuracy on the settled ones (fast, no crowd-kit)",
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="candidate models against the export's one-coin Dawid-Skene (fast, no crowd-kit)",
    )
    return parser.parse_args()


def simulate(seed: int, mixture: dict, *, prompts: int, raters: int):
    """Votes (pair, rater, outcome) and the truth per pair; pair p is (image a, image b)."""
    rng = np.random.default_rng(seed)
    model_effect = rng.normal(0, 0.5, MODELS_PER_PROMPT)
    quality = model_effect + rng.normal(0, 0.7, (prompts, MODELS_PER_PROMPT))
    style = rng.normal(0, 1, (prompts, MODELS_PER_PROMPT))
    pairs = [(a, b) for a in range(MODELS_PER_PROMPT) for b in range(a + 1, MODELS_PER_PROMPT)]
    groups = rng.choice(list(mixture), size=raters, p=list(mixture.values()))
    noise = np.where(
        groups == "sloppy", rng.uniform(*SLOPPY_NOISE, raters), rng.uniform(*HONEST_NOISE, raters)
    )
    lapse = np.where(groups == "sloppy", SLOPPY_LAPSE, HONEST_LAPSE)
    tie_threshold = rng.uniform(*TIE_THRESHOLD, raters)
    rows = []  # prompt, a, b, on_style, truth_first, rater, outcome
    for p in range(prompts):
        for a, b in pairs:
            on_style = rng.random() < STYLE_SHARE
            axis = style if on_style else quality
            gap = axis[p, a] - axis[p, b]  # > 0: the majority taste prefers a
            for r in rng.choice(raters, OVERLAP, replace=False):
                rows.append(
                    (
                        p,
                        a,
                        b,
                        on_style,
                        gap > 0,
                        r,
                        vote(
                            rng,
                            group=groups[r],
                            gap=gap,
                            on_style=on_style,
                            noise=noise[r],
                            lapse=lapse[r],
                            tie_threshold=tie_threshold[r],
                            offset_key=[seed, p, a, b, int(noise[r] * 1e6)],
                        ),
                    )
                )
    table = np.array([(p, a, b, s, t, r, o) for p, a, b, s, t, r, o in rows], dtype=np.int64)
    return table, groups


def score(predicted_first: np.ndarray, truth_first: np.ndarray) -> np.ndarray:
    """Per pair: 1 right, 0 wrong, 0.5 for an exact draw (predicted 0.5)."""
    right = np.where(predicted_first == 0.5, 0.5, (predicted_first > 0.5) == truth_first)
    return right.astype(float)


def aggregate(table: np.ndarray) -> dict[str, np.ndarray]:
    """Per pair, each aggregator's prediction as P(first wins) in {0, 0.5, 1} (or a float)."""
    prompt, a, b, rater, outcome = table[:, 0], table[:, 1], table[:, 2], table[:, 5], table[:, 6]
    pair_keys = prompt * 100 + a * 10 + b
    unique_keys, item = np.unique(pair_keys, return_inverse=True)
    n_items, n_raters = len(unique_keys), int(rater.max()) + 1
    out = {}
    ds = consensus(items=item, raters=rater, outcomes=outcome, n_items=n_items, n_raters=n_raters)
    out["ours: Dawid-Skene (one-coin, ties out)"] = np.where(
        ds.p_first == 0.5, 0.5, (ds.p_first > 0.5).astype(float)
    )
    out["ours: majority (tie a vote)"] = ds.majority
    out.update(_crowdkit(item, rater, outcome, prompt, a, b, n_items))
    return out, unique_keys


def _crowdkit(item, rater, outcome, prompt, a, b, n_items) -> dict[str, np.ndarray]:
    try:
        import pandas as pd
        from crowdkit import aggregation as ck
    except ImportError:
        print("crowd-kit is not installed: pip install -r requirements/bench.txt")
        return {}
    names = np.array(["first", "second", "tie"])
    frame = pd.DataFrame({"worker": rater, "task": item, "label": names[outcome]})
    no_ties = frame[frame.label != "tie"]
    results = {}

    def as_first(labels: pd.Series) -> np.ndarray:
        mapped = labels.reindex(range(n_items)).map({"first": 1.0, "second": 0.0, "tie": 0.0})
        return mapped.fillna(0.5).to_numpy()  # a pair with no vote left: a draw

    results["crowd-kit MajorityVote (tie a label)"] = as_first(ck.MajorityVote().fit_predict(frame))
    results["crowd-kit DawidSkene"] = as_first(ck.DawidSkene(n_iter=100).fit_predict(no_ties))
    results["crowd-kit OneCoinDawidSkene"] = as_first(
        ck.OneCoinDawidSkene(n_iter=100).fit_predict(no_ties)
    )
    results["crowd-kit GLAD"] = as_first(ck.GLAD(n_iter=100, silent=True).fit_predict(no_ties))
    results["crowd-kit MACE"] = as_first(ck.MACE(n_iter=100).fit_predict(no_ties))
    # Bradley-Terry over images: every prompt's images, ties dropped.
    decided = outcome != TIE
    left = prompt[decided] * 10 + a[decided]
    right = prompt[decided] * 10 + b[decided]
    winner = np.where(outcome[decided] == FIRST, left, right)
    bt = ck.BradleyTerry(n_iter=100).fit(
        pd.DataFrame({"worker": rater[decided], "left": left, "right": right, "label": winner})
    )
    scores = bt.scores_
    pair_first = np.zeros(n_items)
    first_of = dict(zip(item, prompt * 10 + a, strict=True))
    second_of = dict(zip(item, prompt * 10 + b, strict=True))
    for i in range(n_items):
        s1, s2 = scores.get(first_of[i], np.nan), scores.get(second_of[i], np.nan)
        pair_first[i] = 0.5 if not (s1 > s2 or s2 > s1) else float(s1 > s2)
    results["crowd-kit BradleyTerry (images)"] = pair_first
    return results


def bootstrap(per_prompt: np.ndarray, rng, rounds: int) -> tuple[float, float]:
    """95% interval of the mean over prompts (rows: prompts, the per-prompt mean score)."""
    draws = rng.integers(0, len(per_prompt), (rounds, len(per_prompt)))
    means = per_prompt[draws].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def pair_votes(table: np.ndarray) -> tuple[np.ndarray, ...]:
    """The pair keys, each vote's pair index, rater and outcome, and each pair's truth."""
    prompt, a, b, rater, outcome = (table[:, i] for i in (0, 1, 2, 5, 6))
    keys, item = np.unique(prompt * 100 + a * 10 + b, return_inverse=True)
    truth = dict(zip(prompt * 100 + a * 10 + b, table[:, 4].astype(bool), strict=True))
    return keys, item, rater, outcome, np.array([truth[k] for k in keys])


def contested_report(args) -> None:
    print("| crowd | seed | pairs | contested (confidence < 0.9) | accuracy, settled pairs |")
    print("|---|---|---|---|---|")
    for name, mixture in MIXTURES.items():
        for seed in args.seeds:
            table, _ = simulate(seed, mixture, prompts=args.prompts, raters=args.raters)
            keys, item, rater, outcome, truth_first = pair_votes(table)
            result = consensus(
                items=item,
                raters=rater,
                outcomes=outcome,
                n_items=len(keys),
                n_raters=int(rater.max()) + 1,
            )
            labels = result.labels(contested_below=0.9)
            settled = labels != 0.5
            accuracy = ((labels == 1.0) == truth_first)[settled].mean()
            print(f"| {name} | {seed} | {len(keys)} | {1 - settled.mean():.1%} | {accuracy:.3f} |")


def two_coin_dawid_skene(items, raters, outcomes, n_items, n_raters) -> np.ndarray:
    """P(first is better) under a two-coin Dawid-Skene: per rater a_r = P(votes first | first
    is better) and b_r = P(votes second | second is better), with the one-coin model's Beta
    prior on each and its cap; ties left out. A candidate, not in the app."""
    from annotate.quality.posterior import PRIOR_CORRECT, PRIOR_WRONG

    decided = outcomes != TIE
    items, raters = items[decided], raters[decided]
    voted_first = (outcomes[decided] == FIRST).astype(float)
    total = np.bincount(items, minlength=n_items)
    p = np.divide(
        np.bincount(items, weights=voted_first, minlength=n_items),
        total,
        out=np.full(n_items, 0.5),
        where=total > 0,
    )
    for _ in range(100):
        q = p[items]

        def rate(hits, seen):
            counts = np.bincount(raters, weights=hits, minlength=n_raters)
            trials = np.bincount(raters, weights=seen, minlength=n_raters)
            return np.clip(
                (counts + PRIOR_CORRECT) / (trials + PRIOR_CORRECT + PRIOR_WRONG), 0.01, 0.99
            )

        a = rate(q * voted_first, q)
        b = rate((1 - q) * (1 - voted_first), 1 - q)
        prior = np.clip(p.mean(), 0.05, 0.95)
        ar, br = a[raters], b[raters]
        weight = np.where(voted_first > 0, np.log(ar / (1 - br)), np.log((1 - ar) / br))
        log_odds = np.log(prior / (1 - prior)) + np.bincount(
            items, weights=weight, minlength=n_items
        )
        updated = 1 / (1 + np.exp(-log_odds))
        change, p = np.max(np.abs(updated - p)), updated
        if change < 1e-7:
            break
    return p


def variants_report(args) -> None:
    rng = np.random.default_rng(0)
    print("| crowd | one-coin (the app's) | two-coin | two-coin minus one-coin, 95% interval |")
    print("|---|---|---|---|")
    for name, mixture in MIXTURES.items():
        scores: dict[str, list] = {"one": [], "two": []}
        for seed in args.seeds:
            table, _ = simulate(seed, mixture, prompts=args.prompts, raters=args.raters)
            keys, item, rater, outcome, truth_first = pair_votes(table)
            n_raters = int(rater.max()) + 1
            one = consensus(
                items=item, raters=rater, outcomes=outcome, n_items=len(keys), n_raters=n_raters
            ).p_first
            two = two_coin_dawid_skene(item, rater, outcome, len(keys), n_raters)
            prompt_of = keys // 100
            for key, p_first in (("one", one), ("two", two)):
                right = score(np.where(p_first == 0.5, 0.5, (p_first > 0.5) * 1.0), truth_first)
                scores[key].append(np.bincount(prompt_of, weights=right) / np.bincount(prompt_of))
        one, two = np.concatenate(scores["one"]), np.concatenate(scores["two"])
        low, high = bootstrap(two - one, rng, args.bootstrap)
        print(
            f"| {name} | {one.mean():.4f} | {two.mean():.4f} | "
            f"{(two - one).mean():+.4f} ({low:+.4f} to {high:+.4f}) |"
        )


def main() -> None:
    args = parse()
    if args.contested:
        contested_report(args)
        return
    if args.variants:
        variants_report(args)
        return
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    print(
        f"seeds {args.seeds}, {args.prompts} prompts x 6 pairs x {OVERLAP} raters, "
        f"{args.raters} raters per crowd\n"
    )
    for name, mixture in MIXTURES.items():
        per_method: dict[str, list] = {}
        per_seed: dict[str, list] = {}
        for seed in args.seeds:
            table, _ = simulate(seed, mixture, prompts=args.prompts, raters=args.raters)
            predictions, keys = aggregate(table)
            truth = {}
            for row in table:
                truth[row[0] * 100 + row[1] * 10 + row[2]] = bool(row[4])
            truth_first = np.array([truth[k] for k in keys])
            prompt_of = keys // 100
            for method, predicted in predictions.items():
                scores = score(predicted, truth_first)
                per_prompt = np.bincount(prompt_of, weights=scores) / np.bincount(prompt_of)
                per_method.setdefault(method, []).append(per_prompt)
                per_seed.setdefault(method, []).append(scores.mean())
        pooled = {m: np.concatenate(v) for m, v in per_method.items()}
        print(f"## {name}: " + ", ".join(f"{g} {s:.0%}" for g, s in mixture.items()))
        print("| aggregator | accuracy (3 seeds pooled) | 95% interval | per seed |")
        print("|---|---|---|---|")
        for method, values in sorted(pooled.items(), key=lambda kv: -kv[1].mean()):
            low, high = bootstrap(values, rng, args.bootstrap)
            seeds = ", ".join(f"{v:.3f}" for v in per_seed[method])
            print(f"| {method} | {values.mean():.3f} | {low:.3f} to {high:.3f} | {seeds} |")
        crowdkit = {m: v for m, v in pooled.items() if m.startswith("crowd-kit")}
        if crowdkit:
            best = max(crowdkit, key=lambda m: crowdkit[m].mean())
            ours = pooled["ours: Dawid-Skene (one-coin, ties out)"]
            diff = ours - crowdkit[best]
            low, high = bootstrap(diff, rng, args.bootstrap)
            print(
                f"\nours (Dawid-Skene) minus the best crowd-kit ({best}): "
                f"{diff.mean():+.4f}, 95% interval {low:+.4f} to {high:+.4f}\n"
            )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
