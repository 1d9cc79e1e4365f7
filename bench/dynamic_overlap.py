"""Dynamic overlap against fixed overlap on simulated crowds: judgments used, consensus
accuracy against a known truth, and minority-taste raters flagged.

    python bench/dynamic_overlap.py                          # tune, then report (about a minute)
    python bench/dynamic_overlap.py --seeds 7 2024 31337 --tune-seeds 101 102

The world is bench/consensus_accuracy.py's (its rater models, bench/crowd_model.py's vote): four images
per prompt, six pairs each, 40% of pairs on style where minority-taste raters legitimately
prefer the other image; the truth is the majority taste. Each rater also answers GOLD_ITEMS
clear quality pairs (the qualification and gold checks), which is the gold record dynamic
overlap weighs them by. No gating in either arm: every judgment counts.

Per pair, one random order of distinct raters is drawn and their votes precomputed, so both
arms see the same raters and votes (a paired comparison): fixed overlap N takes the first N;
dynamic overlap takes them one at a time from the first min_raters and stops at the first
vote after which annotate.quality.posterior.settled holds, or at max_raters, with
overlap_wanted deciding how many it wants, as the submit service does. Consensus accuracy:
the export's model (exports.consensus_model, one-coin Dawid-Skene) over each arm's votes,
scored against the truth (an exact draw scores one half). Intervals: 95% bootstrap over
prompts, pooled over seeds; the paired difference is bootstrapped the same way.

Tuning: the settings (min_raters, max_raters, confidence) are chosen on TUNE_CROWD and the
tuning seeds only (neither is reported): the fewest judgments per pair among the settings
whose pooled accuracy there is at least fixed overlap N's. The report then uses other seeds
and the two crowds of bench/consensus_accuracy.py.

Flags: the chance-agreement block rule and the crowd-kappa warning of annotate.quality.rules,
on counters computed from each arm's final votes as the full recompute computes them (co-rater
pairs on the same pair; the kappa as annotate.quality.rater_stats counts it: against the
leave-one-out plurality under fixed overlap, over each pair's first min_raters votes under
dynamic overlap from min_raters 3, against the gold-weighted consensus of the other votes
below 3), counted separately.

--stop-below adds a stopping rule to the tuning grid (evaluated, not adopted): a contested
pair also stops, unsettled, once the worth of its next judgment
(annotate.quality.posterior.judgment_worth, what the assignment order ranks by) is below the
value given.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from annotate.quality.pair_columns import confusion_against_consensus  # noqa: E402
from annotate.quality.posterior import (  # noqa: E402
    judgment_worth,
    overlap_wanted,
    rater_accuracy,
    settled,
    vote_weight,
)
from annotate.quality.rater_stats import (  # noqa: E402
    kappa,
    kappa_against_consensus,
    kappa_first_raters,
)
from annotate.quality.rules import DEFAULT_POLICY, chance_level  # noqa: E402
from bench.consensus_accuracy import (  # noqa: E402
    MIXTURES,
    MODELS_PER_PROMPT,
    STYLE_SHARE,
    bootstrap,
    score,
)
from bench.crowd_model import vote as rater_vote  # noqa: E402
from exports.consensus_model import FIRST, SECOND, TIE, consensus  # noqa: E402

GOLD_ITEMS = 20  # a qualification of 15 and a few gold checks after it
TUNE_CROWD = {  # a third mixture, used for tuning only
    "honest": 0.60,
    "minority_taste": 0.12,
    "sloppy": 0.12,
    "random": 0.08,
    "always_first": 0.04,
    "always_tie": 0.02,
    "contrarian": 0.02,
}
GRID = {
    "min_raters": (1, 2, 3),
    "max_raters": (4, 5, 6, 7),
    "confidence": (0.9, 0.95, 0.97, 0.99),
}
CURVE = (2, 3, 4, 5, 6, 7)  # fixed overlaps for the equal-accuracy comparison
SIGN = {FIRST: 1, SECOND: -1, TIE: 0}
VALUE = {FIRST: 0, TIE: 1, SECOND: 2}  # the ratings' lo / tie / hi


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 2024, 31337])
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[101, 102])
    parser.add_argument("--fixed", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--raters", type=int, default=60)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument(
        "--stop-below",
        type=float,
        nargs="+",
        default=[0.0],
        help="also tune the worth below which a contested pair stops unsettled (0: never)",
    )
    return parser.parse_args()


def world(seed: int, mixture: dict, *, prompts: int, raters: int, depth: int) -> dict:
    """Per pair: the truth and the votes of `depth` distinct raters in a random order; per
    rater: group and gold record."""
    rng = np.random.default_rng(seed)
    model_effect = rng.normal(0, 0.5, MODELS_PER_PROMPT)
    quality = model_effect + rng.normal(0, 0.7, (prompts, MODELS_PER_PROMPT))
    style = rng.normal(0, 1, (prompts, MODELS_PER_PROMPT))
    groups = rng.choice(list(mixture), size=raters, p=list(mixture.values()))
    noise = np.where(
        groups == "sloppy", rng.uniform(1.5, 2.5, raters), rng.uniform(0.35, 0.9, raters)
    )
    lapse = np.where(groups == "sloppy", 0.15, 0.02)
    tie_threshold = rng.uniform(0.05, 0.3, raters)
    pairs = list(itertools.combinations(range(MODELS_PER_PROMPT), 2))
    truth, prompt_of, order, votes = [], [], [], []
    for p in range(prompts):
        for a, b in pairs:
            on_style = rng.random() < STYLE_SHARE
            gap = (style if on_style else quality)[p, a] - (style if on_style else quality)[p, b]
            chosen = rng.choice(raters, depth, replace=False)
            truth.append(gap > 0)
            prompt_of.append(p)
            order.append(chosen)
            votes.append(
                [
                    rater_vote(
                        rng,
                        group=groups[r],
                        gap=gap,
                        on_style=on_style,
                        noise=noise[r],
                        lapse=lapse[r],
                        tie_threshold=tie_threshold[r],
                        offset_key=[seed, p, a, b, int(noise[r] * 1e6)],
                    )
                    for r in chosen
                ]
            )
    correct = np.zeros(raters)
    for r in range(raters):
        for g in range(GOLD_ITEMS):
            gap = rng.uniform(1.0, 2.5) * rng.choice((-1, 1))
            vote = rater_vote(
                rng,
                group=groups[r],
                gap=gap,
                on_style=False,
                noise=noise[r],
                lapse=lapse[r],
                tie_threshold=tie_threshold[r],
                offset_key=[seed, 100_000 + g, 0, 1, int(noise[r] * 1e6)],
            )
            correct[r] += vote == (FIRST if gap > 0 else SECOND)
    return {
        "truth": np.array(truth),
        "prompt_of": np.array(prompt_of),
        "order": np.array(order),
        "votes": np.array(votes),
        "groups": groups,
        "accuracy": rater_accuracy(correct, GOLD_ITEMS - correct),
        "raters": raters,
    }


def taken_fixed(w: dict, n: int) -> np.ndarray:
    return np.full(len(w["truth"]), n)


def taken_dynamic(
    w: dict, *, min_raters: int, max_raters: int, confidence: float, stop_below: float = 0.0
):
    """Per pair: judgments taken and whether it settled, one rater at a time as on submit.

    `stop_below` > 0 is the stopping rule evaluated (and not adopted, bench/RESULTS.md) for
    contested pairs: stop, unsettled, once judgment_worth (the value the assignment order
    ranks by) falls below it, the next rater as accurate as the pair's raters so far."""
    taken = np.zeros(len(w["truth"]), dtype=int)
    was_settled = np.zeros(len(w["truth"]), dtype=bool)
    for item, (raters, votes) in enumerate(zip(w["order"], w["votes"], strict=True)):
        wanted, done, is_settled = min_raters, 0, False
        while done < wanted:
            done += 1
            cast = [
                (SIGN[v], w["accuracy"][r])
                for r, v in zip(raters[:done], votes[:done], strict=True)
            ]
            is_settled = done >= min_raters and settled(cast, confidence=confidence)
            wanted = overlap_wanted(
                done=done, in_flight=0, wanted=wanted, is_settled=is_settled, max_raters=max_raters
            )
            if stop_below and done >= min_raters and not is_settled and done < max_raters:
                accuracy = float(np.mean([max(0.5, a) for _, a in cast]))
                worth = judgment_worth(cast, remaining=max_raters - done, next_accuracy=accuracy)
                if worth < stop_below:
                    break
        taken[item], was_settled[item] = done, is_settled
    return taken, was_settled


def evaluate(w: dict, taken: np.ndarray, *, min_raters: int | None = None) -> dict:
    """Accuracy of the export's consensus over the votes taken, per-prompt scores, flags
    (the kappa as the recompute counts it under dynamic overlap with `min_raters`, or under
    fixed overlap when None)."""
    items = np.repeat(np.arange(len(taken)), taken)
    raters = np.concatenate([w["order"][i, :k] for i, k in enumerate(taken)])
    outcomes = np.concatenate([w["votes"][i, :k] for i, k in enumerate(taken)])
    result = consensus(
        items=items, raters=raters, outcomes=outcomes, n_items=len(taken), n_raters=w["raters"]
    )
    scores = score(result.p_first, w["truth"])
    per_prompt = np.bincount(w["prompt_of"], weights=scores) / np.bincount(w["prompt_of"])
    return {
        "accuracy": scores.mean(),
        "per_prompt": per_prompt,
        "judgments": taken.mean(),
        "flagged": flagged(w, items, raters, outcomes, min_raters=min_raters),
    }


def flagged(w: dict, items, raters, outcomes, *, min_raters: int | None) -> dict[str, int]:
    """Raters per group that the chance-agreement rule blocks, and that the crowd-kappa rule
    warns, on counters from the final votes; the kappa as the recompute counts it
    (annotate.quality.rater_stats): under fixed overlap (min_raters None) against the
    leave-one-out majority of every other vote, under dynamic overlap from min_raters 3 the
    same on each pair's first min_raters votes, below 3 against the gold-weighted consensus
    of the other votes (the product's confusion_against_consensus)."""
    policy = DEFAULT_POLICY
    campaign = SimpleNamespace(dynamic_overlap=min_raters is not None, min_raters=min_raters)
    kappa_first = kappa_first_raters(campaign) if min_raters is not None else None
    by_consensus = min_raters is not None and kappa_against_consensus(campaign)
    by_item = defaultdict(list)
    for item, rater, outcome in zip(items, raters, outcomes, strict=True):
        by_item[item].append((rater, VALUE[int(outcome)]))
    counts = np.bincount([VALUE[int(o)] for o in outcomes], minlength=3)
    p_e = float(((counts / counts.sum()) ** 2).sum())
    stats = defaultdict(lambda: {"co_rated": 0, "co_pairs": 0, "co_agree": 0})
    confusion = defaultdict(lambda: defaultdict(int))
    for votes in by_item.values():
        for index, (rater, value) in enumerate(votes):
            others = [v for i, (_, v) in enumerate(votes) if i != index]
            if not others:
                continue
            figures = stats[rater]
            figures["co_rated"] += 1
            figures["co_pairs"] += len(others)
            figures["co_agree"] += sum(v == value for v in others)
        counted = votes if kappa_first is None else votes[:kappa_first]
        for index, (rater, value) in enumerate(counted):
            others = [v for i, (_, v) in enumerate(counted) if i != index]
            if not others:
                continue
            tally = np.bincount(others, minlength=3)
            top = np.flatnonzero(tally == tally.max())
            if len(top) == 1:
                confusion[rater][(value, int(top[0]))] += 1
    if by_consensus:
        weight = vote_weight(np.maximum(0.5, w["accuracy"]))
        matrices = confusion_against_consensus(
            unit=np.asarray(items),
            rater=np.asarray(raters),
            value=np.array([VALUE[int(o)] for o in outcomes]),
            excluded=np.zeros(len(items), dtype=bool),
            weight=weight,
            n_raters=w["raters"],
            units=int(np.max(items)) + 1,
        )
        confusion = {
            r: {(a, b): int(m[a, b]) for a, b in zip(*np.nonzero(m), strict=True)}
            for r, m in enumerate(matrices)
        }
    result: dict[str, int] = defaultdict(int)  # "block group" and "warn group" -> raters
    for rater, figures in stats.items():
        blocked = chance_level(
            SimpleNamespace(**figures),
            policy,
            p_e=p_e,
            z=policy["chance_z"],
            minimum=policy["chance_min"],
        )
        k, n = kappa(dict(confusion.get(rater, {})))
        warned = k is not None and n >= policy["kappa_min"] and k < policy["kappa_warn"]
        group = str(w["groups"][rater])
        if blocked:
            result[f"block {group}"] += 1
        if warned:
            result[f"warn {group}"] += 1
    return dict(result)


def tune(args, n: int) -> tuple[dict, list[str]]:
    worlds = [
        world(
            seed,
            TUNE_CROWD,
            prompts=args.prompts,
            raters=args.raters,
            depth=max(GRID["max_raters"]),
        )
        for seed in args.tune_seeds
    ]
    fixed = np.mean([evaluate(w, taken_fixed(w, n))["accuracy"] for w in worlds])
    lines, best = [], None
    for low, high, confidence, stop in itertools.product(*GRID.values(), args.stop_below):
        if low > high:
            continue
        setting = {"min_raters": low, "max_raters": high, "confidence": confidence}
        if stop:
            setting["stop_below"] = stop
        runs = [evaluate(w, taken_dynamic(w, **setting)[0], min_raters=low) for w in worlds]
        accuracy = np.mean([r["accuracy"] for r in runs])
        judgments = np.mean([r["judgments"] for r in runs])
        ok = accuracy >= fixed
        lines.append(
            f"| {low} | {high} | {confidence} | {stop} | {judgments:.2f} | {accuracy:.3f} | "
            f"{'yes' if ok else 'no'} |"
        )
        if ok and (best is None or judgments < best[0]):
            best = (judgments, setting)
    header = [
        f"tuning for fixed overlap {n} (accuracy {fixed:.3f} on the tuning crowd, seeds "
        f"{args.tune_seeds}):",
        "| min | max | confidence | stop below | judgments per pair | accuracy | at least "
        "fixed's |",
        "|---|---|---|---|---|---|---|",
    ]
    return (best[1] if best else None), header + lines


def report(args, n: int, chosen: dict) -> list[str]:
    rng = np.random.default_rng(0)
    lines = [
        f"### fixed overlap {n} against dynamic (min {chosen['min_raters']}, max "
        f"{chosen['max_raters']}, confidence {chosen['confidence']}"
        f"{', stop below ' + str(chosen['stop_below']) if 'stop_below' in chosen else ''}), "
        f"seeds {args.seeds}",
        "| crowd | arm | judgments per pair | saved | accuracy (pooled) | 95% interval | "
        "dynamic minus fixed, 95% interval | settled | minority-taste raters blocked, "
        "warned (of) | other raters blocked or warned |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    depth = max(CURVE)
    equal = []
    for name, mixture in MIXTURES.items():
        arms = {"fixed": [], "dynamic": []}
        curve = {k: [] for k in CURVE}
        settled_share = []
        minority_total = 0
        for seed in args.seeds:
            w = world(seed, mixture, prompts=args.prompts, raters=args.raters, depth=depth)
            minority_total += int((w["groups"] == "minority_taste").sum())
            arms["fixed"].append(evaluate(w, taken_fixed(w, n)))
            for k in CURVE:
                curve[k].append(evaluate(w, taken_fixed(w, k))["accuracy"])
            taken, was_settled = taken_dynamic(w, **chosen)
            arms["dynamic"].append(evaluate(w, taken, min_raters=chosen["min_raters"]))
            settled_share.append(was_settled.mean())
        pooled = {
            arm: np.concatenate([r["per_prompt"] for r in runs]) for arm, runs in arms.items()
        }
        low_d, high_d = bootstrap(pooled["dynamic"] - pooled["fixed"], rng, args.bootstrap)
        fixed_judgments = np.mean([r["judgments"] for r in arms["fixed"]])
        accuracy_at = np.array([np.mean(curve[k]) for k in CURVE])
        dynamic_accuracy = np.mean([r["accuracy"] for r in arms["dynamic"]])
        dynamic_judgments = np.mean([r["judgments"] for r in arms["dynamic"]])
        equal.append(equal_accuracy_line(name, accuracy_at, dynamic_accuracy, dynamic_judgments))
        for arm, runs in arms.items():
            judgments = np.mean([r["judgments"] for r in runs])
            low, high = bootstrap(pooled[arm], rng, args.bootstrap)
            flags = defaultdict(int)
            for r in runs:
                for group, count in r["flagged"].items():
                    flags[group] += count
            minority = (
                f"{flags.pop('block minority_taste', 0)}, {flags.pop('warn minority_taste', 0)}"
            )
            others = ", ".join(f"{g} {c}" for g, c in sorted(flags.items())) or "none"
            difference, share = "", ""
            if arm == "dynamic":
                gain = pooled["dynamic"].mean() - pooled["fixed"].mean()
                difference = f"{gain:+.3f}, {low_d:+.3f} to {high_d:+.3f}"
                share = f"{np.mean(settled_share):.0%}"
            lines.append(
                f"| {name} | {arm} | {judgments:.2f} | "
                f"{1 - judgments / fixed_judgments:.0%} | {pooled[arm].mean():.3f} | "
                f"{low:.3f} to {high:.3f} | {difference} | {share} | "
                f"{minority} ({minority_total}) | {others} |"
            )
    return [*lines, "", *EQUAL_HEADER, *equal]


EQUAL_HEADER = [
    "fixed overlap at the same accuracy (accuracy of fixed 2 to 7 per pair, interpolated):",
    "| crowd | fixed 2 .. 7 accuracy | dynamic: judgments, accuracy | fixed needs | saved |",
    "|---|---|---|---|---|",
]


def equal_accuracy_line(name, accuracy_at, accuracy, judgments) -> str:
    """The judgments per pair fixed overlap needs for `accuracy`, by linear interpolation
    along its accuracy curve where that curve rises (it may dip at an even N: ties)."""
    curve = ", ".join(f"{a:.3f}" for a in accuracy_at)
    rising = np.maximum.accumulate(accuracy_at)
    if accuracy > rising[-1]:
        needed, saved = f"more than {CURVE[-1]}", f"over {1 - judgments / CURVE[-1]:.0%}"
    else:
        value = float(np.interp(accuracy, rising, CURVE))
        needed, saved = f"{value:.2f}", f"{1 - judgments / value:.0%}"
    return f"| {name} | {curve} | {judgments:.2f}, {accuracy:.3f} | {needed} | {saved} |"


def main() -> None:
    args = parse()
    started = time.perf_counter()
    print(
        f"{args.prompts} prompts x 6 pairs, {args.raters} raters per crowd, {GOLD_ITEMS} gold "
        f"answers per rater; tuned on seeds {args.tune_seeds} of the tuning crowd, reported "
        f"on seeds {args.seeds}\n"
    )
    for n in args.fixed:
        chosen, lines = tune(args, n)
        print("\n".join(lines) + "\n")
        if chosen is None:
            print(f"no setting reached fixed overlap {n}'s accuracy on the tuning crowd\n")
            continue
        print("\n".join(report(args, n, chosen)) + "\n")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
