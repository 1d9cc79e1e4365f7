"""Key press (or tap) to the next task fully painted, desktop and phone size, 20 answers each.

    .venv/bin/python bench/annotate_paint.py

Runs tests/e2e/test_paint_timing.py: a live Django server on SQLite and Debian's Chromium
(/usr/bin/chromium) driven by Playwright. The screen times each answer from the input
event's timestamp to the first task run after the next task's frame (images loaded,
painted); the test prints p50 and max per size.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    command = [sys.executable, "-m", "pytest", "tests/e2e/test_paint_timing.py", "-q", "-s"]
    sys.exit(subprocess.call(command, cwd=ROOT, env={**os.environ, "PICKWISE_BENCH": "1"}))
