"""A real default-queue worker that starts again after dying mid-build reclaims its export,
removes the partial folder and builds it through the broker.

The worker helper is the generation tests' one (same broker and database rules).
"""

import socket
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from exports.models import Export
from exports.services import export_build, export_create
from tests.generation.test_worker import FINISH_SECONDS, Worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class WorkerDied(BaseException):
    """Stands for the killed worker process: nothing in the build catches it."""


@pytest.fixture
def worker(tmp_path):
    worker = Worker(tmp_path, queue="default")
    worker.env |= {"EXPORT_ROOT": str(django_settings.EXPORT_ROOT)}
    yield worker
    worker.stop()


def test_a_worker_restarted_after_dying_mid_build_rebuilds_the_export(small_campaign, worker):
    hostname = worker.name.replace("%h", socket.gethostname())  # as celery expands it
    export = export_create(
        requested_by=None, campaign=small_campaign, format="pickapic", enqueue=False
    )

    def die_after_counting(done, total):
        if done >= total // 2:
            raise WorkerDied

    # Its previous life: it claimed the build, wrote part of it, and was killed (the heartbeat
    # is recent, so only the restart tells that the build is dead).
    with pytest.raises(WorkerDied):
        export_build(export=export, worker=hostname, progress=die_after_counting)
    export.refresh_from_db()
    partial = Path(export.work_folder)
    assert export.status == Export.Status.RUNNING and partial.is_dir()
    assert export.heartbeat_at > timezone.now() - timedelta(minutes=1)

    worker.start()
    worker.wait_for(
        lambda: Export.objects.get(pk=export.pk).status == Export.Status.FINISHED,
        FINISH_SECONDS,
        "rebuild the export",
    )
    export.refresh_from_db()
    assert export.attempts == 2
    assert not partial.exists()
    assert Path(export.folder).name == f"{export.pk}-v1"
    assert sorted(p.name for p in Path(django_settings.EXPORT_ROOT).iterdir()) == [
        f"{export.pk}-v1"
    ]
