"""Reads for training jobs: lists, the metric series for charts, the evaluation's win-rate."""

from __future__ import annotations

import math

from django.db.models import QuerySet

from annotate.models import Campaign
from training.models import TrainingJob, TrainingMetric

# The figures charted on the job page, in the trainer's metric names.
SERIES = (
    "loss",
    "implicit_acc",
    "reward_margin",
    "mse_w",
    "mse_l",
    "ref_mse_w",
    "ref_mse_l",
    "lr",
    "grad_norm",
    "samples_per_s",
)
Z_95 = 1.959963984540054
INTERVAL_METHOD = "wilson"


def training_job_list(*, campaign: Campaign) -> QuerySet[TrainingJob]:
    """Jobs trained on the campaign's exports, newest first."""
    return TrainingJob.objects.filter(export__campaign=campaign).select_related("export")


def training_job_progress(*, job: TrainingJob) -> dict:
    total = job.max_steps or 0
    return {
        "step": job.step,
        "total_steps": total,
        "percent": min(100, round(100 * job.step / total)) if total else 0,
        "latest": job.latest_metrics,
        "heartbeat_at": job.heartbeat_at,
    }


def training_job_metric_series(*, job: TrainingJob, after_step: int = 0) -> dict[str, list]:
    """Column-wise series for the chart library: {"step": [...], "loss": [...], ...};
    a step without a value (no reference for MaPO, a non-finite loss) has null.

    ``after_step`` keeps only later steps, so a page that polls fetches what is new."""
    rows = (
        TrainingMetric.objects.filter(job=job, step__gt=after_step)
        .order_by("step")
        .values_list("step", "values")
    )
    series: dict[str, list] = {"step": []}
    for name in SERIES:
        series[name] = []
    for step, values in rows.iterator(chunk_size=2000):
        series["step"].append(step)
        for name in SERIES:
            series[name].append(values.get(name))
    return series


def win_rate(*, wins: int, ties: int, losses: int, z: float = Z_95) -> dict:
    """The tuned model's win-rate over base, ties counting half, with a Wilson score interval
    on that rate (n = all judgments, successes = wins + ties / 2)."""
    n = wins + ties + losses
    if n == 0:
        return {
            "wins": 0,
            "ties": 0,
            "losses": 0,
            "judgments": 0,
            "win_rate": None,
            "low": None,
            "high": None,
            "interval": INTERVAL_METHOD,
        }
    rate = (wins + ties / 2) / n
    centre = rate + z * z / (2 * n)
    spread = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return {
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "judgments": n,
        "win_rate": rate,
        "low": max(0.0, (centre - spread) / denominator),
        "high": min(1.0, (centre + spread) / denominator),
        "interval": INTERVAL_METHOD,
    }


def training_job_evaluation(*, job: TrainingJob) -> dict | None:
    """The evaluation campaign's result so far, or None when there is none.

    Counts come from the quality engine's per-model outcome cells (excluded judgments left
    out), on the evaluation campaign's first criterion.
    """
    campaign = job.evaluation_campaign
    if campaign is None or job.base_generator is None or job.tuned_generator is None:
        return None
    from annotate.quality.active import WIN_RATE_TARGET, judgments_needed
    from annotate.quality.encoding import LO, TIE_VALUE
    from annotate.quality.leaderboard import outcome_cells

    tuned, base = job.tuned_generator.name, job.base_generator.name
    criterion = campaign.criteria[0]["key"]
    wins = ties = losses = 0
    for lo, hi, value, count in outcome_cells(campaign_id=campaign.pk, criterion=criterion):
        if {lo, hi} != {tuned, base}:
            continue
        if value == TIE_VALUE:
            ties += count
        elif (lo if value == LO else hi) == tuned:
            wins += count
        else:
            losses += count
    rate = win_rate(wins=wins, ties=ties, losses=losses)
    half_width = (rate["high"] - rate["low"]) / 2 if rate["judgments"] else 1.0
    return {
        "campaign": campaign.pk,
        "campaign_slug": campaign.slug,
        "criterion": criterion,
        "base_model": base,
        "tuned_model": tuned,
        **rate,
        # "About N more judgments to reach +-target", from the interval's current width.
        "target": WIN_RATE_TARGET,
        "more_judgments": judgments_needed(
            judgments=rate["judgments"], half_width=half_width, target=WIN_RATE_TARGET
        ),
    }
