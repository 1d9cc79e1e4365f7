"""Claimed jobs: rows that a worker takes, keeps alive and may lose to recovery.

Four kinds of job work this way: exports, training jobs, image imports and generation items.
A worker claims pending rows with one conditional update (so two workers never hold the same
row), which counts an attempt, writes the worker's Celery hostname and a fresh claim token,
and sets `heartbeat_at`. While it runs, the job writes `heartbeat_at` again (from its
progress, or from pickwise.heartbeat's thread); every later write of the job is conditional
on its claim token, so a worker whose job was taken back finds that out at its next write.

Recovery (a beat sweep, and a worker that starts again) takes back the running rows whose
heartbeat is older than the kind's timeout, or that the starting worker held in its previous
life: each is re-queued, or failed once it has had its kind's share of attempts. What
re-queued and failed mean stays with each kind (a folder to remove, a webhook to announce).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from django.db import models
from django.db.models import F, Q, QuerySet
from django.utils import timezone

# Every kind's Status has this value for a row a worker holds.
RUNNING = "running"

# What a row keeps of its claim once released (attempts stay counted).
RELEASED = {"worker": "", "claim_token": "", "heartbeat_at": None}


class ClaimedJob(models.Model):
    """The claim of a row by a worker. Subclasses have a `status` field with a RUNNING value."""

    # Claims so far: each claim counts one, so a job that kills its worker fails in the end.
    attempts = models.PositiveSmallIntegerField(default=0)
    # The holder's Celery hostname, so a worker that starts again takes back what it held.
    worker = models.CharField(max_length=255, blank=True)
    # Every write of the holder matches it; recovery clears it, and the old holder stops.
    claim_token = models.CharField(max_length=64, blank=True)
    # The holder's last sign of life: the claim, then its progress or its heartbeat thread.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


Job = TypeVar("Job", bound=ClaimedJob)


def job_claim(*, claimable: QuerySet, worker: str, **fields) -> tuple[str, int]:
    """Claim every row of `claimable` for one new token; returns (token, rows claimed).

    One conditional UPDATE: `claimable` must select only rows that may be claimed (pending,
    say), so a second worker running the same claim takes nothing. `fields` are the kind's
    own writes at claim time (started_at, progress reset).
    """
    token = uuid.uuid4().hex
    claimed = claimable.update(
        status=RUNNING,
        claim_token=token,
        worker=worker[: ClaimedJob._meta.get_field("worker").max_length],
        heartbeat_at=timezone.now(),
        attempts=F("attempts") + 1,
        **fields,
    )
    return token, claimed


def job_held(*, job: ClaimedJob) -> QuerySet:
    """The job's row while its holder (the token on `job`) still holds it: empty once
    recovery has taken the job back, so an update through it then writes nothing."""
    return type(job).objects.filter(pk=job.pk, status=RUNNING, claim_token=job.claim_token)


def jobs_lost(*, timeout: int, worker: str | None = None) -> Q:
    """Running rows with no sign of life for `timeout` seconds, or held by `worker` (which
    has just started, so holds nothing any more)."""
    stale = timezone.now() - timedelta(seconds=timeout)
    lost = Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
    if worker:
        lost |= Q(worker=worker)
    return Q(status=RUNNING) & lost


@dataclass
class Reclaimed:
    """The ids of the lost rows recovery took back, by what it did with them."""

    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)  # the kind's own outcome (`settle`)


# Each takes the row as its holder held it (`held`, see job_held) and the job as read; it
# returns whether its conditional update took the row (False: the holder finished meanwhile).
Outcome = Callable[[QuerySet, Job], bool]


def jobs_reclaim(
    *,
    jobs: QuerySet,
    timeout: int,
    max_attempts: int | None,
    requeue: Outcome,
    fail: Outcome | None = None,
    worker: str | None = None,
    settle: Outcome | None = None,
) -> Reclaimed:
    """Take back the lost rows among `jobs` (see jobs_lost), one conditional update each.

    A row that has had `max_attempts` claims is failed; any other is re-queued. `settle`,
    when given, is asked first and may end the row its own way: it returns None to leave
    the row to the attempts check, else whether its update took the row.
    max_attempts None (and no `fail`) leaves the attempts check to the kind's claim
    (generation items).
    Each outcome updates through job_held, so a holder that is in fact alive loses its
    claim and stops at its next write; a row it finished meanwhile is left alone.
    """
    if (max_attempts is None) != (fail is None):
        raise ValueError("jobs_reclaim: give fail exactly when max_attempts is given")
    result = Reclaimed()
    for job in jobs.filter(jobs_lost(timeout=timeout, worker=worker)).order_by("pk"):
        held = job_held(job=job)
        settled = settle(held, job) if settle is not None else None
        if settled is not None:
            if settled:
                result.settled.append(job.pk)
        elif max_attempts is not None and job.attempts >= max_attempts:
            if fail(held, job):
                result.failed.append(job.pk)
        elif requeue(held, job):
            result.requeued.append(job.pk)
    return result
