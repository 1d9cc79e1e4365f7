"""Webhook events: recorded with the work that caused them, sent by the worker.

An event becomes one WebhookDelivery per endpoint that wants it, written in the caller's
transaction; the worker sends it after commit, never inside a request. Each attempt POSTs
the stored JSON body with

    Pickwise-Event: export.finished
    Pickwise-Delivery: <the event id, also "id" in the body>
    Pickwise-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares it in
constant time and refuses old timestamps (replays). A 2xx answer delivers the event; any
other answer, a timeout or a refused connection is retried with exponential backoff
(WEBHOOK_RETRY_BASE_SECONDS doubling, at most WEBHOOK_RETRY_CAP_SECONDS apart) until
WEBHOOK_MAX_ATTEMPTS. The delivery rows are their own outbox: a sweep sends every due one,
so an event outlives a lost message, a dead worker and a receiver that is down for hours.
The secret is only ever used to sign; it is never logged or stored in an error.
"""

import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from annotate.models import Campaign, Comparison, Judgment
from pickwise.enqueue import enqueue_on_commit
from pickwise.errors import ApplicationError
from webhooks.models import EVENTS, Webhook, WebhookDelivery

logger = logging.getLogger(__name__)

UNKNOWN_EVENTS = "Unknown events: {events}. Choose from: {choices}."
BAD_URL = "The URL must start with http:// or https:// and name a host."
DUPLICATE = "An endpoint with this URL and scope exists already (webhook {id})."
TEST_MESSAGE = "A test event from Pickwise: this endpoint is set up."
ERROR_CHARS = 1000


def signature(*, secret: str, timestamp: int, body: str) -> str:
    """The Pickwise-Signature header for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def retry_delay(*, attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: doubling from the base, capped."""
    seconds = settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** min(attempts - 1, 30)
    return timedelta(seconds=min(seconds, settings.WEBHOOK_RETRY_CAP_SECONDS))


@transaction.atomic
def webhook_create(
    *, url: str, events: list[str], campaign: Campaign | None, created_by=None
) -> Webhook:
    """An endpoint for the campaign's events (every campaign's when None). It hears of
    judgments made from now on, not of the campaign's history."""
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise ApplicationError(
            UNKNOWN_EVENTS.format(events=", ".join(unknown), choices=", ".join(EVENTS)),
            code="invalid",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApplicationError(BAD_URL, code="invalid")
    same = Webhook.objects.filter(campaign=campaign, url=url).first()
    if same is not None:
        raise ApplicationError(DUPLICATE.format(id=same.pk), code="duplicate", status=409)
    judgments = Judgment.objects.filter(campaign=campaign) if campaign else Judgment.objects
    webhook = Webhook(
        url=url,
        events=sorted(set(events)),
        campaign=campaign,
        created_by=created_by,
        judgments_after=judgments.aggregate(last=Max("id"))["last"] or 0,
    )
    webhook.full_clean()
    webhook.save()
    return webhook


def webhook_event_emit(*, event: str, campaign: Campaign | None, data: dict) -> list:
    """Record `event` for every active endpoint that wants it; sent after commit."""
    endpoints = Webhook.objects.filter(is_active=True)
    if campaign is None:
        endpoints = endpoints.filter(campaign__isnull=True)
    else:
        endpoints = endpoints.filter(Q(campaign=campaign) | Q(campaign__isnull=True))
    return [
        _delivery_create(webhook=w, event=event, campaign=campaign, data=data)
        for w in endpoints
        if w.wants(event)
    ]


def webhook_test_send(*, webhook: Webhook) -> WebhookDelivery:
    """The "send a test event" action: a ping to this endpoint alone."""
    return _delivery_create(
        webhook=webhook, event="ping", campaign=webhook.campaign, data={"message": TEST_MESSAGE}
    )


def _delivery_create(
    *, webhook: Webhook, event: str, campaign: Campaign | None, data: dict
) -> WebhookDelivery:
    from webhooks.tasks import webhook_deliver_task

    event_id = uuid.uuid4()
    now = timezone.now()
    body = {
        "id": str(event_id),
        "type": event,
        "created_at": now.isoformat(),
        "campaign": {"id": campaign.pk, "slug": campaign.slug} if campaign else None,
        "data": data,
    }
    delivery = WebhookDelivery.objects.create(
        webhook=webhook,
        event_id=event_id,
        event=event,
        body=json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True),
        next_attempt_at=now,
    )
    # Not durable: the pending row is the outbox, and the sweep sends it if this is lost.
    enqueue_on_commit(webhook_deliver_task, delivery.pk, durable=False)
    return delivery


def webhook_deliveries_due(*, limit: int = 500) -> list[int]:
    """Ids of pending deliveries whose next attempt is due, oldest first."""
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:limit]
    )


def webhook_delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Send the delivery once if it is due; None when it is not (sent, failed for good, not
    yet due, or being sent by another worker). Outside any transaction: the POST may take
    WEBHOOK_TIMEOUT_SECONDS, and a row lock must not be held that long."""
    now = timezone.now()
    # The claim: push the next attempt past this one's longest run, so a second worker (a
    # duplicate message, the sweep) finds it not due; a worker that dies here leaves a
    # delivery that is due again once the lease has passed.
    lease = now + timedelta(seconds=2 * settings.WEBHOOK_TIMEOUT_SECONDS + 30)
    pending = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    )
    if not pending.update(next_attempt_at=lease):
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    status_code, error = _post(delivery)
    attempts = delivery.attempts + 1
    finished = timezone.now()
    if error is None:
        changes = {
            "status": WebhookDelivery.Status.SUCCEEDED,
            "delivered_at": finished,
            "last_error": "",
        }
    else:
        gave_up = attempts >= settings.WEBHOOK_MAX_ATTEMPTS
        changes = {
            "status": WebhookDelivery.Status.FAILED if gave_up else WebhookDelivery.Status.PENDING,
            "next_attempt_at": finished + retry_delay(attempts=attempts),
            "last_error": error[:ERROR_CHARS],
        }
        logger.warning(
            "Webhook delivery %s (%s) to %s failed on attempt %s%s: %s",
            delivery.pk,
            delivery.event,
            urlsplit(delivery.webhook.url).hostname,
            attempts,
            "; giving up" if gave_up else "",
            error,
        )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=attempts, last_status_code=status_code, **changes
    )
    delivery.refresh_from_db()
    return delivery


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would turn the POST into a GET elsewhere: it counts as a failed attempt.
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(delivery: WebhookDelivery) -> tuple[int | None, str | None]:
    """(HTTP status or None, None when delivered else what went wrong)."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Pickwise-Webhooks/1",
        "Pickwise-Event": delivery.event,
        "Pickwise-Delivery": str(delivery.event_id),
        "Pickwise-Signature": signature(
            secret=delivery.webhook.secret, timestamp=timestamp, body=delivery.body
        ),
    }
    request = urllib.request.Request(  # noqa: S310 - admins set http(s) URLs only
        delivery.webhook.url, data=delivery.body.encode(), headers=headers, method="POST"
    )
    try:
        with _OPENER.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read(64 * 1024)
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, f"HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", error)
        return None, f"{type(reason).__name__}: {reason}"


def webhook_judgment_batches_emit(*, limit: int | None = None) -> int:
    """One judgment.batch event per endpoint and campaign with the judgments made since the
    endpoint's last batch (at most `limit` per run): a busy campaign sends one request a
    period, not one per click. Returns the events recorded."""
    limit = limit or settings.WEBHOOK_JUDGMENT_BATCH_MAX
    events = 0
    for webhook in Webhook.objects.filter(is_active=True):
        if not webhook.wants("judgment.batch"):
            continue
        judgments = Judgment.objects.filter(id__gt=webhook.judgments_after)
        if webhook.campaign_id:
            judgments = judgments.filter(campaign_id=webhook.campaign_id)
        rows = list(
            judgments.order_by("id").values(
                "id", "campaign_id", "comparison_id", "answers", "created_at"
            )[:limit]
        )
        if not rows:
            continue
        with transaction.atomic():
            # Advance the cursor only from where this run read it: a second beat that read
            # the same cursor finds it moved and records nothing.
            moved = Webhook.objects.filter(
                pk=webhook.pk, judgments_after=webhook.judgments_after
            ).update(judgments_after=rows[-1]["id"])
            if not moved:
                continue
            by_campaign: dict[int, list[dict]] = {}
            for row in rows:
                by_campaign.setdefault(row.pop("campaign_id"), []).append(row)
            campaigns = Campaign.objects.in_bulk(list(by_campaign))
            for campaign_id, judgments_of in by_campaign.items():
                data = {"count": len(judgments_of), "judgments": judgments_of}
                _delivery_create(
                    webhook=webhook,
                    event="judgment.batch",
                    campaign=campaigns[campaign_id],
                    data=data,
                )
                events += 1
    return events


def webhook_campaigns_completed_emit() -> int:
    """campaign.completed, once per endpoint and campaign, when every regular comparison of
    the campaign is full (none open). Checked by the beat with the judgment batches, never
    on submit: the annotation hot path gains no query. Returns the events recorded."""
    events = 0
    for webhook in Webhook.objects.filter(is_active=True):
        if not webhook.wants("campaign.completed"):
            continue
        campaigns = Campaign.objects.exclude(pk__in=webhook.completed_campaigns)
        if webhook.campaign_id:
            campaigns = campaigns.filter(pk=webhook.campaign_id)
        regular = Comparison.objects.filter(campaign=OuterRef("pk"), role="regular")
        done = campaigns.filter(Exists(regular)).exclude(Exists(regular.filter(status="open")))
        for campaign in done:
            with transaction.atomic():
                announced = [*webhook.completed_campaigns, campaign.pk]
                moved = Webhook.objects.filter(
                    pk=webhook.pk, completed_campaigns=webhook.completed_campaigns
                ).update(completed_campaigns=announced)
                if not moved:
                    break  # another run announced meanwhile: it is that run's to finish
                webhook.completed_campaigns = announced
                _delivery_create(
                    webhook=webhook,
                    event="campaign.completed",
                    campaign=campaign,
                    data={"comparisons": Comparison.objects.filter(campaign=campaign).count()},
                )
                events += 1
    return events


def webhook_delete(*, webhook: Webhook) -> None:
    """Remove the endpoint and its delivery log; pending deliveries are dropped with it."""
    webhook.delete()
