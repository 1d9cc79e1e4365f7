"""Webhooks: endpoints that hear about events, and the log of every delivery to them."""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

# What an endpoint can subscribe to; an empty list means every event.
EVENTS = (
    "ping",  # "send a test event"
    "judgment.batch",  # the judgments made since the last batch, at most one event a period
    "export.finished",
    "export.failed",
    "training_job.finished",
    "training_job.failed",
    "generation_job.finished",
    "generation_job.failed",
    "image_import.finished",
    "image_import.failed",
    "rater.blocked",
    "rater.unblocked",
    "campaign.completed",  # every regular comparison has its judgments (announced once)
)


def new_secret() -> str:
    return secrets.token_hex(32)


class Webhook(models.Model):
    """An endpoint, for one campaign or (campaign empty) for every campaign."""

    url = models.URLField(max_length=2000)
    # The signing key: shown to the admin who creates the endpoint, never logged.
    secret = models.CharField(max_length=64, default=new_secret)
    events = models.JSONField(default=list, blank=True)
    campaign = models.ForeignKey(
        "annotate.Campaign",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhooks",
    )
    is_active = models.BooleanField(default=True)
    # judgment.batch: the last judgment id already announced to this endpoint.
    judgments_after = models.BigIntegerField(default=0)
    # campaign.completed: the campaigns already announced to this endpoint.
    completed_campaigns = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        scope = self.campaign.slug if self.campaign_id else "site-wide"
        return f"webhook {self.pk} ({scope})"

    def wants(self, event: str) -> bool:
        return event == "ping" or not self.events or event in self.events


class WebhookDelivery(models.Model):
    """One event for one endpoint: its exact body, and how sending it went so far."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its next attempt
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # gave up after WEBHOOK_MAX_ATTEMPTS

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=64)
    # The JSON body as sent: every attempt signs and sends the very same bytes.
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="webhook_delivery_due",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.event}, {self.status})"
