"""Dashboard panels backed by other apps' selectors, which may not exist yet.

Each app lands on its own schedule, so the dashboard imports their selectors lazily, inside
the request: a missing module or function gives a neutral "not available yet" panel instead
of a broken page. Nothing here imports torch or diffusers (selectors never do).
"""

import importlib
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


def optional_callable(module: str, name: str) -> Callable[..., Any] | None:
    """`module.name` if that app has shipped it, else None."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def panel(module: str, name: str, **kwargs: Any) -> dict:
    """{"available": bool, "data": ...}: the selector's result, or why there is none."""
    selector = optional_callable(module, name)
    if selector is None:
        return {"available": False, "data": None}
    return {"available": True, "data": selector(**kwargs)}


def pick(row: Any, *names: str, default: Any = None) -> Any:
    """The first of `names` that `row` has, as a key or an attribute."""
    for name in names:
        if isinstance(row, dict):
            if row.get(name) is not None:
                return row[name]
        elif getattr(row, name, None) is not None:
            return getattr(row, name)
    return default


def job_rows(jobs: Any, *, limit: int = 10) -> list[dict]:
    """Generation, export or training jobs as (label, status, done, total, percent) rows."""
    rows = []
    for job in list(jobs or [])[:limit]:
        done = pick(job, "progress_done", "done", "items_done", "step", default=0) or 0
        total = pick(job, "progress_total", "total", "items_total", "max_steps", default=0) or 0
        label = pick(job, "name", "label", default=None)
        if label is None:
            version = pick(job, "version")
            fmt = pick(job, "format", "kind", default="")
            label = f"{fmt} v{version}" if version else f"#{pick(job, 'id', 'pk', default='?')}"
        rows.append(
            {
                "label": label,
                "status": pick(job, "status", default=""),
                "done": done,
                "total": total,
                "percent": min(100, round(100 * done / total)) if total else 0,
                "created_at": pick(job, "created_at"),
                "error": pick(job, "error", default=""),
            }
        )
    return rows


def agreement_series(timeline: Any) -> list[dict]:
    """Agreement over time per criterion, as uPlot-ready columns: x (unix s), alpha, low, high."""
    by_criterion: dict[str, list] = {}
    if isinstance(timeline, dict):
        items = [(key, point) for key, points in timeline.items() for point in points]
    else:
        items = [(pick(point, "criterion", default="overall"), point) for point in timeline or []]
    for criterion, point in items:
        when = pick(point, "at", "t", "computed_at", "created_at", "window_end")
        alpha = pick(point, "alpha", "alpha_nominal")
        if when is None:
            continue
        stamp = when.timestamp() if hasattr(when, "timestamp") else float(when)
        by_criterion.setdefault(criterion, []).append(
            (
                stamp,
                alpha,
                pick(point, "low", "alpha_low", "alpha_nominal_low"),
                pick(point, "high", "alpha_high", "alpha_nominal_high"),
            )
        )
    series = []
    for criterion, points in sorted(by_criterion.items()):
        points.sort(key=lambda p: p[0])
        columns = [list(column) for column in zip(*points, strict=True)]
        series.append(
            {
                "criterion": criterion,
                "x": columns[0],
                "alpha": columns[1],
                "low": columns[2],
                "high": columns[3],
                "latest": columns[1][-1],
            }
        )
    return series


def rater_rows(table: Any) -> list[dict]:
    """The quality rater table in the columns the dashboard shows."""
    rows = []
    for row in table or []:
        correct = pick(row, "gold_correct", default=None)
        wrong = pick(row, "gold_wrong", default=None)
        rows.append(
            {
                "user_id": pick(row, "user_id", "annotator_id"),
                "username": pick(row, "username", "annotator", default="?"),
                "judgments": pick(row, "judgments", "n", default=0),
                "gold": None if correct is None else f"{correct} / {correct + (wrong or 0)}",
                "self_consistency": pick(row, "self_consistency", "consistency"),
                "position_bias": pick(row, "position_bias", "position_z"),
                "median_seconds": pick(row, "median_seconds", "median_s"),
                "state": pick(row, "gate_state", "state", default=""),
                "reason": pick(row, "gate_reason", "reason", default=""),
            }
        )
    return rows


def leaderboard_rows(board: Any) -> list[dict]:
    return [
        {
            "model": pick(row, "model", "model_name", "name", default="?"),
            "score": pick(row, "score", "strength", "rating"),
            "low": pick(row, "low", "score_low", "ci_low"),
            "high": pick(row, "high", "score_high", "ci_high"),
            "n": pick(row, "n", "comparisons", "judgments"),
        }
        for row in board or []
    ]
