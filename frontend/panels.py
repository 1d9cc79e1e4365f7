"""Dashboard panels: each turns another app's selectors into what the template shows.

Nothing here imports torch or diffusers (selectors never do).
"""

from datetime import UTC, datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from annotate.models import Campaign, ImageImport
from annotate.quality.active import leaderboard_precision
from annotate.quality.selectors import (
    agreement_summary,
    agreement_timeline,
    model_leaderboard,
    rater_table,
)
from annotate.selectors import image_import_list
from exports.models import Export
from exports.selectors import export_files, export_list
from generation.models import GenerationJob
from generation.selectors import generation_job_list, generation_job_progress
from training.models import TrainingJob
from training.selectors import training_job_list, training_job_progress

EXPORT_ACTIVE = (Export.Status.PENDING, Export.Status.RUNNING)
# Exports a training job can start from (training_start checks the method against the format).
TRAINABLE_FORMATS = (Export.Format.PICKAPIC, Export.Format.RANKED)


def percent(done: int, total: int) -> int:
    """Whole percent of a progress bar, 0 for an empty total, never above 100."""
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
    headline: dict[str, dict] = {}
    for row in agreement_summary(campaign=campaign):
        # Rankings report rank units and derived pairs; the timeline follows derived pairs.
        if row["unit"] in ("pair", "derived_pair"):
            headline[row["criterion"]] = {"status": row["status"], **row["nominal"]}
    series = []
    for criterion in campaign.criteria:
        key = criterion["key"]
        windows = [
            w
            for w in agreement_timeline(campaign=campaign, criterion=key)
            if _stamp(w["end"]) is not None
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
    return {"series": series}


def rater_panel(*, campaign: Campaign) -> dict:
    rows = []
    for row in rater_table(campaign=campaign):
        gold_seen = row["gold_correct"] + row["gold_wrong"]
        rows.append(
            {
                **row,
                "gold": f"{row['gold_correct']} / {gold_seen}" if gold_seen else None,
                "recent_gold": (
                    f"{row['recent_gold_n'] - row['recent_gold_wrong']} / {row['recent_gold_n']}"
                    if row["recent_gold_n"]
                    else None
                ),
                "repeat_figure": (
                    f"{row['repeat_consistency']:.2f} ({row['repeats']})"
                    if row["repeat_consistency"] is not None
                    else None
                ),
            }
        )
    return {"rows": rows}


def leaderboard_panel(*, campaign: Campaign) -> dict:
    board = model_leaderboard(campaign=campaign)
    rows = [
        {**row, "n": row.get("wins", 0) + row.get("ties", 0) + row.get("losses", 0)}
        for row in board
    ]
    return {
        "rows": rows,
        "precision": leaderboard_precision(board),
        "active_sampling": campaign.active_sampling,
    }


def generation_panel(*, campaign: Campaign, limit: int = 5) -> dict:
    rows = []
    for job in generation_job_list(campaign=campaign)[:limit]:
        counts = generation_job_progress(job=job)
        names = ", ".join(g.name for g in job.generators.all())
        rows.append(
            {
                "label": names or f"#{job.pk}",
                "status": job.status,
                "done": counts["finished"],
                "total": counts["total"],
                "percent": percent(counts["finished"], counts["total"]),
                "created_at": job.created_at,
                "error": job.error or (f"{counts['failed']} failed" if counts["failed"] else ""),
                "active": job.status in GenerationJob.ACTIVE,
            }
        )
    return {"rows": rows}


def import_panel(*, campaign: Campaign, limit: int = 5) -> dict:
    rows = []
    for job in image_import_list(campaign=campaign)[:limit]:
        active = job.status in ImageImport.ACTIVE
        rows.append(
            {
                "label": job.file_name or f"#{job.pk}",
                "status": job.status + (f" · {job.phase}" if job.phase and active else ""),
                "done": job.progress_done,
                "total": job.progress_total,
                "percent": percent(job.progress_done, job.progress_total),
                "created_at": job.created_at,
                "error": job.error,
                "active": active,
            }
        )
    return {"rows": rows}


def _download_links(export: Export) -> list[dict]:
    return [
        {"url": reverse("exports:file", args=[export.pk, entry["name"]]), "text": entry["name"]}
        for entry in export_files(export=export)
    ]


def export_panel(*, campaign: Campaign, limit: int = 5) -> dict:
    rows = [
        {
            "label": f"{export.format} v{export.version}",
            "status": export.status,
            "done": export.progress_done,
            "total": export.progress_total,
            "percent": percent(export.progress_done, export.progress_total),
            "created_at": export.created_at,
            "error": export.error,
            "active": export.status in EXPORT_ACTIVE,
            "links": _download_links(export),
            # The trainer reads a finished Pick-a-Pic (DPO, MaPO) or ranked (RankDPO) export.
            "action": (
                {
                    "url": reverse("frontend:training-start", args=[export.pk]),
                    "text": _("Fine-tune"),
                }
                if export.status == "finished" and export.format in TRAINABLE_FORMATS
                else None
            ),
        }
        for export in export_list(campaign=campaign)[:limit]
    ]
    return {"rows": rows}


def training_panel(*, campaign: Campaign, limit: int = 5) -> dict:
    rows = []
    for job in training_job_list(campaign=campaign).order_by("-created_at", "-id")[:limit]:
        figures = training_job_progress(job=job)
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
                "active": job.status in TrainingJob.ACTIVE,
                "action": {
                    "url": reverse("frontend:training-job", args=[job.pk]),
                    "text": _("Curves and evaluation"),
                },
            }
        )
    return {"rows": rows}


def job_panels(*, campaign: Campaign) -> dict:
    """Every job panel of the dashboard, and whether any job is still moving: the page
    polls them while one is and stops when none is."""
    panels = [
        {"key": "generation", **generation_panel(campaign=campaign)},
        {"key": "imports", **import_panel(campaign=campaign)},
        {"key": "exports", **export_panel(campaign=campaign)},
        {"key": "training", **training_panel(campaign=campaign)},
    ]
    active = any(row["active"] for panel in panels for row in panel["rows"])
    return {"panels": panels, "active": active}
