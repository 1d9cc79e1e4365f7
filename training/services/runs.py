"""A run of a job on a train worker: claim it, report progress, record how it ended.

Every write after the claim is conditional on the claim token: when recovery has taken the job
back (the heartbeat went stale) the old runner's writes match nothing, and it stops.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from pickwise.jobs import job_claim, job_held
from training.models import TrainingJob, TrainingMetric
from webhooks.events import training_job_announce

Status = TrainingJob.Status


@dataclass(frozen=True)
class Progress:
    step: int
    latest: dict
    warnings: list
    rows: list[tuple[int, dict]]  # (step, values) not stored yet


@dataclass(frozen=True)
class Ack:
    held: bool  # False: the claim is gone, stop
    cancel: bool  # True: someone asked to cancel


def training_job_claim(*, job_id: int, worker: str) -> TrainingJob | None:
    """Take a queued job for this worker, or None when it is not queued (another worker has
    it, it finished, or it was cancelled): a duplicate message does nothing."""
    _token, claimed = job_claim(
        claimable=TrainingJob.objects.filter(
            pk=job_id, status=Status.QUEUED, cancel_requested=False
        ),
        worker=worker,
        error="",
    )
    if not claimed:
        return None
    TrainingJob.objects.filter(pk=job_id, started_at__isnull=True).update(
        started_at=F("heartbeat_at")
    )
    return TrainingJob.objects.select_related("export").get(pk=job_id)


@transaction.atomic
def training_run_restart_at(*, job: TrainingJob, step: int) -> None:
    """A (re)started run continues from `step`: later metric rows go (the trainer writes those
    steps again), and the job shows that step until the first progress save."""
    TrainingMetric.objects.filter(job=job, step__gt=step).delete()
    TrainingJob.objects.filter(pk=job.pk, claim_token=job.claim_token).update(step=step)


@transaction.atomic
def training_progress_save(*, job: TrainingJob, progress: Progress) -> Ack:
    """Store new metric rows, the current step and a heartbeat; read the cancel flag."""
    held = job_held(job=job).update(
        step=min(progress.step, job.max_steps),
        latest_metrics=progress.latest,
        warnings=progress.warnings,
        heartbeat_at=timezone.now(),
    )
    if not held:
        return Ack(held=False, cancel=False)
    if progress.rows:
        TrainingMetric.objects.bulk_create(
            [TrainingMetric(job=job, step=step, values=values) for step, values in progress.rows],
            update_conflicts=True,
            unique_fields=["job", "step"],
            update_fields=["values"],
        )
    cancel = TrainingJob.objects.filter(pk=job.pk).values_list("cancel_requested", flat=True)
    return Ack(held=True, cancel=bool(cancel.first()))


def training_run_end(*, job: TrainingJob, status: str, error: str = "") -> bool:
    """Record the end of the run; False if the claim was lost meanwhile (nothing written).
    A finished or failed run is announced to webhooks."""
    ended = job_held(job=job).update(
        status=status,
        error=error,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        claim_token="",
    )
    if ended and status in (Status.DONE, Status.FAILED):
        training_job_announce(job=TrainingJob.objects.select_related("export").get(pk=job.pk))
    return bool(ended)
