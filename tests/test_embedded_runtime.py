"""The embedded default end to end, as `make run` starts it: no DATABASE_URL, no broker URL.

Separate processes share a SQLite file in WAL mode and kombu's filesystem broker: one process
enqueues the real sweep task, a real `celery worker` consumes it, and the overdue assignment
it was meant to expire is expired in the database.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# An upper bound for a loaded 2-core machine, not a speed target: the wait ends on success.
WAIT_SECONDS = 180

# One open assignment whose lease ran out a minute ago, made through the real services.
_MAKE_OVERDUE_ASSIGNMENT = """
import django
django.setup()
from datetime import timedelta
from django.utils import timezone
from annotate.models import Assignment
from annotate.services.assignments import assignment_next
from tests.factories import annotator, campaign_with_comparisons

campaign = campaign_with_comparisons(prompts=1)
assignment = assignment_next(campaign=campaign, annotator=annotator(campaign))
Assignment.objects.filter(pk=assignment.pk).update(
    expires_at=timezone.now() - timedelta(minutes=1)
)
print(assignment.pk)
"""

_ENQUEUE_SWEEP = """
import django
django.setup()
from annotate.tasks import sweep_expired_assignments_task
sweep_expired_assignments_task.delay()
"""


def embedded_env(var_dir: Path) -> dict[str, str]:
    """The environment of `make run`: nothing set but DEBUG and a private var dir."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(var_dir)),
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "pickwise.settings",
        "PICKWISE_VAR_DIR": str(var_dir),
        "DEBUG": "1",
        "HF_HUB_OFFLINE": "1",
    }
    env.update({k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL")})
    return env


def run_python(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def assignment_state(database: Path, assignment_id: int) -> str:
    with closing(sqlite3.connect(database)) as connection:
        (state,) = connection.execute(
            "SELECT state FROM annotate_assignment WHERE id = ?", (assignment_id,)
        ).fetchone()
    return state


@pytest.fixture
def worker(tmp_path):
    """Start a worker as `make run` does (without beat, so only our message can do the work)."""
    var_dir = tmp_path / "var"
    env = embedded_env(var_dir)
    run_python(["manage.py", "migrate", "--noinput", "-v", "0"], env)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "pickwise", "worker"]
            + ["-Q", "default,generate,train", "-c", "1", "--pool=solo", "-l", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield env, var_dir, process, log_path
    finally:
        process.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_worker_on_the_filesystem_broker_runs_a_task_enqueued_by_another_process(worker):
    env, var_dir, process, log_path = worker
    database = var_dir / "pickwise.sqlite3"
    assignment_id = int(run_python(["-c", _MAKE_OVERDUE_ASSIGNMENT], env).split()[-1])
    assert assignment_state(database, assignment_id) == "open"

    run_python(["-c", _ENQUEUE_SWEEP], env)

    deadline = time.monotonic() + WAIT_SECONDS
    while assignment_state(database, assignment_id) != "expired":
        assert process.poll() is None, f"the worker died:\n{log_path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"never consumed:\n{log_path.read_text()[-3000:]}"
        time.sleep(0.5)
    # The message was taken off the queue, not just read.
    assert list((var_dir / "broker" / "in").iterdir()) == []


def test_the_embedded_database_runs_in_wal_mode(tmp_path):
    var_dir = tmp_path / "var"
    run_python(["manage.py", "migrate", "--noinput", "-v", "0"], embedded_env(var_dir))

    with closing(sqlite3.connect(var_dir / "pickwise.sqlite3")) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()

    assert mode == "wal"
