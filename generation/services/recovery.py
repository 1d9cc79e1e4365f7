"""Picking work back up after a worker died: give back its claims and send the items again.

Celery's acks_late alone does not cover a killed worker: the filesystem broker drops a message
once it is read, and Redis hands it out again only after the visibility timeout (hours). So
the generate worker recovers on start-up (worker_ready) and beat sweeps stale claims.
"""

from django.conf import settings

from generation.models import GenerationItem, GenerationJob
from generation.services.completion import generation_job_finish_if_complete
from generation.services.jobs import generation_job_enqueue
from pickwise.jobs import RELEASED, jobs_reclaim

GIVEN_BACK = "Given back after its worker stopped."

Status = GenerationItem.Status


def generation_items_recover(*, worker: str | None = None, resend_pending: bool = False) -> dict:
    """Give back items held by `worker` (which has just started, so holds nothing) or held
    past PICKWISE_GENERATION_HEARTBEAT_TIMEOUT (pickwise.jobs.jobs_reclaim), and enqueue
    them again.

    resend_pending also re-sends every pending item of active jobs: after a restart, a message
    the dead worker had read may be gone. Duplicates are harmless (claims are conditional).
    Jobs with nothing left open are closed. Returns counts for logs and the command line.
    """
    # No attempts check here: an item that had its share is failed when next claimed
    # (items_claim), with the batch that would run it.
    reclaimed = jobs_reclaim(
        jobs=GenerationItem.objects.filter(job__status__in=GenerationJob.ACTIVE),
        timeout=settings.PICKWISE_GENERATION_HEARTBEAT_TIMEOUT,
        max_attempts=None,
        worker=worker,
        requeue=lambda held, item: bool(
            held.update(status=Status.PENDING, error=GIVEN_BACK, **RELEASED)
        ),
    )
    released_ids, released = reclaimed.requeued, len(reclaimed.requeued)
    sent = 0
    closed = 0
    active = GenerationJob.objects.filter(status__in=GenerationJob.ACTIVE).order_by("id")
    for job_id in active.values_list("pk", flat=True):
        if generation_job_finish_if_complete(job_id=job_id):
            closed += 1
            continue
        ids = None if resend_pending else released_ids
        if ids is None or ids:
            sent += generation_job_enqueue(job_id=job_id, item_ids=ids)
    return {"released": released, "batches_sent": sent, "jobs_closed": closed}
