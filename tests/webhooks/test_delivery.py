"""Webhook deliveries against a real HTTP receiver: signature, retries, outages, secrecy."""

import hashlib
import hmac
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from pickwise.errors import ApplicationError
from tests.factories import campaign_with_comparisons
from tests.webhooks.conftest import Receiver, free_port
from webhooks.models import Webhook, WebhookDelivery
from webhooks.services import (
    BAD_URL,
    retry_delay,
    webhook_create,
    webhook_deliveries_due,
    webhook_delivery_attempt,
    webhook_test_send,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(db):
    return campaign_with_comparisons(prompts=2)


def endpoint(url: str, campaign=None, events=()) -> Webhook:
    return webhook_create(url=url, events=list(events), campaign=campaign)


def verified(request: dict, secret: str) -> dict:
    """The event of a received request, after checking its signature as a receiver must."""
    fields = dict(
        part.split("=", 1) for part in request["headers"]["Pickwise-Signature"].split(",")
    )
    signed = f"{fields['t']}.".encode() + request["body"]
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    assert abs(int(fields["t"]) - timezone.now().timestamp()) < 60
    return json.loads(request["body"])


def make_due(delivery: WebhookDelivery) -> None:
    """Let the backoff pass (the test does not wait for it)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_a_test_event_arrives_signed_over_the_timestamp_and_the_body(campaign, receiver):
    webhook = endpoint(receiver.url, campaign)
    delivery = webhook_test_send(webhook=webhook)

    sent = webhook_delivery_attempt(delivery_id=delivery.pk)
    (request,) = receiver.requests
    event = verified(request, webhook.secret)
    assert event["id"] == request["headers"]["Pickwise-Delivery"] == str(delivery.event_id)
    assert event["type"] == request["headers"]["Pickwise-Event"] == "ping"
    assert event["campaign"] == {"id": campaign.pk, "slug": campaign.slug}
    assert event["created_at"]
    assert (sent.status, sent.attempts, sent.last_status_code) == ("succeeded", 1, 200)
    assert sent.delivered_at is not None
    # Delivered: a duplicate message or the sweep sends nothing more.
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1


def test_a_signature_made_with_another_secret_does_not_verify(campaign, receiver):
    webhook = endpoint(receiver.url, campaign)
    webhook_delivery_attempt(delivery_id=webhook_test_send(webhook=webhook).pk)

    with pytest.raises(AssertionError):
        verified(receiver.requests[0], "not-the-secret")


def test_500s_are_retried_with_doubling_waits_until_the_event_arrives(campaign, receiver):
    receiver.script = [500, 503]
    webhook = endpoint(receiver.url, campaign)
    delivery = webhook_test_send(webhook=webhook)

    first = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
    assert first.last_error.startswith("HTTP 500")
    wait = (first.next_attempt_at - timezone.now()).total_seconds()
    assert 0 < wait <= 1.0
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None  # not due yet
    make_due(delivery)
    second = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert (second.attempts, second.last_status_code) == (2, 503)
    assert 1.0 < (second.next_attempt_at - timezone.now()).total_seconds() <= 2.0
    make_due(delivery)
    third = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert (third.status, third.attempts, third.last_error) == ("succeeded", 3, "")

    events = [verified(r, webhook.secret) for r in receiver.requests]
    assert len(events) == 3 and len({e["id"] for e in events}) == 1
    assert len({r["body"] for r in receiver.requests}) == 1  # the same bytes every time


def test_a_receiver_that_times_out_is_tried_again(campaign, receiver):
    receiver.script = ["slow"]
    delivery = webhook_test_send(webhook=endpoint(receiver.url, campaign))

    first = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert (first.status, first.last_status_code) == ("pending", None)
    assert "timed out" in first.last_error
    make_due(delivery)
    assert webhook_delivery_attempt(delivery_id=delivery.pk).status == "succeeded"


def test_no_event_is_lost_while_the_receiver_is_down(campaign):
    port = free_port()
    webhook = endpoint(f"http://127.0.0.1:{port}/hook", campaign)
    deliveries = [webhook_test_send(webhook=webhook) for _ in range(3)]
    for delivery in deliveries:
        failed = webhook_delivery_attempt(delivery_id=delivery.pk)
        assert failed.status == "pending"
        assert "ConnectionRefusedError" in failed.last_error
    for _ in range(2):  # down for a while: more attempts fail
        for delivery in deliveries:
            make_due(delivery)
            assert webhook_delivery_attempt(delivery_id=delivery.pk).status == "pending"

    receiver = Receiver(port=port)  # back up
    try:
        for delivery in deliveries:
            make_due(delivery)
        due = webhook_deliveries_due()
        assert sorted(due) == sorted(d.pk for d in deliveries)
        for delivery_id in due:
            assert webhook_delivery_attempt(delivery_id=delivery_id).status == "succeeded"
    finally:
        receiver.stop()
    received = {verified(r, webhook.secret)["id"] for r in receiver.requests}
    assert received == {str(d.event_id) for d in deliveries}
    assert {d.attempts for d in WebhookDelivery.objects.all()} == {4}


def test_it_gives_up_after_the_last_attempt_and_keeps_the_error(campaign, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.script = [500, 500, 500]
    delivery = webhook_test_send(webhook=endpoint(receiver.url, campaign))

    webhook_delivery_attempt(delivery_id=delivery.pk)
    make_due(delivery)
    last = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert (last.status, last.attempts, last.last_status_code) == ("failed", 2, 500)
    make_due(delivery)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert webhook_deliveries_due() == []


def test_a_redirect_is_not_followed_and_counts_as_failed(campaign, receiver):
    receiver.script = [302]
    delivery = webhook_test_send(webhook=endpoint(receiver.url, campaign))

    failed = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert (failed.status, failed.last_status_code) == ("pending", 302)
    assert len(receiver.requests) == 1


def test_the_backoff_doubles_up_to_the_cap(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_RETRY_CAP_SECONDS = 3600
    waits = [retry_delay(attempts=n).total_seconds() for n in (1, 2, 3, 9, 10, 50)]
    assert waits == [10, 20, 40, 2560, 3600, 3600]


def test_the_secret_is_never_logged_nor_kept_with_a_delivery(campaign, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.script = [500, "slow"]
    webhook = endpoint(receiver.url, campaign)
    down = endpoint(f"http://127.0.0.1:{free_port()}/hook", campaign)
    for hook in (webhook, down):
        delivery = webhook_test_send(webhook=hook)
        for _ in range(3):
            make_due(delivery)
            webhook_delivery_attempt(delivery_id=delivery.pk)

    assert "failed on attempt" in caplog.text
    for hook in (webhook, down):
        assert hook.secret not in caplog.text
        for delivery in WebhookDelivery.objects.all():
            assert hook.secret not in delivery.body + delivery.last_error
    for request in receiver.requests:
        assert webhook.secret.encode() not in request["body"]
        assert webhook.secret not in json.dumps(request["headers"])


def test_sending_waits_for_the_commit(campaign, django_capture_on_commit_callbacks):
    webhook = endpoint("http://127.0.0.1:9/hook", campaign)
    with django_capture_on_commit_callbacks(execute=False) as sends:
        delivery = webhook_test_send(webhook=webhook)

    assert [(s.func.__self__.name, s.args) for s in sends] == [("webhooks.deliver", (delivery.pk,))]


@pytest.mark.parametrize(
    ("url", "events", "message"),
    [
        ("ftp://example.org/hook", [], BAD_URL),
        ("http:///hook", [], BAD_URL),
        (
            "https://example.org/hook",
            ["export.finished", "nope"],
            "Unknown events: nope. Choose from: ping, judgment.batch, export.finished, "
            "export.failed, training_job.finished, training_job.failed, "
            "generation_job.finished, generation_job.failed, image_import.finished, "
            "image_import.failed, rater.blocked, rater.unblocked, campaign.completed.",
        ),
    ],
)
def test_an_endpoint_with_a_bad_url_or_unknown_events_is_refused(campaign, url, events, message):
    with pytest.raises(ApplicationError) as error:
        webhook_create(url=url, events=events, campaign=campaign)
    assert error.value.message == message
    assert not Webhook.objects.exists()


def test_secrets_are_long_and_differ_per_endpoint(campaign):
    one, two = endpoint("https://example.org/a", campaign), endpoint("https://example.org/b")
    assert len(one.secret) == 64 and one.secret != two.secret


def test_the_readme_verify_function_accepts_a_real_delivery_and_refuses_a_forgery(
    campaign, receiver
):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("To verify, in Python:\n\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the README's own snippet
    webhook = endpoint(receiver.url, campaign)
    webhook_delivery_attempt(delivery_id=webhook_test_send(webhook=webhook).pk)
    (request,) = receiver.requests
    header, body = request["headers"]["Pickwise-Signature"], request["body"]

    assert namespace["verify"](webhook.secret, header, body)
    assert not namespace["verify"](webhook.secret, header, body + b" ")
    assert not namespace["verify"]("another-secret", header, body)
