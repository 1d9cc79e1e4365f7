"""Train-queue tasks (routed by name: training.* -> train). Thin: ids in, one service.

training.run_job holds the worker for the whole run (the trainer is its subprocess), acks late
with prefetch 1. A killed worker's job is put back in the queue on the worker's next start
(worker_ready) and by the beat sweep of stale heartbeats; the next run resumes from the last
checkpoint.
"""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import connections

from training.runner import training_job_run
from training.services.jobs import training_jobs_recover

logger = logging.getLogger(__name__)

TRAIN_QUEUE = "train"


@shared_task(bind=True, name="training.run_job", acks_late=True, ignore_result=True)
def training_job_task(self, job_id: int) -> str:
    return training_job_run(job_id=job_id, worker=self.request.hostname or "")


@shared_task(name="training.recover_stalled", ignore_result=True)
def training_recover_task() -> dict:
    return training_jobs_recover()


@worker_ready.connect
def _recover_after_restart(sender=None, **kwargs) -> None:
    """A train worker that starts runs nothing: re-queue what its previous life was running."""
    app = sender.app if sender is not None else None
    if app is None or TRAIN_QUEUE not in app.amqp.queues.consume_from:
        return
    hostname = getattr(sender, "hostname", "") or ""
    try:
        counts = training_jobs_recover(worker=hostname, resend_queued=True)
        logger.info("training recovery on start of %s: %s", hostname, counts)
    except Exception:
        logger.exception("training recovery on start of %s failed", hostname)
    finally:
        # The prefork pool's children must not share the parent's database connection.
        connections.close_all()
