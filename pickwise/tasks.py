"""Project-wide tasks on the default queue: the outbox sweep (pickwise.enqueue)."""

from celery import shared_task
from celery.signals import worker_ready

from pickwise.enqueue import outbox_resend
from pickwise.worker_recovery import recover_on_worker_start


@shared_task(name="pickwise.outbox_resend", ignore_result=True)
def outbox_resend_task() -> dict:
    return outbox_resend()


@worker_ready.connect
def _resend_after_restart(sender=None, **kwargs) -> None:
    """A default worker that starts sends what the broker could not take meanwhile."""
    recover_on_worker_start(
        sender=sender,
        label="outbox",
        queue="default",
        recover=lambda hostname: outbox_resend(older_than=0),
    )
