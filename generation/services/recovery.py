"""Picking work back up after a worker died: give back its claims and send the items again.

Celery's acks_late alone does not cover a killed worker: the filesystem broker drops a message
once it is read, and Redis hands it out again only after the visibility timeout (hours). So
the generate worker recovers on start-up (worker_ready) and beat sweeps stale claims.
"""

from django.db.models import Q

from generation.models import GenerationItem, GenerationJob
from generation.services.batches import _stale_before
from generation.services.completion import generation_job_finish_if_complete
from generation.services.jobs import generation_job_enqueue

Status = GenerationItem.Status


def generation_items_recover(*, worker: str | None = None, resend_pending: bool = False) -> dict:
    """Give back items held by `worker` (which has just started, so holds nothing) or held
    past the claim timeout, and enqueue them again.

    resend_pending also re-sends every pending item of active jobs: after a restart, a message
    the dead worker had read may be gone. Duplicates are harmless (claims are conditional).
    Jobs with nothing left open are closed. Returns counts for logs and the command line.
    """
    lost = Q(status=Status.RUNNING, claimed_at__lt=_stale_before())
    if worker:
        lost |= Q(status=Status.RUNNING, claimed_by=worker)
    lost_items = GenerationItem.objects.filter(lost, job__status__in=GenerationJob.ACTIVE)
    released_ids = list(lost_items.values_list("pk", flat=True))
    # Conditional on still being running: an item finished meanwhile stays finished.
    released = GenerationItem.objects.filter(pk__in=released_ids, status=Status.RUNNING).update(
        status=Status.PENDING,
        claim_token="",
        claimed_by="",
        claimed_at=None,
        error="Given back after its worker stopped.",
    )
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
