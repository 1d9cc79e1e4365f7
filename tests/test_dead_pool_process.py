"""A pool process killed as the OOM killer does (SIGKILL) is noticed within the heartbeat
timeout, and its job is queued again and finished by the worker's next pool process.

The worker is a real `celery worker --pool=prefork` process on the test database and broker
(tests/generation/test_worker.py); its heartbeat and timeout are shortened to seconds.
"""

import io
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from annotate.models import ImageImport
from annotate.services.image_imports.jobs import image_import_create, image_imports_recover
from exports.models import Export
from exports.services import export_create, exports_recover
from pickwise.heartbeat import heartbeat
from tests.exports.helpers import bulk_judge, prefer_models
from tests.factories import (
    CampaignFactory,
    UserFactory,
    annotator,
    campaign_with_comparisons,
    manifest_zip,
)
from tests.generation.test_worker import FINISH_SECONDS, Worker

HEARTBEAT_SECONDS = 0.5
TIMEOUT_SECONDS = 3


def pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        pytest.skip("needs Linux's /proc to find the worker's pool process")
    return [int(child) for child in children.read_text().split()]


@pytest.fixture
def prefork_worker(tmp_path, settings):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.PICKWISE_IMPORT_HEARTBEAT_TIMEOUT = TIMEOUT_SECONDS
    settings.PICKWISE_EXPORT_HEARTBEAT_TIMEOUT = TIMEOUT_SECONDS
    worker = Worker(tmp_path, queue="default", pool="prefork")
    worker.env |= {
        "IMPORT_ROOT": str(django_settings.IMPORT_ROOT),
        "EXPORT_ROOT": str(settings.EXPORT_ROOT),
        "PICKWISE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "PICKWISE_IMPORT_HEARTBEAT_TIMEOUT": str(TIMEOUT_SECONDS),
        "PICKWISE_EXPORT_HEARTBEAT_TIMEOUT": str(TIMEOUT_SECONDS),
    }
    yield worker
    worker.stop()


def kill_the_pool_process_once_running(worker, is_running) -> float:
    """SIGKILL the worker's pool process as soon as the job runs; returns when it was."""
    worker.wait_for(is_running, FINISH_SECONDS, "start the job")
    (child,) = pool_children(worker.process.pid)
    os.kill(child, signal.SIGKILL)
    return time.monotonic()


def requeued_by_the_sweep(sweep, killed_at: float) -> float:
    """Call the sweep until it takes the job back; returns the seconds since the kill."""
    while sweep() == {"requeued": 0, "failed": 0}:
        assert time.monotonic() - killed_at < TIMEOUT_SECONDS + 5, "the sweep never took it back"
        time.sleep(0.2)
    waited = time.monotonic() - killed_at
    assert waited >= TIMEOUT_SECONDS - 1  # a job is taken only once silent for the timeout
    return waited


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_import_whose_pool_process_was_killed_is_queued_again_and_finished(prefork_worker):
    worker = prefork_worker
    worker.start()
    campaign = CampaignFactory()
    job = image_import_create(
        campaign=campaign, upload=io.BytesIO(manifest_zip(prompts=2000)), file_name="big.zip"
    )

    def running() -> bool:
        return ImageImport.objects.get(pk=job.pk).status == ImageImport.Status.RUNNING

    killed_at = kill_the_pool_process_once_running(worker, running)
    job.refresh_from_db()
    assert job.status == "running", "the import ended before the kill; the test proves nothing"
    # Nothing beats for the dead process: the sweep takes the job back within the timeout.
    requeued_by_the_sweep(image_imports_recover, killed_at)

    def ended() -> bool:
        return ImageImport.objects.get(pk=job.pk).status in ("succeeded", "failed")

    worker.wait_for(ended, FINISH_SECONDS, "finish the import again")
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2), job.error
    assert job.counts["images_created"] == 4000


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_export_whose_pool_process_was_killed_is_queued_again_and_built(prefork_worker):
    worker = prefork_worker
    campaign = campaign_with_comparisons(prompts=300, models=("model-a", "model-b"))
    bulk_judge(
        campaign, [annotator(campaign), annotator(campaign)], prefer_models("model-a", "model-b")
    )
    worker.start()
    export = export_create(campaign=campaign, format="pickapic", requested_by=UserFactory())

    def running() -> bool:
        return Export.objects.get(pk=export.pk).status == Export.Status.RUNNING

    killed_at = kill_the_pool_process_once_running(worker, running)
    export.refresh_from_db()
    assert export.status == "running", "the build ended before the kill; the test proves nothing"
    requeued_by_the_sweep(exports_recover, killed_at)

    def ended() -> bool:
        return Export.objects.get(pk=export.pk).status in ("finished", "failed")

    worker.wait_for(ended, FINISH_SECONDS, "build the export again")
    export.refresh_from_db()
    assert (export.status, export.attempts) == ("finished", 2), export.error
    assert export.manifest["counts"]["judgments_included"] == 600


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_from_a_thread_while_the_job_is_busy(settings):
    settings.PICKWISE_HEARTBEAT_SECONDS = 0.2
    export = Export.objects.create(
        campaign=CampaignFactory(), version=1, status=Export.Status.RUNNING, claim_token="t"
    )
    held = Export.objects.filter(pk=export.pk, claim_token="t")
    beats = []
    with heartbeat(held):
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # one long step that writes nothing
            beats.append(Export.objects.get(pk=export.pk).heartbeat_at)
            time.sleep(0.1)
    assert len({beat for beat in beats if beat is not None}) >= 3
    assert timezone.now() - Export.objects.get(pk=export.pk).heartbeat_at < timezone.timedelta(
        seconds=1
    )


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stops_when_the_job_is_taken_away(settings):
    settings.PICKWISE_HEARTBEAT_SECONDS = 0.1
    export = Export.objects.create(
        campaign=CampaignFactory(), version=1, status=Export.Status.RUNNING, claim_token="t"
    )
    held = Export.objects.filter(pk=export.pk, claim_token="t")
    with heartbeat(held):
        held.update(claim_token="someone-else", heartbeat_at=None)
        time.sleep(0.5)
        beating = [t for t in threading.enumerate() if t.name == "heartbeat"]
    assert Export.objects.get(pk=export.pk).heartbeat_at is None
    assert not beating


def test_dead_jobs_are_noticed_within_a_couple_of_minutes_by_default():
    from datetime import timedelta

    import pickwise.settings as defaults

    assert defaults.PICKWISE_IMPORT_HEARTBEAT_TIMEOUT <= 120
    assert defaults.PICKWISE_EXPORT_HEARTBEAT_TIMEOUT <= 120
    assert 2 * defaults.PICKWISE_HEARTBEAT_SECONDS <= 120
    schedule = defaults.CELERY_BEAT_SCHEDULE
    for sweep in ("annotate.recover_image_imports", "exports.recover_stalled"):
        assert schedule[sweep]["schedule"] <= timedelta(minutes=1), sweep
