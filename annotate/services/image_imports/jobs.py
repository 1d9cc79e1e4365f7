"""Image imports as background jobs.

The upload request runs only the cheap checks (images_import_precheck), keeps the file
under settings.IMPORT_ROOT (never under MEDIA_ROOT, which is served without
authentication) and records a pending ImageImport. A worker on the default queue claims
the job with a conditional update and runs the same two phases as the command
(images_import_check, then images_import_apply); the job's success is written in the
import's own transaction, so a job says succeeded exactly when its rows are committed.
The kept upload is removed when the job ends either way.

A worker that dies mid-job leaves it running: its next start (worker_ready) and a beat
sweep of stale heartbeats queue it again (the import is all-or-nothing, so a rerun starts
clean and rewrites nothing), or fail it after PICKWISE_IMPORT_MAX_ATTEMPTS tries.
"""

import hashlib
import logging
import uuid
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotate.models import Campaign, ImageImport
from annotate.services.image_imports import (
    ImageImportResult,
    images_import_apply,
    images_import_check,
    images_import_precheck,
)
from annotate.services.image_imports.plan import CHECKING, WRITING, Step
from pickwise.enqueue import enqueue_on_commit
from pickwise.errors import ApplicationError
from pickwise.heartbeat import heartbeat
from pickwise.jobs import RELEASED, job_claim, jobs_reclaim

logger = logging.getLogger(__name__)

DUPLICATE_UPLOAD = "This file is being imported into the campaign already (import {id})."
UPLOAD_MISSING = "The uploaded file is gone from the server; nothing was imported. Upload it again."
DIED_TOO_OFTEN = "Its worker stopped {attempts} times while running it; nothing was imported."
UNEXPECTED_ERROR = "The import failed unexpectedly ({error}); nothing was imported."
LOST_CLAIM = "Another worker took the import over."
COPY_CHUNK = 1 << 20


def _kept_path(kind: str) -> Path:
    root = Path(settings.IMPORT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{uuid.uuid4().hex}.{kind}"


def _keep(upload: BinaryIO, path: Path) -> tuple[int, str]:
    """Copy the upload to `path`; returns its size and sha256."""
    digest = hashlib.sha256()
    size = 0
    upload.seek(0)
    with path.open("xb") as out:
        while chunk := upload.read(COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def _duplicate(campaign: Campaign, sha256: str) -> ApplicationError | None:
    active = ImageImport.objects.filter(
        campaign=campaign, sha256=sha256, status__in=ImageImport.ACTIVE
    ).first()
    if active is None:
        return None
    if not (active.upload_path and Path(active.upload_path).is_file()):
        # Its upload is gone, so it can never finish: fail it and take the new upload.
        held = ImageImport.objects.filter(
            pk=active.pk, status=active.status, claim_token=active.claim_token
        )
        _fail(held=held, job=active, message=UPLOAD_MISSING, code="upload_missing")
        return None
    return ApplicationError(
        DUPLICATE_UPLOAD.format(id=active.pk),
        code="duplicate",
        status=409,
        extra={"import": active.pk},
    )


def image_import_create(
    *,
    campaign: Campaign,
    upload: BinaryIO,
    file_name: str,
    with_labels: bool = False,
    build: bool = True,
    created_by: AbstractBaseUser | None = None,
) -> ImageImport:
    """Check what is cheap, keep the upload and queue the job once committed.

    Raises ApplicationError for a file that is not an import (type, zip central directory,
    parquet footer) and, with status 409, for the same file while its first import is
    still pending or running.
    """
    kind = images_import_precheck(campaign=campaign, source=upload, with_labels=with_labels)
    path = _kept_path(kind)
    try:
        size, sha256 = _keep(upload, path)
        with transaction.atomic():
            if error := _duplicate(campaign, sha256):
                raise error
            job = ImageImport(
                campaign=campaign,
                created_by=created_by,
                file_name=file_name[:255],
                upload_path=str(path),
                size=size,
                sha256=sha256,
                kind=kind,
                with_labels=with_labels,
                build=build,
            )
            job.full_clean()
            job.save()
            # On commit: the worker must find the row when the message arrives.
            image_import_enqueue(job_id=job.pk)
    except IntegrityError:
        # Two identical uploads at once: the database's constraint let one through.
        path.unlink(missing_ok=True)
        raise _duplicate(campaign, sha256) or ApplicationError(
            DUPLICATE_UPLOAD.format(id="?"), code="duplicate", status=409
        ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return job


def image_import_enqueue(*, job_id: int) -> None:
    """Send the job to the default queue once the current transaction (if any) commits."""
    from annotate.tasks import image_import_task

    enqueue_on_commit(image_import_task, job_id)


def image_import_run(*, job_id: int, worker: str = "") -> str:
    """Claim a pending job, import its upload and record the outcome; returns the status it
    left the job in, or "" when the job was not pending (done, or another worker's).

    Runs outside any transaction: the check phase's progress must be visible as it goes.
    """
    token, claimed = job_claim(
        claimable=ImageImport.objects.filter(pk=job_id, status=ImageImport.Status.PENDING),
        worker=worker,
        started_at=timezone.now(),
        phase=CHECKING,
        progress_done=0,
        progress_total=0,
    )
    if claimed != 1:
        return ""
    job = ImageImport.objects.select_related("campaign").get(pk=job_id)
    held = ImageImport.objects.filter(
        pk=job_id, status=ImageImport.Status.RUNNING, claim_token=token
    )

    def progress(step: Step) -> None:
        # Writing happens in one transaction: its steps would show only once it commits.
        if step.phase == CHECKING:
            held.update(
                progress_done=step.done, progress_total=step.total, heartbeat_at=timezone.now()
            )

    def succeed(result: ImageImportResult) -> None:
        # Inside the import's transaction: the job succeeds if and only if its rows commit.
        if not held.update(
            status=ImageImport.Status.SUCCEEDED,
            counts=result.as_dict(),
            phase="",
            progress_done=F("progress_total"),
            upload_path="",
            finished_at=timezone.now(),
        ):
            raise ApplicationError(LOST_CLAIM, code="lost_claim")

    try:
        with heartbeat(held), open(job.upload_path, "rb") as source:
            plan = images_import_check(
                campaign=job.campaign,
                source=source,
                with_labels=job.with_labels,
                progress=progress,
            )
            held.update(
                phase=WRITING,
                progress_done=0,
                progress_total=len(plan.items),
                heartbeat_at=timezone.now(),
            )
            images_import_apply(plan=plan, build=job.build, on_written=succeed)
    except ApplicationError as error:
        if error.code == "lost_claim":
            return ""
        errors = (error.extra or {}).get("errors", [])
        return _fail(held=held, job=job, message=error.message, code=error.code, errors=errors)
    except FileNotFoundError:
        return _fail(held=held, job=job, message=UPLOAD_MISSING, code="upload_missing")
    except Exception as error:
        logger.exception("image import %s failed", job_id)
        message = UNEXPECTED_ERROR.format(error=type(error).__name__)
        return _fail(held=held, job=job, message=message, code="unexpected")
    _remove_upload(job.upload_path)
    _announce(job_id)
    return ImageImport.Status.SUCCEEDED


def _fail(*, held, job: ImageImport, message: str, code: str, errors: list | None = None) -> str:
    if not held.update(
        status=ImageImport.Status.FAILED,
        error=message,
        error_code=code[:32],
        errors=errors or [],
        phase="",
        upload_path="",
        finished_at=timezone.now(),
    ):
        return ""  # recovered meanwhile: the job is someone else's now
    _remove_upload(job.upload_path)
    _announce(job.pk)
    return ImageImport.Status.FAILED


def _announce(job_id: int) -> None:
    from webhooks.events import image_import_announce

    image_import_announce(job=ImageImport.objects.select_related("campaign").get(pk=job_id))


def _remove_upload(path: str) -> None:
    if path:
        Path(path).unlink(missing_ok=True)


def image_imports_recover(*, worker: str | None = None, resend_pending: bool = False) -> dict:
    """Queue again the running jobs whose worker is gone (pickwise.jobs.jobs_reclaim): those
    held by `worker` (which has just started, so holds nothing) and those with no heartbeat
    for PICKWISE_IMPORT_HEARTBEAT_TIMEOUT seconds.

    Each is released with a conditional update on its claim token, so a worker that is in
    fact alive fails its final update and its transaction rolls back. A job whose worker
    died PICKWISE_IMPORT_MAX_ATTEMPTS times fails. resend_pending also re-sends pending jobs
    (a message the dead worker had read may be gone; a duplicate is harmless, claims are
    conditional).
    """

    def fail(held, job: ImageImport) -> bool:
        message = DIED_TOO_OFTEN.format(attempts=job.attempts)
        return bool(_fail(held=held, job=job, message=message, code="worker_lost"))

    def requeue(held, job: ImageImport) -> bool:
        return bool(
            held.update(status=ImageImport.Status.PENDING, progress_done=0, phase="", **RELEASED)
        )

    reclaimed = jobs_reclaim(
        jobs=ImageImport.objects.all(),
        timeout=settings.PICKWISE_IMPORT_HEARTBEAT_TIMEOUT,
        max_attempts=settings.PICKWISE_IMPORT_MAX_ATTEMPTS,
        worker=worker,
        requeue=requeue,
        fail=fail,
    )
    requeued, failed = reclaimed.requeued, len(reclaimed.failed)
    if resend_pending:
        pending = ImageImport.objects.filter(status=ImageImport.Status.PENDING)
        requeued = sorted(set(requeued) | set(pending.values_list("pk", flat=True)))
    for job_id in requeued:
        image_import_enqueue(job_id=job_id)
    return {"requeued": len(requeued), "failed": failed}
