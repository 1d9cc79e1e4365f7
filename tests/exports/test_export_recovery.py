"""Builds whose worker died: reclaimed by exports_recover (beat, restarting worker), their
hidden folder removed, re-queued or failed; a build reclaimed while alive stops."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from exports.models import Export
from exports.services import WORKER_LOST, export_build, export_create, exports_recover

pytestmark = pytest.mark.django_db


class WorkerDied(BaseException):
    """Stands for a killed process: nothing in the build catches it."""


def die_after_counting(done: int, total: int) -> None:
    if done >= total // 2:
        raise WorkerDied


def died_mid_build(campaign, *, worker: str = "celery@gone", silent_for: int | None = None):
    """An export whose build stopped after its counting pass, leaving its row running and its
    hidden folder half written, silent for `silent_for` seconds (past the timeout if None)."""
    export = export_create(requested_by=None, campaign=campaign, format="pickapic", enqueue=False)
    with pytest.raises(WorkerDied):
        export_build(export=export, worker=worker, progress=die_after_counting)
    if silent_for is None:
        silent_for = django_settings.PICKWISE_EXPORT_HEARTBEAT_TIMEOUT + 1
    Export.objects.filter(pk=export.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=silent_for)
    )
    export.refresh_from_db()
    assert export.status == Export.Status.RUNNING
    assert Path(export.work_folder).is_dir()
    return export


def visible_folders() -> list[str]:
    root = Path(django_settings.EXPORT_ROOT)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_silent_build_is_requeued_its_partial_folder_removed_and_then_builds(
    small_campaign, django_capture_on_commit_callbacks
):
    export = died_mid_build(small_campaign)
    work = Path(export.work_folder)

    with django_capture_on_commit_callbacks() as callbacks:
        assert exports_recover() == {"requeued": 1, "failed": 0}
    assert len(callbacks) == 1  # the build task, sent once committed
    export.refresh_from_db()
    assert export.status == Export.Status.PENDING
    assert (export.worker, export.claim_token, export.work_folder) == ("", "", "")
    assert not work.exists()
    assert visible_folders() == []

    export = export_build(export=export, worker="celery@other")
    assert export.status == Export.Status.FINISHED, export.error
    assert export.attempts == 2
    assert visible_folders() == [f"{export.pk}-v1"]


def test_a_build_with_a_recent_heartbeat_is_left_alone(small_campaign):
    export = died_mid_build(small_campaign, silent_for=5)
    assert exports_recover() == {"requeued": 0, "failed": 0}
    export.refresh_from_db()
    assert export.status == Export.Status.RUNNING
    assert Path(export.work_folder).is_dir()


def test_a_restarted_worker_reclaims_its_build_without_waiting_for_the_timeout(
    small_campaign, django_capture_on_commit_callbacks
):
    export = died_mid_build(small_campaign, worker="celery@node-1", silent_for=5)
    assert exports_recover(worker="celery@node-2") == {"requeued": 0, "failed": 0}
    with django_capture_on_commit_callbacks() as callbacks:
        assert exports_recover(worker="celery@node-1") == {"requeued": 1, "failed": 0}
    assert len(callbacks) == 1
    export.refresh_from_db()
    assert export.status == Export.Status.PENDING
    assert visible_folders() == []


def test_a_build_that_died_too_often_fails_with_the_reason(small_campaign, settings):
    settings.PICKWISE_EXPORT_MAX_ATTEMPTS = 1
    export = died_mid_build(small_campaign)
    assert exports_recover() == {"requeued": 0, "failed": 1}
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert export.error == WORKER_LOST.format(
        attempts=1, timeout=settings.PICKWISE_EXPORT_HEARTBEAT_TIMEOUT
    )
    assert export.finished_at is not None
    assert visible_folders() == []


def test_a_command_build_that_died_fails_rather_than_going_to_the_queue(
    small_campaign, django_capture_on_commit_callbacks
):
    export = died_mid_build(small_campaign, worker="")
    with django_capture_on_commit_callbacks() as callbacks:
        assert exports_recover() == {"requeued": 0, "failed": 1}
    assert callbacks == []
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert visible_folders() == []


def test_finished_failed_and_pending_exports_are_not_reclaimed(small_campaign):
    finished = export_create(
        requested_by=None, campaign=small_campaign, format="jsonl", enqueue=False
    )
    finished = export_build(export=finished)
    pending = export_create(
        requested_by=None, campaign=small_campaign, format="jsonl", enqueue=False
    )
    old = timezone.now() - timedelta(days=1)
    Export.objects.update(heartbeat_at=old)
    assert exports_recover() == {"requeued": 0, "failed": 0}
    assert Export.objects.get(pk=finished.pk).status == Export.Status.FINISHED
    assert Export.objects.get(pk=pending.pk).status == Export.Status.PENDING


def test_pending_exports_are_sent_again_when_a_worker_starts(
    small_campaign, django_capture_on_commit_callbacks
):
    export_create(requested_by=None, campaign=small_campaign, format="jsonl", enqueue=False)
    with django_capture_on_commit_callbacks() as callbacks:
        assert exports_recover(worker="celery@node-1", resend_pending=True) == {
            "requeued": 1,
            "failed": 0,
        }
    assert len(callbacks) == 1


def test_a_build_reclaimed_while_alive_stops_without_overwriting_the_row(small_campaign):
    export = export_create(
        requested_by=None, campaign=small_campaign, format="pickapic", enqueue=False
    )

    def reclaimed_after_counting(done, total):
        # The worker looked dead for a while (a long pause), and the sweep took the build.
        if done >= total // 2 and Export.objects.get(pk=export.pk).status == "running":
            Export.objects.filter(pk=export.pk).update(
                heartbeat_at=timezone.now() - timedelta(days=1)
            )
            assert exports_recover()["requeued"] == 1

    export = export_build(export=export, worker="celery@slow", progress=reclaimed_after_counting)
    assert export.status == Export.Status.PENDING
    assert export.error == ""
    assert visible_folders() == []
