"""Celery tasks for exports: thin wrappers around the services, on the default queue.

A build whose worker died is reclaimed by the beat sweep of stale heartbeats and, at once,
when the worker starts again (worker_ready): re-queued, or failed after too many attempts.
"""

from celery import shared_task
from celery.signals import worker_ready

from exports.models import Export
from exports.services import export_build, exports_recover
from pickwise.errors import ApplicationError
from pickwise.worker_recovery import recover_on_worker_start

EXPORT_QUEUE = "default"


@shared_task(bind=True, name="exports.build", ignore_result=True)
def export_build_task(self, export_id: int) -> None:
    export = Export.objects.filter(pk=export_id, status=Export.Status.PENDING).first()
    if export is None:
        return  # built already, or being built by another worker
    try:
        export_build(export=export, worker=self.request.hostname or "")
    except ApplicationError as error:
        if error.code != "not_pending":  # another worker claimed it in between: its job now
            raise


@shared_task(name="exports.recover_stalled", ignore_result=True)
def exports_recover_task() -> dict:
    return exports_recover()


@worker_ready.connect
def _recover_after_restart(sender=None, **kwargs) -> None:
    """A default-queue worker that starts builds nothing: reclaim what its previous life
    was building, and re-send pending exports whose message it may have taken along."""
    recover_on_worker_start(
        sender=sender,
        label="exports",
        queue=EXPORT_QUEUE,
        recover=lambda hostname: exports_recover(worker=hostname, resend_pending=True),
    )
