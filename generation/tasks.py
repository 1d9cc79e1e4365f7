"""Generate-queue tasks (routed by name: generation.* -> generate). Thin: ids in, one service.

acks_late with prefetch 1 (settings): a message is acknowledged after its batch, so a worker
that dies holding it does not lose it on brokers that redeliver; on those that do not, and
before Redis's visibility timeout, the restarted worker recovers its items (worker_ready).
"""

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError

from generation.services.batches import (
    TransientGenerationError,
    generation_batch_run,
    generation_items_fail,
)
from generation.services.recovery import generation_items_recover
from pickwise.worker_recovery import recover_on_worker_start

GENERATE_QUEUE = "generate"
RETRYABLE = (TransientGenerationError, OperationalError, InterfaceError)


class BatchTask(DjangoTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Retries are spent (or the error was a bug): record it on the items, not only in logs.
        params = {**dict(zip(("job_id", "generator_id", "item_ids"), args, strict=False)), **kwargs}
        generation_items_fail(
            job_id=params["job_id"],
            item_ids=params["item_ids"],
            error=f"Failed after {self.request.retries} retries: {exc}",
            worker=self.request.hostname or "",
        )


@shared_task(
    base=BatchTask,
    bind=True,
    name="generation.run_batch",
    acks_late=True,
    autoretry_for=RETRYABLE,
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
)
def generation_batch_task(self, job_id: int, generator_id: int, item_ids: list[int]) -> dict:
    result = generation_batch_run(
        job_id=job_id,
        generator_id=generator_id,
        item_ids=item_ids,
        worker=self.request.hostname or "",
    )
    return {"claimed": result.claimed, "generated": result.generated, "failed": result.failed}


@shared_task(name="generation.recover_stalled", ignore_result=True)
def generation_recover_task(worker: str | None = None, resend_pending: bool = False) -> dict:
    return generation_items_recover(worker=worker, resend_pending=resend_pending)


@worker_ready.connect
def _recover_after_restart(sender=None, **kwargs) -> None:
    """A generate worker that starts holds nothing: give back what its previous life held."""
    recover_on_worker_start(
        sender=sender,
        label="generation",
        queue=GENERATE_QUEUE,
        recover=lambda hostname: generation_items_recover(worker=hostname, resend_pending=True),
    )
