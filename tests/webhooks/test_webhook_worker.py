"""A real default-queue worker sends a delivery, and after a 500 sends it again by itself."""

import pytest

from tests.factories import campaign_with_comparisons
from tests.generation.test_worker import FINISH_SECONDS, Worker
from tests.webhooks.test_delivery import verified
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_create, webhook_test_send

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    worker = Worker(tmp_path, queue="default")
    worker.env |= {"WEBHOOK_RETRY_BASE_SECONDS": "1", "WEBHOOK_TIMEOUT_SECONDS": "2"}
    yield worker
    worker.stop()


def test_the_worker_delivers_and_retries_after_a_500(worker, receiver):
    receiver.script = [500]
    webhook = webhook_create(
        url=receiver.url, events=[], campaign=campaign_with_comparisons(prompts=1)
    )
    worker.start()

    delivery = webhook_test_send(webhook=webhook)  # committed at once: the message goes out
    worker.wait_for(
        lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "succeeded",
        FINISH_SECONDS,
        "deliver the event",
    )
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert [verified(r, webhook.secret)["id"] for r in receiver.requests] == [
        str(delivery.event_id)
    ] * 2
    assert webhook.secret not in worker.log.read_text()
