"""Image import jobs at the service level: claiming, recovery after a lost worker, failures.

The API's side is in test_images_api.py, a real worker in test_image_import_worker.py.
"""

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotate.models import Image, ImageImport
from annotate.services.image_imports.jobs import (
    DIED_TOO_OFTEN,
    UPLOAD_MISSING,
    image_import_create,
    image_import_run,
    image_imports_recover,
)
from tests.factories import CampaignFactory, manifest_zip

pytestmark = pytest.mark.django_db


def _job(**fields) -> ImageImport:
    campaign = CampaignFactory()
    job = image_import_create(
        campaign=campaign, upload=io.BytesIO(manifest_zip(prompts=1)), file_name="a.zip"
    )
    ImageImport.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


def _left_running_by(worker: str, **fields) -> ImageImport:
    """What a worker killed mid-job leaves behind."""
    left = {"claim_token": "dead", "attempts": 1, "heartbeat_at": timezone.now()}
    return _job(status="running", worker=worker, **(left | fields))


def test_a_restarted_worker_queues_again_what_its_previous_life_was_running(
    django_capture_on_commit_callbacks,
):
    job = _left_running_by("w1@host")
    alive = _left_running_by("w2@host")
    with django_capture_on_commit_callbacks() as callbacks:
        assert image_imports_recover(worker="w1@host") == {"requeued": 1, "failed": 0}
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert (job.status, job.worker, job.claim_token) == ("pending", "", "")
    assert ImageImport.objects.get(pk=alive.pk).status == "running"  # another worker's
    assert image_import_run(job_id=job.pk, worker="w1@host") == "succeeded"
    job.refresh_from_db()
    assert (job.attempts, job.counts["images_created"]) == (2, 2)


def test_a_job_with_a_stale_heartbeat_is_queued_again(settings):
    stale = timezone.now() - timedelta(seconds=settings.PICKWISE_IMPORT_HEARTBEAT_TIMEOUT + 1)
    job = _left_running_by("w1@host", heartbeat_at=stale)
    fresh = _left_running_by("w2@host")
    assert image_imports_recover() == {"requeued": 1, "failed": 0}
    assert ImageImport.objects.get(pk=job.pk).status == "pending"
    assert ImageImport.objects.get(pk=fresh.pk).status == "running"


def test_a_job_whose_worker_died_too_often_fails_clearly_and_its_upload_is_removed(settings):
    job = _left_running_by("w1@host", attempts=settings.PICKWISE_IMPORT_MAX_ATTEMPTS)
    upload = Path(job.upload_path)
    assert upload.is_file()
    assert image_imports_recover(worker="w1@host") == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "worker_lost"
    assert job.error == DIED_TOO_OFTEN.format(attempts=settings.PICKWISE_IMPORT_MAX_ATTEMPTS)
    assert job.finished_at is not None and job.upload_path == ""
    assert not upload.exists() and not Image.objects.exists()


def test_a_worker_that_lost_its_claim_does_not_record_an_outcome():
    job = _left_running_by("w1@host")
    # The job is pending again and someone else's by the time a late delivery arrives.
    assert image_import_run(job_id=job.pk, worker="w2@host") == ""
    assert ImageImport.objects.get(pk=job.pk).worker == "w1@host"


def test_resending_pending_jobs_on_start_queues_each_once(django_capture_on_commit_callbacks):
    first, second = _job(), _job()
    with django_capture_on_commit_callbacks() as callbacks:
        assert image_imports_recover(worker="new@host", resend_pending=True)["requeued"] == 2
    assert len(callbacks) == 2
    assert {first.status, second.status} == {"pending"}


def test_an_upload_gone_from_the_server_fails_the_job_clearly():
    job = _job()
    Path(job.upload_path).unlink()
    assert image_import_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert (job.error_code, job.error) == ("upload_missing", UPLOAD_MISSING)
    assert not Image.objects.exists()
