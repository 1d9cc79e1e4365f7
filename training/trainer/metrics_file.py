"""The trainer's JSON-lines metrics file, torch-free: the rule for what a resumed run keeps.

The trainer (dpo_monitoring.MetricsWriter) and the job runner, which reads the file as it
grows, must cut it the same way on a resume, so the rule lives here once.
"""

from __future__ import annotations

import json
from pathlib import Path


def lines_kept_on_resume(path: Path, resume_step: int) -> list[str]:
    """The lines a run resumed at `resume_step` keeps: those up to that step, without the
    earlier run's "done" (it no longer holds once training goes on). Newline-terminated."""
    kept = []
    if not Path(path).exists():
        return kept
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= resume_step and record.get("event") != "done":
            kept.append(line + "\n")
    return kept
