"""What a run reports: JSON-lines metrics for a parent process and the rising-MSE warning."""

from __future__ import annotations

import json
import math
import resource
from collections import deque
from pathlib import Path

import torch

from training.trainer.metrics_file import lines_kept_on_resume


class MseTrend:
    """Detects the DPO failure mode where the loss falls because both errors grow.

    Tracks winner and loser MSE (minus the reference's on the same noisy input when there is a
    reference, which removes most of the timestep noise) and compares the mean of the latest
    window with the window before it.
    """

    def __init__(self, window: int, history: list | None = None):
        self.window = window
        self.history: deque = deque(history or [], maxlen=2 * window)
        self.quiet_until = 0

    def add(self, step: int, winner: float, loser: float) -> str | None:
        self.history.append((winner, loser))
        if len(self.history) < 2 * self.window or step < self.quiet_until:
            return None
        items = list(self.history)
        before, after = items[: self.window], items[self.window :]
        grew_w = _mean(x[0] for x in after) - _mean(x[0] for x in before)
        grew_l = _mean(x[1] for x in after) - _mean(x[1] for x in before)
        if grew_w > 0 and grew_l > 0:
            self.quiet_until = step + self.window
            return (
                f"winner and loser MSE both grew over the last {self.window} steps "
                f"(winner {grew_w:+.3g}, loser {grew_l:+.3g}): the loss may be falling because "
                "the model gets worse on both images; consider a larger beta or a lower "
                "learning rate"
            )
        return None


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


class MetricsWriter:
    """JSON lines for a parent process; only the main process writes."""

    def __init__(self, path: Path, *, enabled: bool, resume_step: int | None):
        self.path = Path(path)
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [] if resume_step is None else lines_kept_on_resume(self.path, resume_step)
        self.path.write_text("".join(kept), encoding="utf-8")

    def write(self, event: str, step: int, **values) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, "step": step, **values}) + "\n")
            handle.flush()


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def memory_metrics(cuda: bool) -> dict[str, float]:
    if cuda:
        return {"gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30}
    # ru_maxrss is in KiB on Linux.
    return {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
