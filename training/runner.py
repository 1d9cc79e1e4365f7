"""Runs one training job on a train worker: the trainer as a subprocess, watched from here.

The trainer (``python -m training.dpo``) runs in its own process group, so a crash in it (out
of memory, a CUDA error, a segfault) fails the job and leaves the worker standing, and cancel
can stop it with its data-loader workers. It is also told to die with the worker (Linux
PR_SET_PDEATHSIG): a killed worker leaves no orphan training on, and the job is picked up
again from its last checkpoint (training_jobs_recover).

Progress comes from the trainer's JSON-lines metrics file, read as it grows and written to
the database every few seconds, with a heartbeat; the cancel flag is read at the same time.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings

from pickwise.errors import without_paths
from training.models import TrainingJob
from training.options import trainer_argv
from training.services.jobs import CANCELLED
from training.services.runs import (
    Progress,
    training_job_claim,
    training_progress_save,
    training_run_end,
    training_run_restart_at,
)
from training.trainer.metrics_file import lines_kept_on_resume

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 15
STDERR_TAIL_CHARS = 4000
EXIT_BAD_INPUT = 2  # training.dpo's status for input it refuses
PR_SET_PDEATHSIG = 1
CHECKPOINT_DIR = re.compile(r"^step-(\d+)$")

# What researchers see: a sentence, never a traceback or a server path. The trainer's own
# output goes to the worker's log (and stays in the job folder's trainer-N.log).
TRAINER_REFUSED = "The trainer refused its input: {message}"
TRAINER_FAILED = (
    "The trainer stopped with an error (exit status {code}); the worker's log has the details."
)
TRAINER_KILLED = (
    "The trainer was killed by signal {signal} (out of memory?); the worker's log has the details."
)
TRAINER_UNFINISHED = "The trainer exited without finishing; the worker's log has the details."


def latest_checkpoint_step(output_dir: Path) -> int | None:
    """The step of the checkpoint ``checkpoints/latest`` names (the trainer's layout)."""
    pointer = output_dir / "checkpoints" / "latest"
    try:
        match = CHECKPOINT_DIR.match(pointer.read_text(encoding="utf-8").strip())
    except OSError:
        return None
    return int(match.group(1)) if match else None


class MetricsTail:
    """Reads the lines appended to the metrics file since the last read, whole lines only.

    Before the trainer starts, prepare() cuts the file by the rule the trainer's own writer
    applies on a resume (training.trainer.metrics_file), so the trainer's rewrite leaves the
    bytes already read unchanged and reading goes on from the same offset.
    """

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def prepare(self, *, resume_step: int | None) -> list[dict]:
        """Cut the file for a run starting at resume_step (None: from scratch); returns the
        records kept, which the database may lack (a worker can die between the trainer
        writing a line and the runner storing it)."""
        kept = [] if resume_step is None else lines_kept_on_resume(self.path, resume_step)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(kept), encoding="utf-8")
        self.offset = self.path.stat().st_size
        return [json.loads(line) for line in kept]

    def read(self) -> list[dict]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        records = []
        for line in data[: end + 1].splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("skipping a malformed metrics line: %r", line[:200])
        return records


def _load_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: recovery's heartbeat check still applies
        return None


# Looked up here, in the parent: between fork and exec the child should only make the call.
_prctl = _load_prctl()


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the worker that started it dies."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the whole process group, SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 60)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - STDERR_TAIL_CHARS))
            return handle.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def failure_message(*, returncode: int, log: Path) -> str:
    """The job's `error`: one clean sentence. The log's tail (a traceback, paths) is logged."""
    tail = _tail(log)
    logger.error("trainer exited with %s; last output:\n%s", returncode, tail)
    if returncode == EXIT_BAD_INPUT:
        errors = [line for line in tail.splitlines() if line.startswith("error: ")]
        if errors:
            message = without_paths(errors[-1].removeprefix("error: "))
            return TRAINER_REFUSED.format(message=message)
    if returncode < 0:
        return TRAINER_KILLED.format(signal=signal.Signals(-returncode).name)
    if returncode == 0:
        return TRAINER_UNFINISHED
    return TRAINER_FAILED.format(code=returncode)


class _Progress:
    """What the metrics file said so far, and what the database has not seen yet."""

    def __init__(self):
        self.step = 0
        self.warnings: list[dict] = []
        self.latest: dict = {}
        self.rows: list[tuple[int, dict]] = []
        self.done = False
        self.urgent = False

    def add(self, record: dict) -> None:
        event, step = record.get("event"), int(record.get("step", 0))
        values = {k: v for k, v in record.items() if k not in ("event", "step")}
        if event == "step":
            self.step = step
            self.latest = values
            self.rows.append((step, values))
        elif event == "warning":
            self.warnings.append({"step": step, "message": values.get("message", "")})
            self.urgent = True
        elif event in ("start", "checkpoint"):
            self.urgent = True
        elif event == "done":
            self.step = step
            self.done = True
            self.urgent = True

    def take(self) -> Progress:
        progress = Progress(
            step=self.step, latest=self.latest, warnings=self.warnings, rows=self.rows
        )
        self.rows = []
        self.urgent = False
        return progress


def training_job_run(*, job_id: int, worker: str) -> str:
    """Claim the job and run the trainer to its end; returns the job's final status, or
    "not_claimed" / "lost" when this worker did not (or no longer does) hold it."""
    job = training_job_claim(job_id=job_id, worker=worker)
    if job is None:
        return "not_claimed"
    output = Path(job.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    resume = job.attempts > 1
    resume_step = latest_checkpoint_step(output) if resume else None
    tail = MetricsTail(output / "metrics.jsonl")
    kept = tail.prepare(resume_step=resume_step)
    training_run_restart_at(job=job, step=resume_step or 0)
    # The file is the record: the kept lines are stored again (upserts) with the first save.
    state = _Progress()
    for record in kept:
        state.add(record)
    argv = trainer_argv(
        data=job.export.folder,
        pretrained=job.pretrained,
        output=str(output),
        method=job.method,
        mode=job.mode,
        options=job.options,
        resume=resume,
    )
    log = output / f"trainer-{job.attempts}.log"
    logger.info("training job %s attempt %s: %s", job.pk, job.attempts, " ".join(argv))
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            cwd=settings.BASE_DIR,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(settings.BASE_DIR)},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    try:
        return _supervise(job=job, process=process, tail=tail, state=state, log=log)
    except BaseException:
        _stop(process)  # never leave a trainer running without its supervisor
        raise


def _supervise(
    *,
    job: TrainingJob,
    process: subprocess.Popen,
    tail: MetricsTail,
    state: _Progress,
    log: Path,
) -> str:
    every = settings.PICKWISE_TRAINING_PROGRESS_SECONDS
    last_save = time.monotonic()
    while True:
        returncode = process.poll()
        for record in tail.read():
            state.add(record)
        if returncode is not None:
            break
        if state.urgent or time.monotonic() - last_save >= every:
            ack = training_progress_save(job=job, progress=state.take())
            last_save = time.monotonic()
            if not ack.held:
                logger.warning("training job %s was taken back; stopping its trainer", job.pk)
                _stop(process)
                return "lost"
            if ack.cancel:
                _stop(process)
                for record in tail.read():
                    state.add(record)
                training_progress_save(job=job, progress=state.take())
                training_run_end(job=job, status=TrainingJob.Status.CANCELLED, error=CANCELLED)
                return TrainingJob.Status.CANCELLED
        time.sleep(POLL_SECONDS)
    if not training_progress_save(job=job, progress=state.take()).held:
        return "lost"
    if returncode == 0 and state.done:
        status, error = TrainingJob.Status.DONE, ""
    else:
        status = TrainingJob.Status.FAILED
        error = failure_message(returncode=returncode, log=log)
    if not training_run_end(job=job, status=status, error=error):
        return "lost"
    logger.info("training job %s ended: %s", job.pk, status)
    return status
