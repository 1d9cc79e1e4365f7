"""Image imports on a real `celery worker -Q default` process against the test database:
uploaded through the API, run by the worker, followed through the API; and a job left
running by a killed worker finished when that worker starts again.

The worker helper is the generation tests' one (same broker and database rules).
"""

import socket
import time

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annotate.models import Image, ImageImport, Prompt
from annotate.services.image_imports.jobs import image_import_create
from tests.factories import (
    CampaignFactory,
    manifest_csv,
    manifest_zip,
    user_as,
    zip_bytes,
)
from tests.generation.test_worker import FINISH_SECONDS, Worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    worker = Worker(tmp_path, queue="default")
    worker.env |= {"IMPORT_ROOT": str(django_settings.IMPORT_ROOT)}
    yield worker
    worker.stop()


def ended(url: str, client) -> dict:
    body = client.get(url).json()
    return body if body["status"] in ("succeeded", "failed") else {}


def wait_until_ended(worker, client, url: str) -> dict:
    worker.wait_for(lambda: ended(url, client), FINISH_SECONDS, f"finish {url}")
    return ended(url, client)


def upload(client, campaign, data: bytes):
    file = SimpleUploadedFile("upload.zip", data, content_type="application/zip")
    response = client.post(
        f"/api/campaigns/{campaign.pk}/images/", {"file": file}, format="multipart"
    )
    assert response.status_code == 202, response.json()
    return response.json()["url"]


def test_uploads_are_imported_by_the_worker_and_followed_through_the_api(worker, api_client):
    campaign = CampaignFactory()
    api_client.force_authenticate(user_as(campaign, "admin"))
    worker.start()

    good = upload(api_client, campaign, manifest_zip(prompts=3))
    rows = [{"prompt": "p", "file": "a.png", "model_name": "m"}] * 2 + [
        {"prompt": "q", "file": "missing.png", "model_name": "m"}
    ]
    bad = upload(api_client, campaign, zip_bytes({"manifest.csv": manifest_csv(rows)}))

    job = wait_until_ended(worker, api_client, good)
    assert job["status"] == "succeeded", job
    assert (job["counts"]["images_created"], job["counts"]["comparisons_created"]) == (6, 3)
    assert job["attempts"] == 1 and job["started_at"] and job["finished_at"]
    failed = wait_until_ended(worker, api_client, bad)
    assert failed["status"] == "failed" and failed["error_code"] == "invalid_rows"
    assert [e["line"] for e in failed["errors"]] == [2, 3, 4]
    assert Prompt.objects.count() == 3 and not Prompt.objects.filter(text__in=["p", "q"]).exists()
    assert Image.objects.count() == 6
    assert not any(django_settings.IMPORT_ROOT.iterdir())  # both uploads removed


def test_a_job_left_running_by_a_killed_worker_is_finished_when_it_starts_again(worker):
    campaign = CampaignFactory()
    job = image_import_create(
        campaign=campaign,
        upload=SimpleUploadedFile("a.zip", manifest_zip(prompts=2)).file,
        file_name="a.zip",
    )
    # As the killed worker left it: claimed, running, its message gone with it.
    node = worker.name.replace("%h", socket.gethostname())
    ImageImport.objects.filter(pk=job.pk).update(
        status="running",
        worker=node,
        claim_token="dead",
        attempts=1,
        heartbeat_at=timezone.now(),
    )
    time.sleep(0.5)  # let the message sent on create be older than the restart
    worker.start()
    worker.wait_for(
        lambda: ImageImport.objects.get(pk=job.pk).status == "succeeded",
        FINISH_SECONDS,
        "finish the recovered import",
    )
    job.refresh_from_db()
    assert job.attempts == 2 and job.counts["images_created"] == 4
    assert "image import recovery on start of" in worker.log.read_text()
    assert Image.objects.filter(prompt__campaign=campaign).count() == 4
