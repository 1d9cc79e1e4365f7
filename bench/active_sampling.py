"""Active vs uniform sampling of model pairs: interval width against judgments.

Simulated raters with known model strengths judge a pairwise campaign through the real
services (assignment_next and judgment_submit on a real database). "uniform" is the
engine's plain order (every priority 0: fullest comparison first, then by id, which walks
the prompts and so every model pair in turn); "active" turns on the campaign's
active_sampling and runs active_sampling_refresh, the service the refresh task runs, every
ACTIVE_REFRESH_EVERY judgments, as a worker would.

    python bench/active_sampling.py                      # SQLite file in /tmp
    python bench/active_sampling.py --seeds 5 --budget 600

Figures, at each checkpoint, from the Bradley-Terry fit the refresh uses (95% normal
intervals from its covariance), for the log-strength differences of models next to each other
in the true order (the intervals that decide the ranking): closest_width, the width for the
closest pair (the order least certain, what active sampling goes after); adjacent_width, the
mean over adjacent pairs; adjacent_settled, the share of adjacent pairs whose interval
excludes 0 on the right side; order_right, 1 if the point estimates order every model
rightly; all_width, the mean width over all pairs (what uniform sampling spreads evenly).
Mean over seeds with a t interval (95%) of that mean.
"""

import argparse
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-key-not-secret")
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/pickwise_active_sampling.sqlite3")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

WORLDS = {
    # True log-strengths: some close pairs (which active sampling should study) among
    # clearly ordered ones (which uniform sampling keeps asking about).
    3: [0.0, 0.2, 1.2],
    4: [0.0, 0.15, 0.6, 1.5],
    6: [0.0, 0.1, 0.3, 0.9, 1.0, 2.0],
}
KEYS = ("closest_width", "adjacent_width", "adjacent_settled", "order_right", "all_width")
# Two-sided 97.5% t quantiles by degrees of freedom, for the interval over seeds.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[3, 4, 6], choices=sorted(WORLDS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=400, help="judgments per run")
    parser.add_argument("--every", type=int, default=100, help="checkpoint spacing")
    parser.add_argument("--raters", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=120)
    parser.add_argument("--overlap", type=int, default=2)
    return parser.parse_args()


def setup_django(media_root: str) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    settings.MEDIA_ROOT = media_root
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        Path(settings.DATABASES["default"]["NAME"]).unlink(missing_ok=True)
    else:
        call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", verbosity=0)


def build(*, name: str, strengths: list[float], args, active: bool):
    from django.contrib.auth import get_user_model

    from annotate.models import Campaign, Membership, Prompt
    from annotate.services.campaigns import membership_set
    from annotate.services.comparisons import comparisons_build_for_campaign
    from annotate.services.images import image_create
    from tests.factories import png_bytes

    campaign = Campaign.objects.create(
        slug=name,
        title=name,
        overlap=args.overlap,
        gold_rate=0.0,
        repeat_rate=0.0,
        qualification_size=0,
        lease_seconds=3600,
        active_sampling=active,
    )
    model_of = {}
    for p in range(args.prompts):
        prompt = Prompt.objects.create(campaign=campaign, text=f"{name} prompt {p}")
        for m in range(len(strengths)):
            image, _ = image_create(prompt=prompt, data=png_bytes(), model_name=f"model-{m}")
            model_of[str(image.uid)] = m
    comparisons_build_for_campaign(campaign=campaign)
    campaign.status = Campaign.Status.ACTIVE
    campaign.save(update_fields=["status"])
    users = []
    for r in range(args.raters):
        user = get_user_model().objects.create(username=f"{name}-rater-{r}")
        membership_set(
            campaign=campaign,
            user=user,
            role=Membership.Role.ANNOTATOR,
            gate_state=Membership.Gate.ACTIVE,
        )
        users.append(user)
    return campaign, users, model_of


def figures(campaign, strengths: list[float]) -> dict:
    from annotate.quality.active import bradley_terry_fit
    from annotate.quality.leaderboard import outcome_cells

    models = [f"model-{m}" for m in range(len(strengths))]
    theta, covariance, _ = bradley_terry_fit(
        outcome_cells(campaign_id=campaign.pk, criterion="overall"), models
    )
    order = sorted(range(len(models)), key=lambda m: strengths[m])

    def width_and_settled(a: int, b: int) -> tuple[float, bool]:
        se = math.sqrt(covariance[a, a] + covariance[b, b] - 2 * covariance[a, b])
        d = theta[a] - theta[b]
        return 2 * 1.96 * se, abs(d) > 1.96 * se and (d > 0) == (strengths[a] > strengths[b])

    pairs = list(zip(order, order[1:], strict=False))
    adjacent = [width_and_settled(a, b) for a, b in pairs]
    closest = min(pairs, key=lambda ab: strengths[ab[1]] - strengths[ab[0]])
    every = [width_and_settled(a, b)[0] for a, b in combinations(range(len(models)), 2)]
    return {
        "closest_width": width_and_settled(*closest)[0],
        "adjacent_width": statistics.fmean(w for w, _ in adjacent),
        "adjacent_settled": statistics.fmean(float(s) for _, s in adjacent),
        "all_width": statistics.fmean(every),
        "order_right": float(list(np.argsort(theta)) == order),
    }


def run(*, strengths: list[float], seed: int, active: bool, args) -> dict[int, dict]:
    from django.utils import timezone

    from annotate.quality.active import ACTIVE_REFRESH_EVERY, active_sampling_refresh
    from annotate.services.assignments import assignment_next
    from annotate.services.judgments import judgment_submit

    name = f"m{len(strengths)}-s{seed}-{'active' if active else 'uniform'}"
    campaign, users, model_of = build(name=name, strengths=strengths, args=args, active=active)
    rng = random.Random(seed)
    clock = timezone.now()
    checkpoints = {}
    submitted = 0
    while submitted < args.budget:
        user = users[submitted % len(users)]
        assignment = assignment_next(campaign=campaign, annotator=user, now=clock)
        if assignment is None:
            raise SystemExit(f"{name}: ran out of comparisons at {submitted}; raise --prompts")
        a, b = (model_of[uid] for uid in assignment.presented)
        p_first = 1 / (1 + math.exp(strengths[b] - strengths[a]))
        winner = assignment.presented[0] if rng.random() < p_first else assignment.presented[1]
        judgment_submit(
            assignment=assignment,
            answers={"overall": winner},
            duration_ms=3000,
            now=clock + timedelta(seconds=3),
        )
        submitted += 1
        clock += timedelta(seconds=4)
        if active and submitted % ACTIVE_REFRESH_EVERY == 0:
            active_sampling_refresh(campaign=campaign)
        if submitted % args.every == 0:
            checkpoints[submitted] = figures(campaign, strengths)
    return checkpoints


def mean_interval(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    half = T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return f"{mean:.3f} ± {half:.3f}"


def main() -> None:
    args = parse()
    media = tempfile.mkdtemp(prefix="pickwise-active-media-")
    setup_django(media)
    import django
    from django.db import connection

    from annotate.quality.active import ACTIVE_REFRESH_EVERY

    print(
        f"active_sampling: {platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"database {connection.vendor}; budget {args.budget}, raters {args.raters}, "
        f"overlap {args.overlap}, prompts {args.prompts}, seeds 0..{args.seeds - 1}, "
        f"refresh every {ACTIVE_REFRESH_EVERY} judgments"
    )
    for m in args.models:
        strengths = WORLDS[m]
        started = time.perf_counter()
        results = {
            active: [
                run(strengths=strengths, seed=s, active=active, args=args)
                for s in range(args.seeds)
            ]
            for active in (False, True)
        }
        print(
            f"\n{m} models, true log-strengths {strengths} ({time.perf_counter() - started:.0f} s)"
        )
        print("| judgments | " + " | ".join(f"{key}: uniform | active" for key in KEYS) + " |")
        for n in sorted(results[False][0]):
            row = [n]
            for key in KEYS:
                for active in (False, True):
                    row.append(mean_interval([r[n][key] for r in results[active]]))
            print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
