"""Sending tasks about committed rows, so that a lost broker neither fails a request nor
loses its work.

enqueue_on_commit(task, *args) writes the message to the outbox (OutboxMessage) in the
caller's transaction and sends it once that transaction commits; a send that succeeds
deletes the message again. When the broker is unreachable the send gives up after
CELERY_BROKER_TIMEOUT seconds, logs a warning and leaves the message where
outbox_resend (beat, every minute, and every default worker as it starts) sends it again.
So the request that committed the row answers success, and the work is picked up when the
broker is back. Every task sent this way claims its row with a conditional update, so a
message sent twice is harmless.

durable=False only sends on commit and never raises: for work a periodic task redoes
anyway (quality evaluations, redone by quality.recompute_all), where an outbox row per
submit would only add writes to the annotation hot path.
"""

import logging
from datetime import timedelta
from functools import partial

from celery import Task, current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pickwise.models import OutboxMessage

logger = logging.getLogger(__name__)

# One quick retry (a pooled connection the broker closed is reopened), then the outbox.
RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def send_now(task: Task, args: tuple | list) -> bool:
    """Publish the task; False (and a warning in the log) when the broker did not take it."""
    try:
        task.apply_async(args=list(args), retry=True, retry_policy=RETRY_POLICY)
    except Exception as error:  # each transport raises its own errors; none may reach a request
        logger.warning(
            "The broker did not take %s%s (%s: %s); the outbox sweep sends it again.",
            task.name,
            tuple(args),
            type(error).__name__,
            error,
        )
        return False
    return True


class _Send:
    """The on-commit callback: `name` and partial's `args` tell tests what it will send."""

    def __init__(self, task: Task, message_id: int | None):
        self.task = task
        self.name = task.name
        self.message_id = message_id

    def send(self, *args) -> None:
        if not send_now(self.task, args) or self.message_id is None:
            return
        try:
            OutboxMessage.objects.filter(pk=self.message_id).delete()
        except Exception:  # the message is sent; at worst the sweep sends a harmless duplicate
            logger.warning("Could not remove sent outbox message %s.", self.message_id)


def enqueue_on_commit(task: Task, *args, durable: bool = True) -> None:
    """Send `task(*args)` once the current transaction (if any) commits; never raises for
    the broker. durable: keep the message in the outbox until the broker has it."""
    message_id = (
        OutboxMessage.objects.create(task=task.name, args=list(args)).pk if durable else None
    )
    transaction.on_commit(partial(_Send(task, message_id).send, *args))


def enqueue_many_on_commit(task: Task, calls: list[tuple]) -> None:
    """enqueue_on_commit for many argument tuples, with one outbox insert."""
    messages = OutboxMessage.objects.bulk_create(
        OutboxMessage(task=task.name, args=list(args)) for args in calls
    )
    for message, args in zip(messages, calls, strict=True):
        transaction.on_commit(partial(_Send(task, message.pk).send, *args))


def outbox_resend(*, older_than: float | None = None, limit: int = 1000) -> dict:
    """Send again the outbox messages older than `older_than` seconds
    (PICKWISE_OUTBOX_RESEND_AFTER by default), oldest first; stops at the first the broker
    refuses, so a broker that is still down costs one timeout, not one per message.
    Returns {"sent": n, "left": messages still waiting}."""
    if older_than is None:
        older_than = settings.PICKWISE_OUTBOX_RESEND_AFTER
    before = timezone.now() - timedelta(seconds=older_than)
    sent = 0
    for message in OutboxMessage.objects.filter(created_at__lte=before).order_by("pk")[:limit]:
        task = current_app.tasks.get(message.task)
        if task is None:
            logger.warning("Outbox message %s names an unknown task; dropped.", message)
            message.delete()
            continue
        OutboxMessage.objects.filter(pk=message.pk).update(attempts=message.attempts + 1)
        if not send_now(task, message.args):
            break
        OutboxMessage.objects.filter(pk=message.pk).delete()
        sent += 1
    return {"sent": sent, "left": OutboxMessage.objects.count()}
