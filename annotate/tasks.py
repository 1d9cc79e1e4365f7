"""Annotation tasks on the default queue: periodic chores and image imports.

annotate.run_image_import acks late: a worker that dies holding it does not lose it on
brokers that redeliver; on those that do not, and before Redis's visibility timeout, the
restarted worker (worker_ready) and the beat sweep queue its job again.
"""

from celery import shared_task
from celery.signals import worker_ready

from annotate.quality import tasks as quality_tasks  # noqa: F401  (autodiscovery finds only this module)
from annotate.services.assignments import assignments_expire_overdue
from annotate.services.image_imports.jobs import image_import_run, image_imports_recover
from pickwise.worker_recovery import recover_on_worker_start

DEFAULT_QUEUE = "default"


@shared_task(name="annotate.sweep_expired_assignments", ignore_result=True)
def sweep_expired_assignments_task() -> int:
    """Expire overdue leases in chunks until none are left; returns how many expired."""
    total = 0
    while expired := assignments_expire_overdue(limit=500):
        total += expired
    return total


@shared_task(bind=True, name="annotate.run_image_import", acks_late=True, ignore_result=True)
def image_import_task(self, job_id: int) -> str:
    return image_import_run(job_id=job_id, worker=self.request.hostname or "")


@shared_task(name="annotate.recover_image_imports", ignore_result=True)
def image_imports_recover_task() -> dict:
    return image_imports_recover()


@worker_ready.connect
def _recover_imports_after_restart(sender=None, **kwargs) -> None:
    """A default worker that starts runs nothing: re-queue what its previous life was running."""
    recover_on_worker_start(
        sender=sender,
        label="image import",
        queue=DEFAULT_QUEUE,
        recover=lambda hostname: image_imports_recover(worker=hostname, resend_pending=True),
    )
