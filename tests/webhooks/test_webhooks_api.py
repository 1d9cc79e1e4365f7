"""The webhooks API: who may add, list, test and remove endpoints, and bad input."""

import pytest
from django.contrib.auth import get_user_model

from tests.factories import UserFactory, campaign_with_comparisons, user_as
from webhooks.models import Webhook, WebhookDelivery
from webhooks.services import BAD_URL, DUPLICATE, webhook_create

pytestmark = pytest.mark.django_db
URL = "/api/webhooks/"
HOOK = "https://receiver.example.org/hook"


@pytest.fixture
def campaign(db):
    return campaign_with_comparisons(prompts=1)


def staff():
    user = UserFactory()
    get_user_model().objects.filter(pk=user.pk).update(is_staff=True)
    user.refresh_from_db()
    return user


def test_a_campaign_admin_adds_an_endpoint_and_sees_the_secret_once(api_client, campaign):
    api_client.force_authenticate(user_as(campaign, "admin"))
    response = api_client.post(
        URL, {"url": HOOK, "events": ["export.finished"], "campaign": campaign.pk}
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    webhook = Webhook.objects.get()
    assert body["secret"] == webhook.secret and len(body["secret"]) == 64
    assert (body["campaign"], body["events"]) == (campaign.pk, ["export.finished"])
    listed = api_client.get(URL, {"campaign": campaign.pk}).json()
    assert [w["id"] for w in listed] == [webhook.pk]
    assert "secret" not in listed[0]


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("annotator", 403), ("researcher", 403), ("outsider", 404)],
)
def test_only_campaign_admins_manage_its_endpoints(api_client, campaign, who, status):
    webhook = webhook_create(url=HOOK, events=[], campaign=campaign)
    user = user_as(campaign, who)
    if user is not None:
        api_client.force_authenticate(user)

    assert api_client.post(URL, {"url": HOOK + "2", "campaign": campaign.pk}).status_code == status
    assert api_client.get(URL, {"campaign": campaign.pk}).status_code == status
    assert api_client.post(f"{URL}{webhook.pk}/test/").status_code == status
    assert api_client.get(f"{URL}{webhook.pk}/deliveries/").status_code == status
    assert api_client.delete(f"{URL}{webhook.pk}/").status_code == status
    assert Webhook.objects.count() == 1
    assert not WebhookDelivery.objects.exists()


def test_site_wide_endpoints_are_for_staff_only(api_client, campaign):
    api_client.force_authenticate(user_as(campaign, "admin"))
    assert api_client.post(URL, {"url": HOOK}).status_code == 403
    assert api_client.get(URL).status_code == 403
    site = webhook_create(url=HOOK, events=[], campaign=None)
    assert api_client.post(f"{URL}{site.pk}/test/").status_code == 404

    api_client.force_authenticate(staff())
    response = api_client.post(URL, {"url": HOOK + "/other"})
    assert response.status_code == 201
    assert response.json()["campaign"] is None
    assert len(api_client.get(URL).json()) == 2


def test_send_a_test_event_and_follow_it_in_the_log(api_client, campaign):
    webhook = webhook_create(url=HOOK, events=["export.finished"], campaign=campaign)
    api_client.force_authenticate(user_as(campaign, "admin"))

    response = api_client.post(f"{URL}{webhook.pk}/test/")
    assert response.status_code == 202
    assert (response.json()["event"], response.json()["status"]) == ("ping", "pending")
    log = api_client.get(f"{URL}{webhook.pk}/deliveries/").json()
    assert [d["event"] for d in log] == ["ping"]
    assert "body" not in log[0]


def test_removing_an_endpoint_drops_its_log(api_client, campaign):
    webhook = webhook_create(url=HOOK, events=[], campaign=campaign)
    api_client.force_authenticate(user_as(campaign, "admin"))
    api_client.post(f"{URL}{webhook.pk}/test/")

    assert api_client.delete(f"{URL}{webhook.pk}/").status_code == 204
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    assert api_client.delete(f"{URL}{webhook.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "not a url"}, "url: Enter a valid URL."),
        ({"url": "ftp://example.org/hook"}, BAD_URL),
        ({"url": "https://example.org/" + "a" * 2000}, None),
        ({"url": HOOK, "events": ["nope"]}, 'events: 0: "nope" is not a valid choice.'),
        ({"url": HOOK, "events": "export.finished"}, None),
        ({"url": HOOK, "campaign": "x"}, "campaign: A valid integer is required."),
    ],
    ids=["not-a-url", "ftp", "too-long", "unknown-event", "events-not-a-list", "campaign-not-id"],
)
def test_malformed_input_gets_400_with_the_reason(api_client, campaign, body, message):
    api_client.force_authenticate(user_as(campaign, "admin"))
    response = api_client.post(URL, {"campaign": campaign.pk, **body})

    assert response.status_code == 400
    if message:
        assert response.json()["detail"] == message
    assert not Webhook.objects.exists()


def test_the_same_url_twice_for_one_campaign_is_refused(api_client, campaign):
    api_client.force_authenticate(user_as(campaign, "admin"))
    first = api_client.post(URL, {"url": HOOK, "campaign": campaign.pk}).json()

    again = api_client.post(URL, {"url": HOOK, "campaign": campaign.pk})
    assert again.status_code == 409
    assert again.json()["detail"] == DUPLICATE.format(id=first["id"])


def test_wrong_methods_get_405(api_client, campaign):
    webhook = webhook_create(url=HOOK, events=[], campaign=campaign)
    api_client.force_authenticate(user_as(campaign, "admin"))

    assert api_client.get(f"{URL}{webhook.pk}/test/").status_code == 405
    assert api_client.post(f"{URL}{webhook.pk}/deliveries/").status_code == 405
    assert api_client.put(f"{URL}{webhook.pk}/", {}).status_code == 405
