"""Starting, cancelling and recovering training jobs (the web side; no torch here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from exports.models import Export
from pickwise.enqueue import enqueue_on_commit
from pickwise.errors import ApplicationError
from pickwise.jobs import RELEASED, jobs_reclaim
from pickwise.model_folders import ERROR_MODEL_FOLDER_UNAVAILABLE, model_folder_error
from training.export_files import ranked_split_counts, split_counts
from training.models import TrainingJob
from training.options import METHODS, MODES, max_steps_of, options_clean
from webhooks.events import training_job_announce

ERROR_EXPORT_NOT_FINISHED = "Export {id} is {status}; train on a finished export."
ERROR_EXPORT_FORMAT = "Export {id} is in the {format} format; {method} trains on a {needed} export."
ERROR_EXPORT_FOLDER = "The files of export {id} are missing on the server; export again."
ERROR_NO_PAIRS = (
    "Export {id} has no preference pairs to train on: its train split has {rows} rows, "
    "{ties} of them ties (label_0 == 0.5), which DPO drops."
)
ERROR_NO_RANKINGS = (
    "Export {id} has no rankings to train on: its train split has {rows} rows, {ties} of them "
    "ranking every image equal, which RankDPO drops."
)
ERROR_NOT_A_PIPELINE = "{path} is not a diffusers pipeline folder (no model_index.json)."
ERROR_BAD_METHOD = "method must be one of {choices}, not {value!r}."
ERROR_BAD_MODE = "mode must be one of {choices}, not {value!r}."
ERROR_INVALID = "Invalid training job: {problems}"
ERROR_JOB_FINISHED = "Training job {id} has finished already ({status})."
CANCELLED = "Cancelled."
DIED_TOO_OFTEN = "Its worker stopped {attempts} times while running it; giving up."


def _check_export(export: Export, *, method: str) -> None:
    if export.status != Export.Status.FINISHED:
        raise ApplicationError(
            ERROR_EXPORT_NOT_FINISHED.format(id=export.pk, status=export.status),
            code="export_not_finished",
        )
    ranked = method == TrainingJob.Method.RANKDPO
    needed = Export.Format.RANKED if ranked else Export.Format.PICKAPIC
    if export.format != needed:
        raise ApplicationError(
            ERROR_EXPORT_FORMAT.format(
                id=export.pk, format=export.format, method=method, needed=needed
            ),
            code="export_format",
        )
    if not export.folder or not (Path(export.folder) / "data").is_dir():
        raise ApplicationError(
            ERROR_EXPORT_FOLDER.format(id=export.pk),
            code="export_missing",
        )
    if ranked:
        counts = ranked_split_counts(folder=export.folder, split="train")
        if counts.pairs <= 0:
            raise ApplicationError(
                ERROR_NO_RANKINGS.format(id=export.pk, rows=counts.rows, ties=counts.ties),
                code="no_pairs",
            )
        return
    counts = split_counts(folder=export.folder, split="train")
    if counts.pairs <= 0:
        raise ApplicationError(
            ERROR_NO_PAIRS.format(id=export.pk, rows=counts.rows, ties=counts.ties),
            code="no_pairs",
        )


def _check_folder(path: str, *, field: str) -> Path:
    """The resolved folder, if it is an existing one inside the model roots (one message
    for missing and forbidden alike: see pickwise.model_folders)."""
    if (problem := model_folder_error(path, field=field)) or not Path(path).expanduser().is_dir():
        problem = problem or ERROR_MODEL_FOLDER_UNAVAILABLE.format(field=field)
        raise ApplicationError(problem, code="model_unavailable")
    return Path(path).expanduser().resolve()


def _check_model(pretrained: str) -> str:
    path = _check_folder(pretrained, field="pretrained")
    if not (path / "model_index.json").is_file():
        raise ApplicationError(ERROR_NOT_A_PIPELINE.format(path=pretrained), code="model_invalid")
    return str(path)


def output_dir_for(*, job: TrainingJob) -> Path:
    return Path(settings.TRAINING_ROOT) / f"job-{job.pk}"


@transaction.atomic
def training_job_create(
    *,
    export: Export,
    pretrained: str,
    method: str = "dpo",
    mode: str = "lora",
    options: dict[str, Any] | None = None,
    name: str = "",
    created_by: AbstractBaseUser | None = None,
) -> TrainingJob:
    """Check everything the trainer would refuse before loading a model, then record the job.

    Nothing is enqueued here (see training_job_start).
    """
    if method not in METHODS:
        raise ApplicationError(
            ERROR_BAD_METHOD.format(choices=METHODS, value=method), code="invalid"
        )
    if mode not in MODES:
        raise ApplicationError(ERROR_BAD_MODE.format(choices=MODES, value=mode), code="invalid")
    cleaned, problems = options_clean(mode=mode, method=method, options=dict(options or {}))
    if problems:
        raise ApplicationError(
            ERROR_INVALID.format(problems=" ".join(problems)),
            code="invalid_options",
            extra={"problems": problems},
        )
    if cleaned.get("reference_model") is not None:
        reference = _check_folder(cleaned["reference_model"], field="reference_model")
        cleaned["reference_model"] = str(reference)
    pretrained = _check_model(pretrained)
    _check_export(export, method=method)
    job = TrainingJob(
        export=export,
        name=name,
        pretrained=pretrained,
        method=method,
        mode=mode,
        options=cleaned,
        max_steps=max_steps_of(cleaned),
        created_by=created_by,
    )
    job.full_clean(exclude=["output_dir"])
    job.save()
    job.output_dir = str(output_dir_for(job=job))
    job.save(update_fields=["output_dir"])
    return job


def training_job_enqueue(*, job_id: int) -> None:
    """Send the job to the train queue once the current transaction (if any) commits."""
    from training.tasks import training_job_task

    enqueue_on_commit(training_job_task, job_id)


def training_job_start(**fields: Any) -> TrainingJob:
    """Create a job (training_job_create's arguments) and queue it once committed."""
    with transaction.atomic():
        job = training_job_create(**fields)
        # On commit: the worker must find the row when the message arrives.
        training_job_enqueue(job_id=job.pk)
    return job


@transaction.atomic
def training_job_cancel(*, job: TrainingJob) -> TrainingJob:
    """A queued job is cancelled at once; a running one is flagged and its runner stops the
    trainer (it polls the flag) and marks it cancelled."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in TrainingJob.ACTIVE:
        raise ApplicationError(
            ERROR_JOB_FINISHED.format(id=job.pk, status=job.status),
            code="job_finished",
            status=409,
        )
    job.cancel_requested = True
    fields = ["cancel_requested"]
    if job.status == TrainingJob.Status.QUEUED:
        job.status = TrainingJob.Status.CANCELLED
        job.error = CANCELLED
        job.finished_at = timezone.now()
        fields += ["status", "error", "finished_at"]
    job.save(update_fields=fields)
    return job


def training_jobs_recover(*, worker: str | None = None, resend_queued: bool = False) -> dict:
    """Put back in the queue the running jobs whose worker is gone (pickwise.jobs.jobs_reclaim):
    those held by `worker` (which has just started, so holds nothing) and those with no
    heartbeat for PICKWISE_TRAINING_HEARTBEAT_TIMEOUT seconds.

    Each is re-queued with a conditional update on its claim token, so a runner that is in fact
    alive loses its claim and stops. A job whose worker died PICKWISE_TRAINING_MAX_ATTEMPTS
    times fails; one whose cancel was asked is cancelled. resend_queued also re-sends queued
    jobs (a message the dead worker had read may be gone; a duplicate is harmless, claims are
    conditional).
    """

    def cancel(held, job: TrainingJob) -> bool | None:
        if not job.cancel_requested:
            return None
        return bool(
            held.update(
                status=TrainingJob.Status.CANCELLED,
                error=CANCELLED,
                finished_at=timezone.now(),
                **RELEASED,
            )
        )

    def fail(held, job: TrainingJob) -> bool:
        gave_up = held.update(
            status=TrainingJob.Status.FAILED,
            error=DIED_TOO_OFTEN.format(attempts=job.attempts),
            finished_at=timezone.now(),
            **RELEASED,
        )
        if gave_up:
            job.refresh_from_db()
            training_job_announce(job=job)
        return bool(gave_up)

    reclaimed = jobs_reclaim(
        jobs=TrainingJob.objects.all(),
        timeout=settings.PICKWISE_TRAINING_HEARTBEAT_TIMEOUT,
        max_attempts=settings.PICKWISE_TRAINING_MAX_ATTEMPTS,
        worker=worker,
        settle=cancel,
        fail=fail,
        requeue=lambda held, job: bool(held.update(status=TrainingJob.Status.QUEUED, **RELEASED)),
    )
    requeued, failed, cancelled = (
        reclaimed.requeued,
        len(reclaimed.failed),
        len(reclaimed.settled),
    )
    if resend_queued:
        queued = TrainingJob.objects.filter(status=TrainingJob.Status.QUEUED)
        requeued = sorted(set(requeued) | set(queued.values_list("pk", flat=True)))
    for job_id in requeued:
        training_job_enqueue(job_id=job_id)
    return {"requeued": len(requeued), "failed": failed, "cancelled": cancelled}
