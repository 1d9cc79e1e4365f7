"""Webhook tasks: send one delivery, sweep the due ones, batch new judgments."""

from celery import shared_task

from webhooks.models import WebhookDelivery
from webhooks.services import (
    retry_delay,
    webhook_campaigns_completed_emit,
    webhook_deliveries_due,
    webhook_delivery_attempt,
    webhook_judgment_batches_emit,
)


@shared_task(name="webhooks.deliver", ignore_result=True)
def webhook_deliver_task(delivery_id: int) -> None:
    delivery = webhook_delivery_attempt(delivery_id=delivery_id)
    if delivery is not None and delivery.status == WebhookDelivery.Status.PENDING:
        # The next attempt, when its backoff has passed (the sweep also finds it then).
        countdown = retry_delay(attempts=delivery.attempts).total_seconds()
        webhook_deliver_task.apply_async(args=[delivery_id], countdown=countdown)


@shared_task(name="webhooks.send_due", ignore_result=True)
def webhook_send_due_task() -> int:
    due = webhook_deliveries_due()
    for delivery_id in due:
        webhook_deliver_task.delay(delivery_id)
    return len(due)


@shared_task(name="webhooks.judgment_batches", ignore_result=True)
def webhook_judgment_batches_task() -> int:
    return webhook_judgment_batches_emit() + webhook_campaigns_completed_emit()
