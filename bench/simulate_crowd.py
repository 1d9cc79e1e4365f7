"""Label-quality harness: a simulated crowd through the real services (specs/quality.md).

Every task goes through assignment_next and judgment_submit on a real database, so the
submit-time counters, the gold SPRT, the evaluation task (run eagerly on commit, as a
worker would) and the exclusions are the production code paths.

    python bench/simulate_crowd.py                    # SQLite file in /tmp
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pickwise_sim python bench/simulate_crowd.py
    python bench/simulate_crowd.py --scale 0.25       # a quick run

The world: per image a latent quality and a style value (a model effect plus noise); about
40% of pairs turn on style, where minority-taste raters legitimately prefer the other
image. Truth = the majority taste's preference. Reports per group: blocked, warned,
judgments until blocked; false blocks among honest and taste raters; label accuracy of our
gated consensus beside crowd-kit's MajorityVote and DawidSkene on the same judgments.
"""

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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-key-not-secret")
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/pickwise_simulate_crowd.sqlite3")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ["HF_HUB_OFFLINE"] = "1"

GROUPS = {
    # name: (raters at scale 1, target note)
    "honest": 400,
    "minority_taste": 40,
    "random_clicker": 40,
    "always_left": 20,
    "always_tie": 20,
    "contrarian": 20,
    "very_sloppy": 20,
    "fast_spammer": 20,
    # Not in the spec's list: behave during qualification, then click left or at random
    # (as many random-after-qualifying raters as random clickers, so its share means something).
    "left_after_qualifying": 10,
    "random_after_qualifying": 40,
}
BAD = {"random_clicker", "always_left", "always_tie", "contrarian", "fast_spammer"}


@dataclass
class Rater:
    user: object
    group: str
    noise: float
    tie_threshold: float
    lapse: float
    median_s: float
    rng: random.Random
    tasks: int = 0
    blocked_after: int | None = None
    done: bool = False
    seen_regular: int = 0
    extra: dict = field(default_factory=dict)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the group sizes")
    parser.add_argument("--budget", type=int, default=60, help="tasks each rater attempts")
    parser.add_argument("--overlap", type=int, default=5)
    parser.add_argument("--models", type=int, default=6, help="images (models) per prompt")
    parser.add_argument("--gold", type=int, default=80, help="gold comparisons")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def setup_django(media_root: str) -> None:
    import django
    from django.conf import settings

    django.setup()
    settings.MEDIA_ROOT = media_root
    from django.core.management import call_command

    from pickwise.celery import app

    # The evaluation and recompute tasks run on commit in this process, as a worker would.
    app.conf.task_always_eager = True
    logging.getLogger("celery").setLevel(logging.WARNING)
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        Path(settings.DATABASES["default"]["NAME"]).unlink(missing_ok=True)
        call_command("migrate", verbosity=0)
    else:
        call_command("flush", interactive=False, verbosity=0)
        call_command("migrate", verbosity=0)


def build_world(args, rng: random.Random):
    from annotate.models import Campaign, ComparisonImage, Image, Prompt
    from annotate.services.comparisons import comparisons_build_for_campaign
    from annotate.services.gold import gold_build
    from annotate.services.images import image_create
    from tests.factories import png_bytes

    raters_total = sum(max(1, round(n * args.scale)) for n in GROUPS.values())
    regular_needed = raters_total * (args.budget - 10) / args.overlap
    pairs_per_prompt = args.models * (args.models - 1) // 2
    prompts = math.ceil(regular_needed * 1.1 / pairs_per_prompt)
    campaign = Campaign.objects.create(
        slug="simulated-crowd",
        title="Simulated crowd",
        status=Campaign.Status.ACTIVE,
        overlap=args.overlap,
        gold_rate=0.02,
        repeat_rate=0.05,
        qualification_size=15,
    )
    model_effect = {f"model-{m}": rng.gauss(0, 0.5) for m in range(args.models)}
    latent = {}
    for p in range(prompts):
        prompt = Prompt.objects.create(campaign=campaign, text=f"simulated prompt {p}")
        for model, effect in model_effect.items():
            image, _ = image_create(prompt=prompt, data=png_bytes(), model_name=model)
            latent[str(image.uid)] = (effect + rng.gauss(0, 0.7), rng.gauss(0, 1))
    comparisons_build_for_campaign(campaign=campaign)
    gold_build(campaign=campaign, count=args.gold)
    units = {}
    slots = ComparisonImage.objects.filter(comparison__campaign=campaign).order_by(
        "comparison_id", "image_id"
    )
    images = defaultdict(list)
    for comparison_id, uid in slots.values_list("comparison_id", "image__uid"):
        images[comparison_id].append(str(uid))
    for comparison_id, (lo, hi) in images.items():
        if lo not in latent or hi not in latent:
            continue  # gold (derived images): answered from the gold answer
        style = rng.random() < 0.4
        axis = 1 if style else 0
        gap = latent[lo][axis] - latent[hi][axis]  # > 0: lo better for the majority
        units[comparison_id] = {"lo": lo, "hi": hi, "gap": gap, "style": style}
    derived = set(
        Image.objects.filter(prompt__campaign=campaign, source="derived").values_list(
            "uid", flat=True
        )
    )
    return campaign, units, model_effect, prompts, len(derived)


def make_raters(campaign, args, rng):
    from django.contrib.auth import get_user_model

    from annotate.models import Membership
    from annotate.services.campaigns import membership_set

    raters = []
    for group, size in GROUPS.items():
        for index in range(max(1, round(size * args.scale))):
            # No password: hashing one costs most of a second on this machine.
            user = get_user_model().objects.create(username=f"{group}-{index}")
            membership_set(campaign=campaign, user=user, role=Membership.Role.ANNOTATOR)
            sloppy = group == "very_sloppy"
            raters.append(
                Rater(
                    user=user,
                    group=group,
                    noise=rng.uniform(2.0, 3.0) if sloppy else rng.uniform(0.5, 1.1),
                    tie_threshold=rng.uniform(0.02, 0.3),
                    lapse=0.25 if sloppy else rng.uniform(0.0, 0.04),
                    median_s=0.7 if group == "fast_spammer" else rng.uniform(2.5, 8.0),
                    rng=random.Random(rng.random()),
                )
            )
    return raters


def honest_answer(r: Rater, unit: dict, *, minority: bool) -> str:
    gap = unit["gap"]
    if minority and unit["style"]:
        gap = -gap
    perceived = gap + r.rng.gauss(0, r.noise)
    if r.rng.random() < r.lapse:
        return r.rng.choice([unit["lo"], unit["hi"], "tie"])
    if r.rng.random() < 0.01:
        return "both_bad"
    if abs(perceived) < r.tie_threshold:
        return "tie"
    return unit["lo"] if perceived > 0 else unit["hi"]


def gold_honest(r: Rater, expected: str, presented: list[str]) -> str:
    if r.rng.random() < r.lapse:
        return r.rng.choice([*presented, "tie"])
    return expected


def answer(r: Rater, assignment, units: dict, gold: dict) -> str:
    presented = assignment.presented
    group = r.group
    qualifying_phase = r.seen_regular == 0 and assignment.is_gold
    if group.endswith("_after_qualifying") and (qualifying_phase or r.seen_regular < 1):
        group = "honest"
    if assignment.comparison_id in gold:
        expected = gold[assignment.comparison_id]
        truthful = gold_honest(r, expected, presented)
        other = [u for u in presented if u != expected]
        opposite = other[0] if other else r.rng.choice(presented)
    else:
        unit = units[assignment.comparison_id]
        if group == "minority_taste":
            return honest_answer(r, unit, minority=True)
        truthful = honest_answer(r, unit, minority=False)
        opposite = {unit["lo"]: unit["hi"], unit["hi"]: unit["lo"]}.get(
            truthful, r.rng.choice(presented)
        )
    if group in ("honest", "minority_taste", "very_sloppy"):
        return truthful
    if group in ("random_clicker", "fast_spammer", "random_after_qualifying"):
        return r.rng.choice([*presented, "tie"])
    if group in ("always_left", "left_after_qualifying"):
        return presented[0]
    if group == "always_tie":
        return "tie"
    if group == "contrarian":
        return opposite
    raise ValueError(group)


def run_crowd(campaign, raters, units, gold, args) -> tuple[int, float]:
    from django.utils import timezone

    from annotate.models import Membership
    from annotate.services.assignments import assignment_next
    from annotate.services.judgments import judgment_submit
    from pickwise.errors import ApplicationError

    clock = timezone.now()
    submitted = 0
    started = time.perf_counter()
    active = list(raters)
    rng = random.Random(args.seed)
    while active:
        r = rng.choice(active)
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
                seconds = max(0.2, r.rng.lognormvariate(math.log(r.median_s), 0.35))
                value = answer(r, assignment, units, gold)
                judgment_submit(
                    assignment=assignment,
                    answers={"overall": value},
                    duration_ms=int(seconds * 1000),
                    now=clock + timedelta(seconds=seconds),
                )
                r.tasks += 1
                submitted += 1
                if not assignment.is_gold and not assignment.is_repeat:
                    r.seen_regular += 1
                if r.tasks >= args.budget:
                    r.done = True
        clock += timedelta(milliseconds=50)
        if r.done:
            active.remove(r)
            if r.blocked_after is None:
                state = Membership.objects.get(campaign=campaign, user=r.user).gate_state
                if state == Membership.Gate.BLOCKED:
                    r.blocked_after = r.tasks
    return submitted, time.perf_counter() - started


def consensus_accuracy(campaign, units) -> dict:
    from annotate.models import Judgment

    rows = list(
        Judgment.objects.filter(campaign=campaign, is_gold=False, is_repeat=False).values_list(
            "annotator_id", "comparison_id", "answers", "excluded"
        )
    )

    def code(comparison_id, value):
        unit = units[comparison_id]
        return {unit["lo"]: "lo", unit["hi"]: "hi"}.get(value, value)

    labels = [(a, c, code(c, answers["overall"]), excluded) for a, c, answers, excluded in rows]
    truth = {c: ("lo" if u["gap"] > 0 else "hi") for c, u in units.items()}

    tie_break = random.Random(0)

    def majority(items):
        """Most votes per unit (tie is a label); an exact draw is broken at random, as
        crowd-kit's MajorityVote does, so the figures compare like with like."""
        votes = defaultdict(Counter)
        for _, c, label, _ in items:
            if label != "both_bad":
                votes[c][label] += 1
        result = {}
        for c, counter in votes.items():
            top = max(counter.values())
            result[c] = tie_break.choice(sorted(k for k, v in counter.items() if v == top))
        return result

    def accuracy(predicted: dict, over: set) -> float:
        return sum(predicted.get(c) == truth[c] for c in over) / len(over) if over else float("nan")

    gated = [row for row in labels if not row[3]]
    evaluated = {c for _, c, _, _ in labels}
    report = {
        "units": len(evaluated),
        "judgments": len(labels),
        "judgments_counted": len(gated),
        "our gated majority": accuracy(majority(gated), evaluated),
        "majority, no gating": accuracy(majority(labels), evaluated),
    }
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene, MajorityVote
    except ImportError:
        report["crowd-kit"] = "not installed (pip install -r requirements/bench.txt)"
        return report
    for name, items in (("all judgments", labels), ("gated judgments", gated)):
        frame = pd.DataFrame(
            [(a, c, label) for a, c, label, _ in items if label != "both_bad"],
            columns=["worker", "task", "label"],
        )
        report[f"crowd-kit MajorityVote, {name}"] = accuracy(
            MajorityVote().fit_predict(frame).to_dict(), evaluated
        )
        report[f"crowd-kit DawidSkene, {name}"] = accuracy(
            DawidSkene(n_iter=100).fit_predict(frame).to_dict(), evaluated
        )
    return report


def main() -> None:
    args = parse()
    rng = random.Random(args.seed)
    media = tempfile.mkdtemp(prefix="pickwise-sim-media-")
    setup_django(media)
    import django
    from django.conf import settings
    from django.db import connection

    from annotate.models import Comparison, Membership
    from annotate.quality.models import GateEvent

    print(
        f"simulate_crowd: {platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"Django {django.get_version()}, database {connection.vendor} "
        f"({settings.DATABASES['default']['NAME']})"
    )
    t0 = time.perf_counter()
    campaign, units, model_effect, prompts, derived = build_world(args, rng)
    gold = {
        c.pk: c.gold_answer["overall"]
        for c in Comparison.objects.filter(campaign=campaign, role="gold")
    }
    raters = make_raters(campaign, args, rng)
    print(
        f"world: {prompts} prompts x {args.models} models, {len(units)} regular and {len(gold)} "
        f"gold comparisons, overlap {args.overlap}, {len(raters)} raters, budget {args.budget} "
        f"tasks each; built in {time.perf_counter() - t0:.1f} s"
    )
    submitted, seconds = run_crowd(campaign, raters, units, gold, args)
    print(
        f"crowd: {submitted} judgments in {seconds:.1f} s ({submitted / seconds:.0f}/s, "
        "next + submit + eager evaluation)\n"
    )

    states = dict(Membership.objects.filter(campaign=campaign).values_list("user_id", "gate_state"))
    rules = defaultdict(Counter)
    first_block = {}
    for event in GateEvent.objects.filter(campaign=campaign, to_state="blocked").order_by("id"):
        first_block.setdefault(event.annotator_id, event.rule)
    warned_ever = set(
        GateEvent.objects.filter(campaign=campaign, to_state="warned").values_list(
            "annotator_id", flat=True
        )
    )
    header = f"{'group':<24}{'raters':>7}{'blocked':>9}{'<=50':>7}{'warned':>8}{'median to block':>17}  rules"
    print(header)
    print("-" * len(header))
    summary = {}
    for group in GROUPS:
        members = [r for r in raters if r.group == group]
        blocked = [r for r in members if states[r.user.pk] == "blocked"]
        within = [r for r in blocked if r.blocked_after is not None and r.blocked_after <= 50]
        warned = [r for r in members if r.user.pk in warned_ever or states[r.user.pk] == "warned"]
        for r in blocked:
            rules[group][first_block.get(r.user.pk, "?")] += 1
        to_block = [r.blocked_after for r in blocked if r.blocked_after is not None]
        median = statistics.median(to_block) if to_block else None
        summary[group] = (len(members), len(blocked), len(within))
        print(
            f"{group:<24}{len(members):>7}{len(blocked):>9}{len(within):>7}{len(warned):>8}"
            f"{'-' if median is None else f'{median:.0f}':>17}  "
            + ", ".join(f"{k} {v}" for k, v in rules[group].most_common())
        )
    print()
    n, b, _ = summary["honest"]
    tn, tb, _ = summary["minority_taste"]
    print(
        f"false blocks: honest {b}/{n} = {100 * b / n:.2f}% (target <= 0.5%), "
        f"minority taste {tb}/{tn} (target 0)"
    )
    checks = {
        "always_left": 1.0,
        "always_tie": 1.0,
        "contrarian": 1.0,
        "random_clicker": 0.95,
        "random_after_qualifying": 0.95,
    }
    met = b / n <= 0.005 and tb == 0
    for group, share in checks.items():
        total, _, within = summary[group]
        ok = within / total >= share
        met &= ok
        print(
            f"  {group}: {within}/{total} blocked within 50 judgments (target >= {share:.0%}) "
            f"{'ok' if ok else 'MISSED'}"
        )
    print("\nlabel accuracy against the simulated truth (majority taste), regular units")
    for key, value in consensus_accuracy(campaign, units).items():
        print(f"  {key:<40}{value:.4f}" if isinstance(value, float) else f"  {key:<40}{value}")
    print(
        f"\nsummary: targets {'met' if met else 'NOT met'}; honest false blocks {100 * b / n:.2f}%, "
        f"{submitted} judgments in {seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
