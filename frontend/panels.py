"""Dashboard panels backed by other apps' selectors, which may not have shipped yet.

Each app lands on its own schedule, so the dashboard imports their selectors lazily, inside
the request: a missing module or function gives a neutral "not available yet" panel instead
of a broken page. Each panel is {"available": bool, ...what the template shows}. Nothing here
imports torch or diffusers (selectors never do).
"""

import importlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from annotate.models import Campaign

NOT_AVAILABLE: dict[str, Any] = {"available": False}


def optional_callable(module: str, name: str) -> Callable[..., Any] | None:
    """`module.name` if that app has shipped it, else None."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _percent(done: int, total: int) -> int:
    return min(100, round(100 * done / total)) if total else 0


def _stamp(value: Any) -> float | None:
    """Unix seconds. The timeline's raw SQL gives datetimes on PostgreSQL, text on SQLite."""
    if isinstance(value, str):
        value = parse_datetime(value)
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
    return value.timestamp() if isinstance(value, datetime) else None


def agreement_panel(*, campaign: Campaign) -> dict:
    """Per criterion: alpha over windows of units with its trailing baseline (for the plot),
    and the campaign-level nominal alpha with its 95% bootstrap interval."""
    timeline = optional_callable("annotate.quality.selectors", "agreement_timeline")
    summary = optional_callable("annotate.quality.selectors", "agreement_summary")
    if timeline is None or summary is None:
        return NOT_AVAILABLE
    headline: dict[str, dict] = {}
    for row in summary(campaign=campaign):
        # Rankings report rank units and derived pairs; the timeline follows derived pairs.
        if row["unit"] in ("pair", "derived_pair"):
            headline[row["criterion"]] = {"status": row["status"], **row["nominal"]}
    series = []
    for criterion in campaign.criteria:
        key = criterion["key"]
        windows = [
            w for w in timeline(campaign=campaign, criterion=key) if _stamp(w["end"]) is not None
        ]
        series.append(
            {
                "criterion": key,
                "question": criterion["question"],
                "headline": headline.get(key, {"status": "too_few_units"}),
                "x": [_stamp(w["end"]) for w in windows],
                "alpha": [w["alpha"] for w in windows],
                "baseline": [w["baseline"] for w in windows],
                "alerts": sum(1 for w in windows if w["alert"]),
            }
        )
    return {"available": True, "series": series}


def rater_panel(*, campaign: Campaign) -> dict:
    table = optional_callable("annotate.quality.selectors", "rater_table")
    if table is None:
        return NOT_AVAILABLE
    rows = []
    for row in table(campaign=campaign):
        gold_seen = row["gold_correct"] + row["gold_wrong"]
        rows.append(
            {
                **row,
                "gold": f"{row['gold_correct']} / {gold_seen}" if gold_seen else None,
                "repeat_figure": (
                    f"{row['repeat_consistency']:.2f} ({row['repeats']})"
                    if row["repeat_consistency"] is not None
                    else None
                ),
            }
        )
    return {"available": True, "rows": rows}


def leaderboard_panel(*, campaign: Campaign) -> dict:
    board = optional_callable("annotate.quality.selectors", "model_leaderboard")
    if board is None:
        return NOT_AVAILABLE
    rows = [
        {**row, "n": row.get("wins", 0) + row.get("ties", 0) + row.get("losses", 0)}
        for row in board(campaign=campaign)
    ]
    return {"available": True, "rows": rows}


def generation_panel(*, campaign: Campaign, limit: int = 5) -> dict:
    jobs = optional_callable("generation.selectors", "generation_job_list")
    progress = optional_callable("generation.selectors", "generation_job_progress")
    if jobs is None or progress is None:
        return NOT_AVAILABLE
    rows = []
    for job in jobs(campaign=campaign)[:limit]:
        counts = progress(job=job)
        names = ", ".join(g.name for g in job.generators.all())
        rows.append(
            {
                "label": names or f"#{job.pk}",
                "status": job.status,
                "done": counts["finished"],
                "total": counts["total"],
                "percent": _percent(counts["finished"], counts["total"]),
                "created_at": job.created_at,
                "error": job.error or (f"{counts['failed']} failed" if counts["failed"] else ""),
            }
        )
    return {"available": True, "rows": rows}


def export_panel(*, campaign: Campaign, limit: int = 5) -> dict:
    exports = optional_callable("exports.selectors", "export_list")
    if exports is None:
        return NOT_AVAILABLE
    rows = [
        {
            "label": f"{export.format} v{export.version}",
            "status": export.status,
            "done": export.progress_done,
            "total": export.progress_total,
            "percent": _percent(export.progress_done, export.progress_total),
            "created_at": export.created_at,
            "error": export.error,
            # A finished Pick-a-Pic export is what the trainer reads.
            "action": (
                {
                    "url": reverse("frontend:training-start", args=[export.pk]),
                    "text": _("Fine-tune"),
                }
                if export.status == "finished" and export.format == "pickapic"
                else None
            ),
        }
        for export in exports(campaign=campaign)[:limit]
    ]
    return {"available": True, "rows": rows}


def training_panel(*, campaign: Campaign, limit: int = 5) -> dict:
    jobs = optional_callable("training.selectors", "training_job_list")
    progress = optional_callable("training.selectors", "training_job_progress")
    if jobs is None or progress is None:
        return NOT_AVAILABLE
    rows = []
    for job in jobs(campaign=campaign).order_by("-created_at", "-id")[:limit]:
        figures = progress(job=job)
        loss = (figures.get("latest") or {}).get("loss")
        rows.append(
            {
                "label": job.name or f"{job.method} #{job.pk}",
                "status": job.status + (f" · loss {loss:.4f}" if isinstance(loss, float) else ""),
                "done": figures["step"],
                "total": figures["total_steps"],
                "percent": figures["percent"],
                "created_at": job.created_at,
                "error": job.error,
                "action": {
                    "url": reverse("frontend:training-job", args=[job.pk]),
                    "text": _("Curves and evaluation"),
                },
            }
        )
    return {"available": True, "rows": rows}
