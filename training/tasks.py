"""Train-queue tasks (routed by name: training.* -> train). Thin: ids in, one service.

training.run_job holds the worker for the whole run (the trainer is its subprocess), acks late
with prefetch 1. A killed worker's job is put back in the queue on the worker's next start
(worker_ready) and by the beat sweep of stale heartbeats; the next run resumes from the last
checkpoint.
"""

from celery import shared_task
from celery.signals import worker_ready

from pickwise.worker_recovery import recover_on_worker_start
from training.runner import training_job_run
from training.services.jobs import training_jobs_recover

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
    recover_on_worker_start(
        sender=sender,
        label="training",
        queue=TRAIN_QUEUE,
        recover=lambda hostname: training_jobs_recover(worker=hostname, resend_queued=True),
    )
