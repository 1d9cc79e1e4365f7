"""Label-quality harness: a simulated crowd through the real services.

Every task goes through assignment_next and judgment_submit on a real database, so the
submit-time counters, the gold SPRTs, the evaluation task (run eagerly on commit, as a
worker would) and the exclusions are the production code paths.

    python bench/simulate_crowd.py                              # 3 seeds x 2 crowds, SQLite
    python bench/simulate_crowd.py --mixtures adversarial --seeds 7 --raters 40   # quick
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pickwise_sim python bench/simulate_crowd.py

From code (another benchmark, a test): `simulate(seed=..., mixture=..., campaign_settings=...)`
runs one crowd in the current database and returns a SimulationResult; it needs
settings.PICKWISE_SIMULATION (to seed the assignment engine), Celery eager on commit and,
to replay exactly, no cache (SIMULATION_CACHES); setup_django() sets all three.

The world: per image a latent quality (its model's effect plus noise) and a style value;
40% of regular pairs turn on style, where minority-taste raters legitimately prefer the other
image. Truth = the majority taste's preference. Raters are bench/crowd_model.py's (shared
with bench/consensus_accuracy.py): they answer every task, gold included, through their own
perception, whose noise is correlated per rater and pair (a repeat sees mostly the same
noise). A corrupted or mismatched gold pair has a gap of GOLD_GAP towards the right image;
an identical gold pair has no gap and no perception noise (the pixels are the same), so an
honest rater answers tie unless they lapse. Behaviours beyond crowd_model's, for the gating:
fast_spammer (random answers in well under a second), left_after_qualifying and
random_after_qualifying (honest until their first regular task, then always the left image
or random answers).

A run replays exactly from its seed: the world, the raters, the order in which they ask for
tasks and the assignment engine's own draws (assignment_draws_seed) all come from it.

Reported per crowd, over the seeds: per behaviour the share blocked (Wilson 95% interval),
blocked within 50 judgments, judgments until blocked; false blocks of honest and
minority-taste raters against the 0.5% target; accuracy against the truth of the export's
consensus model (one-coin Dawid-Skene), the majority and crowd-kit's MajorityVote (tie a
label, draws broken crowd-kit's way) and DawidSkene (ties dropped), each over the gated
judgments and over all of them (95% bootstrap over prompts, pooled over seeds).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.consensus_accuracy import bootstrap, score  # noqa: E402
from bench.crowd_model import (  # noqa: E402
    HONEST_LAPSE,
    HONEST_NOISE,
    SLOPPY_LAPSE,
    SLOPPY_NOISE,
    STYLE_SHARE,
    TIE_THRESHOLD,
    vote,
)
from bench.crowd_model import MIXTURES as CONSENSUS_MIXTURES  # noqa: E402
from exports.consensus_model import FIRST, SECOND, TIE  # noqa: E402

# A corrupted or mismatched gold image is worse by this much utility: about 2.5 standard
# deviations of a regular pair's gap (0.7 * sqrt 2), taste-independent and obvious, as gold
# must be. An honest rater (noise at most 0.9) then misperceives it in under 0.3% of looks;
# lapses make their gold accuracy about 98.5%, a sloppy rater's about 80%.
GOLD_GAP = 2.5
BLOCK_WITHIN = 50
FALSE_BLOCK_TARGET = 0.005  # honest raters blocked: at most 0.5% (the spec's figure)
# Share of each behaviour that must be blocked within BLOCK_WITHIN judgments.
BLOCK_TARGETS = {
    "always_first": 1.0,
    "always_tie": 1.0,
    "contrarian": 1.0,
    "random": 0.95,
    "random_after_qualifying": 0.95,
}
# crowd_model's two crowds with the gating-only behaviours taken out of their honest share
# (always_first's share split with the left-after-qualifying raters), so each behaviour the
# gating must stop is present in both.
MIXTURES = {
    "mostly honest": {
        **CONSENSUS_MIXTURES["mostly honest"],
        "honest": 0.60,
        "always_first": 0.03,
        "always_tie": 0.02,
        "contrarian": 0.02,
        "fast_spammer": 0.02,
        "left_after_qualifying": 0.02,
        "random_after_qualifying": 0.04,
    },
    "adversarial": {
        **CONSENSUS_MIXTURES["adversarial"],
        "honest": 0.36,
        "always_first": 0.03,
        "fast_spammer": 0.03,
        "left_after_qualifying": 0.02,
        "random_after_qualifying": 0.06,
    },
}
CAMPAIGN_DEFAULTS = {
    "overlap": 5,
    "gold_rate": 0.02,
    "repeat_rate": 0.05,
    "qualification_size": 15,
}
NOT_SEEDABLE = "simulate() needs settings.PICKWISE_SIMULATION (it seeds the assignment engine)."
# No cache: the campaign's median judgment time is cached for a minute of wall-clock time,
# which would make the speed rule depend on how fast this machine runs the simulation; a
# run must depend on its seed only.
SIMULATION_CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


@dataclass
class Rater:
    index: int
    user: object
    group: str
    noise: float
    tie_threshold: float
    lapse: float
    median_s: float
    rng: np.random.Generator
    tasks: int = 0
    blocked_after: int | None = None
    done: bool = False
    seen_regular: int = 0


@dataclass(frozen=True)
class Unit:
    """A comparison as the simulated raters see it: first and second in slot order."""

    first: str
    second: str
    gap: float  # majority-taste utility of first minus second
    on_style: bool
    prompt: int
    rank: int  # its place among the campaign's comparisons: an id free of the database's
    gold: bool = False
    identical: bool = False


@dataclass(frozen=True)
class RaterOutcome:
    group: str
    tasks: int
    blocked: bool
    blocked_after: int | None  # judgments submitted before the first refusal
    warned: bool
    rule: str  # the rule of the first block, "" if never blocked


@dataclass
class SimulationResult:
    seed: int
    mixture: str
    raters: list[RaterOutcome]
    # Per judgment in submission order: (rater, comparison rank in the campaign, answer as
    # "first", "second" or the answer itself, gold, repeat, excluded). Free of database ids
    # and image uids, so two runs compare equal exactly when they replay.
    judgments: list[tuple]
    # Per aggregator, per regular unit judged at least once: 1 right, 0 wrong, 0.5 a draw.
    accuracy: dict[str, np.ndarray] = field(default_factory=dict)
    unit_prompt: np.ndarray | None = None
    world: str = ""
    seconds: float = 0.0

    def of(self, group: str) -> list[RaterOutcome]:
        return [r for r in self.raters if r.group == group]


def group_sizes(mixture: dict[str, float], raters: int) -> dict[str, int]:
    """Raters per behaviour by largest remainder (every behaviour with a share gets one)."""
    total = sum(mixture.values())
    exact = {g: raters * share / total for g, share in mixture.items()}
    sizes = {g: max(1, math.floor(x)) for g, x in exact.items()}
    by_remainder = sorted(mixture, key=lambda g: (sizes[g] - exact[g], g))
    for group in by_remainder[: max(0, raters - sum(sizes.values()))]:
        sizes[group] += 1
    return sizes


def simulate(
    *,
    seed: int,
    mixture: str | dict[str, float] = "mostly honest",
    raters: int = 100,
    budget: int = 60,
    models: int = 6,
    gold: int = 80,
    campaign_settings: dict | None = None,
) -> SimulationResult:
    """Run one simulated crowd through the real services in the current database.

    `mixture` names one of MIXTURES or gives shares per behaviour; `campaign_settings`
    overrides CAMPAIGN_DEFAULTS (any Campaign field). Each rater attempts `budget` tasks.
    """
    from django.conf import settings

    from annotate.services.assignments import assignment_draws_seed

    if not getattr(settings, "PICKWISE_SIMULATION", False):
        raise RuntimeError(NOT_SEEDABLE)
    shares = MIXTURES[mixture] if isinstance(mixture, str) else mixture
    name = mixture if isinstance(mixture, str) else "custom"
    started = time.perf_counter()
    assignment_draws_seed(seed=seed)
    try:
        rng = np.random.default_rng([seed, 0])
        campaign, units, world = _build_world(
            rng=rng,
            seed=seed,
            raters=raters,
            budget=budget,
            models=models,
            gold=gold,
            campaign_settings={**CAMPAIGN_DEFAULTS, **(campaign_settings or {})},
        )
        crowd = _make_raters(campaign=campaign, sizes=group_sizes(shares, raters), seed=seed)
        _run_crowd(campaign=campaign, raters=crowd, units=units, seed=seed, budget=budget)
    finally:
        assignment_draws_seed(seed=None)
    result = SimulationResult(
        seed=seed,
        mixture=name,
        raters=_outcomes(campaign, crowd),
        judgments=_judgment_record(campaign, crowd),
        world=world,
    )
    result.accuracy, result.unit_prompt = _accuracy(campaign, units)
    result.seconds = time.perf_counter() - started
    return result


def _build_world(*, rng, seed, raters, budget, models, gold, campaign_settings):
    from annotate.models import Campaign, ComparisonImage, Prompt
    from annotate.services.comparisons import comparisons_build_for_campaign
    from annotate.services.gold import gold_build
    from annotate.services.images import image_create
    from tests.factories import png_bytes

    overlap = campaign_settings["overlap"]
    regular_needed = raters * (budget - 10) / overlap
    pairs_per_prompt = models * (models - 1) // 2
    prompts = math.ceil(regular_needed * 1.1 / pairs_per_prompt)
    serial = Campaign.objects.count()
    campaign = Campaign.objects.create(
        slug=f"simulated-crowd-{seed}-{serial}",
        title=f"Simulated crowd, seed {seed}",
        status=Campaign.Status.ACTIVE,
        **campaign_settings,
    )
    # As in bench/consensus_accuracy.py: model effect N(0, 0.5), image N(0, 0.7), style N(0, 1).
    model_effect = rng.normal(0, 0.5, models)
    latent = {}
    prompt_of = {}
    for p in range(prompts):
        prompt = Prompt.objects.create(campaign=campaign, text=f"simulated prompt {p}")
        for m in range(models):
            image, _ = image_create(prompt=prompt, data=png_bytes(), model_name=f"model-{m}")
            latent[str(image.uid)] = (model_effect[m] + rng.normal(0, 0.7), rng.normal(0, 1))
            prompt_of[str(image.uid)] = p
    comparisons_build_for_campaign(campaign=campaign)
    # Seeded by the run's seed alone (gold_build's own seed includes the campaign's key).
    gold_build(campaign=campaign, count=gold, rng=random.Random(f"gold:{seed}"))
    slots: dict[int, list[str]] = {}
    rows = (
        ComparisonImage.objects.filter(comparison__campaign=campaign)
        .order_by("comparison_id", "slot")
        .values_list("comparison_id", "image__uid", "comparison__role", "comparison__gold_answer")
    )
    answers = {}
    for comparison_id, uid, role, answer in rows:
        slots.setdefault(comparison_id, []).append(str(uid))
        if role == "gold":
            answers[comparison_id] = answer["overall"]
    units = {}
    for rank, (comparison_id, (first, second)) in enumerate(sorted(slots.items())):
        if comparison_id in answers:
            expected = answers[comparison_id]
            units[comparison_id] = Unit(
                first=first,
                second=second,
                gap=0.0 if expected == "tie" else (GOLD_GAP if expected == first else -GOLD_GAP),
                on_style=False,
                prompt=-1,
                rank=rank,
                gold=True,
                identical=expected == "tie",
            )
            continue
        on_style = bool(rng.random() < STYLE_SHARE)
        axis = 1 if on_style else 0
        units[comparison_id] = Unit(
            first=first,
            second=second,
            gap=float(latent[first][axis] - latent[second][axis]),
            on_style=on_style,
            prompt=prompt_of[first],
            rank=rank,
        )
    regular = sum(not u.gold for u in units.values())
    world = (
        f"{prompts} prompts x {models} models, {regular} regular and {len(answers)} gold "
        f"comparisons, {campaign_settings}"
    )
    return campaign, units, world


def _make_raters(*, campaign, sizes: dict[str, int], seed: int) -> list[Rater]:
    from django.contrib.auth import get_user_model

    from annotate.models import Membership
    from annotate.services.campaigns import membership_set

    rng = np.random.default_rng([seed, 1])
    raters = []
    for group, size in sizes.items():
        for _ in range(size):
            index = len(raters)
            # No password: hashing one costs most of a second on this machine.
            user = get_user_model().objects.create(username=f"{campaign.slug}-{index}-{group}")
            membership_set(campaign=campaign, user=user, role=Membership.Role.ANNOTATOR)
            sloppy = group == "sloppy"
            raters.append(
                Rater(
                    index=index,
                    user=user,
                    group=group,
                    noise=float(rng.uniform(*(SLOPPY_NOISE if sloppy else HONEST_NOISE))),
                    tie_threshold=float(rng.uniform(*TIE_THRESHOLD)),
                    lapse=SLOPPY_LAPSE if sloppy else HONEST_LAPSE,
                    median_s=0.7 if group == "fast_spammer" else float(rng.uniform(2.5, 8.0)),
                    rng=np.random.default_rng([seed, 2, index]),
                )
            )
    return raters


def _behaviour(r: Rater) -> str:
    """What the rater does now: the after-qualifying kinds are honest until a regular task."""
    if r.group.endswith("_after_qualifying"):
        if r.seen_regular == 0:
            return "honest"
        return "random" if r.group.startswith("random") else "always_first"
    if r.group == "fast_spammer":
        return "random"
    return r.group


def answer(r: Rater, *, assignment, unit: Unit, seed: int) -> str:
    """The rater's answer to a task, gold and repeats included, through their perception."""
    behaviour = _behaviour(r)
    if behaviour == "always_first":
        return assignment.presented[0]  # the real screen order
    outcome = vote(
        r.rng,
        group=behaviour,
        gap=unit.gap,
        on_style=unit.on_style,
        noise=0.0 if unit.identical else r.noise,
        lapse=r.lapse,
        tie_threshold=r.tie_threshold,
        # Same rater, same pair: the same fixed part of the perception noise.
        offset_key=[seed, 3, r.index, unit.rank],
    )
    return {FIRST: unit.first, SECOND: unit.second, TIE: "tie"}[outcome]


def _run_crowd(*, campaign, raters: list[Rater], units: dict, seed: int, budget: int) -> None:
    from django.utils import timezone

    from annotate.models import Membership
    from annotate.services.assignments import assignment_next
    from annotate.services.judgments import judgment_submit
    from pickwise.errors import ApplicationError

    clock = timezone.now()
    active = list(raters)
    order = np.random.default_rng([seed, 4])
    while active:
        r = active[int(order.integers(len(active)))]
        try:
            assignment = assignment_next(campaign=campaign, annotator=r.user, now=clock)
        except ApplicationError as refused:
            if refused.code == "blocked" and r.blocked_after is None:
                r.blocked_after = r.tasks
            r.done = True
        else:
            if assignment is None:
                r.done = True
            else:
                seconds = max(0.2, float(r.rng.lognormal(math.log(r.median_s), 0.35)))
                value = answer(
                    r, assignment=assignment, unit=units[assignment.comparison_id], seed=seed
                )
                judgment_submit(
                    assignment=assignment,
                    answers={"overall": value},
                    duration_ms=int(seconds * 1000),
                    now=clock + timedelta(seconds=seconds),
                )
                r.tasks += 1
                if not assignment.is_gold and not assignment.is_repeat:
                    r.seen_regular += 1
                if r.tasks >= budget:
                    r.done = True
        clock += timedelta(milliseconds=50)
        if r.done:
            active.remove(r)
            if r.blocked_after is None:
                state = Membership.objects.get(campaign=campaign, user=r.user).gate_state
                if state == Membership.Gate.BLOCKED:
                    r.blocked_after = r.tasks


def _outcomes(campaign, raters: list[Rater]) -> list[RaterOutcome]:
    from annotate.models import Membership
    from annotate.quality.models import GateEvent

    states = dict(Membership.objects.filter(campaign=campaign).values_list("user_id", "gate_state"))
    first_block: dict[int, str] = {}
    for annotator_id, rule in (
        GateEvent.objects.filter(campaign=campaign, to_state="blocked")
        .order_by("id")
        .values_list("annotator_id", "rule")
    ):
        first_block.setdefault(annotator_id, rule)
    warned = set(
        GateEvent.objects.filter(campaign=campaign, to_state="warned").values_list(
            "annotator_id", flat=True
        )
    )
    return [
        RaterOutcome(
            group=r.group,
            tasks=r.tasks,
            blocked=states[r.user.pk] == Membership.Gate.BLOCKED,
            blocked_after=r.blocked_after if states[r.user.pk] == Membership.Gate.BLOCKED else None,
            warned=r.user.pk in warned or states[r.user.pk] == Membership.Gate.WARNED,
            rule=first_block.get(r.user.pk, ""),
        )
        for r in raters
    ]


def _judgment_record(campaign, raters: list[Rater]) -> list[tuple]:
    from annotate.models import Comparison, ComparisonImage, Judgment

    rank = {
        pk: i
        for i, pk in enumerate(
            Comparison.objects.filter(campaign=campaign).order_by("id").values_list("pk", flat=True)
        )
    }
    slot = {
        str(uid): ("first", "second")[s]
        for uid, s in ComparisonImage.objects.filter(comparison__campaign=campaign).values_list(
            "image__uid", "slot"
        )
    }
    rater = {r.user.pk: r.index for r in raters}
    return [
        (rater[a], rank[c], slot.get(answers["overall"], answers["overall"]), g, rep, ex)
        for a, c, answers, g, rep, ex in Judgment.objects.filter(campaign=campaign)
        .order_by("id")
        .values_list("annotator_id", "comparison_id", "answers", "is_gold", "is_repeat", "excluded")
    ]


def _accuracy(campaign, units: dict) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each aggregator's per-unit score over the regular units judged at least once."""
    from annotate.models import Judgment
    from exports.consensus_model import consensus

    rows = list(
        Judgment.objects.filter(campaign=campaign, is_gold=False, is_repeat=False)
        .order_by("id")
        .values_list("annotator_id", "comparison_id", "answers", "excluded")
    )
    keys = sorted({c for _, c, _, _ in rows})
    item_of = {c: i for i, c in enumerate(keys)}
    rater_ids = sorted({a for a, _, _, _ in rows})
    rater_of = {a: i for i, a in enumerate(rater_ids)}
    truth_first = np.array([units[c].gap > 0 for c in keys])
    unit_prompt = np.array([units[c].prompt for c in keys])

    def code(c: int, value: str) -> int | None:
        unit = units[c]
        return {unit.first: FIRST, unit.second: SECOND, "tie": TIE}.get(value)  # both_bad: None

    votes = [
        (item_of[c], rater_of[a], code(c, answers["overall"]), excluded)
        for a, c, answers, excluded in rows
    ]
    votes = [v for v in votes if v[2] is not None]
    scores = {}
    for name, chosen in (
        ("gated", [v for v in votes if not v[3]]),
        ("all", votes),
    ):
        item = np.array([v[0] for v in chosen], dtype=np.int64)
        rater = np.array([v[1] for v in chosen], dtype=np.int64)
        outcome = np.array([v[2] for v in chosen], dtype=np.int64)
        result = consensus(
            items=item, raters=rater, outcomes=outcome, n_items=len(keys), n_raters=len(rater_ids)
        )
        predictions = {
            "ours: Dawid-Skene (the export's)": np.where(
                result.p_first == 0.5, 0.5, (result.p_first > 0.5).astype(float)
            ),
            "ours: majority (tie a vote)": result.majority,
            **_crowdkit(item, rater, outcome, len(keys)),
        }
        for method, predicted in predictions.items():
            scores[f"{method}, {name} judgments"] = score(predicted, truth_first)
    return scores, unit_prompt


def _crowdkit(item, rater, outcome, n_items) -> dict[str, np.ndarray]:
    """crowd-kit's MajorityVote (tie a label, its own draw-breaking) and DawidSkene (ties
    dropped, as in bench/consensus_accuracy.py); empty if crowd-kit is not installed."""
    try:
        import pandas as pd
        from crowdkit import aggregation as ck
    except ImportError:
        return {}
    names = np.array(["first", "second", "tie"])
    frame = pd.DataFrame({"worker": rater, "task": item, "label": names[outcome]})
    no_ties = frame[frame.label != "tie"]

    def as_first(labels) -> np.ndarray:
        mapped = labels.reindex(range(n_items)).map({"first": 1.0, "second": 0.0, "tie": 0.0})
        return mapped.fillna(0.5).to_numpy()  # a unit with no vote left: a draw

    return {
        "crowd-kit MajorityVote (tie a label)": as_first(ck.MajorityVote().fit_predict(frame)),
        "crowd-kit DawidSkene (ties dropped)": as_first(
            ck.DawidSkene(n_iter=100).fit_predict(no_ties)
        ),
    }


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def report(results: list[SimulationResult], *, rounds: int = 2000) -> bool:
    """Print one crowd's tables (pooled over its seeds); True if every target is met."""
    seeds = [r.seed for r in results]
    print(f"## {results[0].mixture}, seeds {seeds}")
    print(
        "\n| behaviour | raters | blocked (95% interval) | blocked within 50 | warned "
        "| judgments to block: median (range) | first blocking rule |"
    )
    print("|---|---|---|---|---|---|---|")
    met = True
    for group in MIXTURES.get(results[0].mixture, {}) or sorted(
        {o.group for o in results[0].raters}
    ):
        outcomes = [o for r in results for o in r.of(group)]
        n = len(outcomes)
        blocked = [o for o in outcomes if o.blocked]
        within = [o for o in blocked if o.blocked_after is not None and o.blocked_after <= 50]
        low, high = wilson(len(blocked), n)
        to_block = [o.blocked_after for o in blocked if o.blocked_after is not None]
        spread = (
            f"{statistics.median(to_block):.0f} ({min(to_block)} to {max(to_block)})"
            if to_block
            else "-"
        )
        rules = Counter(o.rule for o in blocked)
        print(
            f"| {group} | {n} | {len(blocked)} = {len(blocked) / n:.1%} ({low:.1%} to {high:.1%}) "
            f"| {len(within)} | {sum(o.warned for o in outcomes)} | {spread} | "
            + ", ".join(f"{k} {v}" for k, v in rules.most_common())
            + " |"
        )
        if group in BLOCK_TARGETS:
            met &= len(within) >= BLOCK_TARGETS[group] * n
        if group in ("honest", "minority_taste"):
            met &= len(blocked) <= FALSE_BLOCK_TARGET * n
    for group in ("honest", "minority_taste"):
        outcomes = [o for r in results for o in r.of(group)]
        blocked = sum(o.blocked for o in outcomes)
        low, high = wilson(blocked, len(outcomes))
        print(
            f"\nfalse blocks, {group}: {blocked}/{len(outcomes)} = "
            f"{blocked / max(1, len(outcomes)):.2%}, 95% interval {low:.2%} to {high:.2%} "
            f"(target <= {FALSE_BLOCK_TARGET:.1%}; "
            f"{'shown' if high <= FALSE_BLOCK_TARGET else 'not shown at this size'})"
        )
    for group, share in BLOCK_TARGETS.items():
        outcomes = [o for r in results for o in r.of(group)]
        within = sum(
            o.blocked and o.blocked_after is not None and o.blocked_after <= 50 for o in outcomes
        )
        print(
            f"  {group}: {within}/{len(outcomes)} blocked within {BLOCK_WITHIN} judgments "
            f"(target >= {share:.0%}) {'ok' if within >= share * len(outcomes) else 'MISSED'}"
        )
    rng = np.random.default_rng(0)
    print("\n| aggregator | accuracy (seeds pooled) | 95% interval | per seed |")
    print("|---|---|---|---|")
    pooled = {}
    for method in results[0].accuracy:
        per_prompt = []
        for r in results:
            scores, prompt = r.accuracy[method], r.unit_prompt
            per_prompt.append(
                np.bincount(prompt, weights=scores)[np.unique(prompt)]
                / np.bincount(prompt)[np.unique(prompt)]
            )
        pooled[method] = np.concatenate(per_prompt)
    for method, values in sorted(pooled.items(), key=lambda kv: -kv[1].mean()):
        low, high = bootstrap(values, rng, rounds)
        per_seed = ", ".join(f"{r.accuracy[method].mean():.3f}" for r in results)
        print(f"| {method} | {values.mean():.3f} | {low:.3f} to {high:.3f} | {per_seed} |")
    units = [len(r.accuracy[next(iter(r.accuracy))]) for r in results]
    judgments = [len(r.judgments) for r in results]
    print(f"\nregular units judged per seed {units}; judgments per seed {judgments}")
    print(f"targets {'met' if met else 'NOT met'}\n")
    return met


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 2024, 31337])
    parser.add_argument("--mixtures", nargs="+", default=list(MIXTURES), choices=list(MIXTURES))
    parser.add_argument("--raters", type=int, default=100, help="raters per crowd")
    parser.add_argument("--budget", type=int, default=60, help="tasks each rater attempts")
    parser.add_argument("--models", type=int, default=6, help="images (models) per prompt")
    parser.add_argument("--gold", type=int, default=80, help="gold comparisons")
    return parser.parse_args()


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-key-not-secret")
    os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/pickwise_simulate_crowd.sqlite3")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import django
    from django.conf import settings

    django.setup()
    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="pickwise-sim-media-")
    settings.PICKWISE_SIMULATION = True
    settings.CACHES = SIMULATION_CACHES
    from django.core.management import call_command

    from pickwise.celery import app

    # The evaluation and recompute tasks run on commit in this process, as a worker would.
    app.conf.task_always_eager = True
    logging.getLogger("celery").setLevel(logging.WARNING)
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        Path(settings.DATABASES["default"]["NAME"]).unlink(missing_ok=True)
    else:
        call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", verbosity=0)


def main() -> None:
    args = parse()
    setup_django()
    import django
    from django.conf import settings
    from django.db import connection

    try:
        import crowdkit

        crowdkit_version = f"crowd-kit {crowdkit.__version__}"
    except ImportError:
        crowdkit_version = "crowd-kit not installed (pip install -r requirements/bench.txt)"
    print(
        f"simulate_crowd: {platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}, Django {django.get_version()}, database "
        f"{connection.vendor} ({settings.DATABASES['default']['NAME']}), {crowdkit_version}; "
        f"{args.raters} raters per crowd, {args.budget} tasks each\n"
    )
    met = True
    for mixture in args.mixtures:
        results = []
        for seed in args.seeds:
            result = simulate(
                seed=seed,
                mixture=mixture,
                raters=args.raters,
                budget=args.budget,
                models=args.models,
                gold=args.gold,
            )
            print(
                f"{mixture}, seed {seed}: {result.world}; {len(result.judgments)} judgments in "
                f"{result.seconds:.0f} s, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            results.append(result)
        print()
        met &= report(results)
    print(f"summary: targets {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
