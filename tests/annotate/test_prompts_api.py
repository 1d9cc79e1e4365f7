import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotate.apis import NEEDS_PROMPTS_OR_FILE
from annotate.models import Prompt
from annotate.services import prompts as prompt_service
from tests.factories import CampaignFactory, user_as

pytestmark = pytest.mark.django_db


def _url(campaign) -> str:
    return f"/api/campaigns/{campaign.pk}/prompts/"


def _admin_client(api_client, campaign):
    api_client.force_authenticate(user_as(campaign, "admin"))
    return api_client


def _upload(client, campaign, name: str, content: bytes, **fields):
    upload = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    return client.post(_url(campaign), {"file": upload, **fields}, format="multipart")


def test_an_admin_adds_prompts_as_json(api_client):
    campaign = CampaignFactory()
    payload = {"prompts": ["a cat", {"text": "a dog", "negative_prompt": "blurry"}]}
    response = _admin_client(api_client, campaign).post(_url(campaign), payload, format="json")
    assert response.status_code == 201
    assert response.json() == {"created": 2, "existing": 0}
    assert Prompt.objects.get(text="a dog").negative_prompt == "blurry"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("p.txt", b"a cat\na dog\n"),
        ("p.csv", b"text\na cat\na dog\n"),
        ("p.jsonl", b'"a cat"\n"a dog"\n'),
    ],
)
def test_an_admin_uploads_a_prompt_file(api_client, name, content):
    campaign = CampaignFactory()
    response = _upload(_admin_client(api_client, campaign), campaign, name, content)
    assert response.status_code == 201
    assert response.json() == {"created": 2, "existing": 0}


def test_the_format_field_overrides_the_file_name(api_client):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    response = _upload(client, campaign, "prompts.dat", b'["a cat"]', format="json")
    assert response.status_code == 201
    assert Prompt.objects.get().text == "a cat"


def test_adding_the_same_prompts_twice_doubles_nothing(api_client):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    payload = {"prompts": ["a cat", "a dog"]}
    assert client.post(_url(campaign), payload, format="json").status_code == 201
    again = client.post(_url(campaign), payload, format="json")
    assert again.status_code == 201
    assert again.json() == {"created": 0, "existing": 2}
    assert Prompt.objects.count() == 2


def test_bad_items_are_reported_by_position_and_nothing_is_added(api_client):
    campaign = CampaignFactory()
    payload = {"prompts": ["fine", {"text": ""}, 42, {"text": "x", "meta": "not an object"}]}
    response = _admin_client(api_client, campaign).post(_url(campaign), payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["detail"]) == ("invalid_rows", "3 bad row(s); nothing was imported.")
    assert [e["line"] for e in body["errors"]] == [2, 3, 4]
    assert not Prompt.objects.exists()


def test_a_malformed_upload_is_reported_by_line(api_client):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    response = _upload(client, campaign, "p.jsonl", b'"ok"\n{broken\n')
    assert response.status_code == 400
    assert response.json()["errors"][0]["line"] == 2
    response = _upload(client, campaign, "p.csv", b"prompt\na cat\n")
    assert response.json() == {"detail": prompt_service.CSV_NEEDS_TEXT, "code": "invalid_file"}
    response = _upload(client, campaign, "p.xlsx", b"a cat")
    assert response.json()["code"] == "unknown_format"
    assert not Prompt.objects.exists()


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({}, NEEDS_PROMPTS_OR_FILE),
        ({"prompts": "a cat"}, "prompts must be a list."),
        ({"prompts": []}, prompt_service.NO_PROMPTS),
    ],
)
def test_it_needs_a_list_of_prompts_or_a_file(api_client, payload, detail):
    campaign = CampaignFactory()
    response = _admin_client(api_client, campaign).post(_url(campaign), payload, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == detail


def test_it_refuses_more_prompts_than_the_limit(api_client, settings):
    settings.PICKWISE_MAX_PROMPTS_PER_IMPORT = 2
    campaign = CampaignFactory()
    payload = {"prompts": ["a", "b", "c"]}
    response = _admin_client(api_client, campaign).post(_url(campaign), payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "too_many"
    assert not Prompt.objects.exists()


def test_an_upload_over_the_limit_gets_413(api_client, settings):
    settings.PICKWISE_MAX_UPLOAD_BYTES = 10
    campaign = CampaignFactory()
    response = _upload(_admin_client(api_client, campaign), campaign, "p.txt", b"a cat\na dog\n")
    assert response.status_code == 413
    assert response.json() == {
        "detail": "The upload is 12 bytes; the limit is 10.",
        "code": "too_large",
    }
    assert not Prompt.objects.exists()


def test_a_json_body_over_the_request_limit_gets_a_json_413_and_adds_nothing(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    campaign = CampaignFactory()
    payload = {"prompts": [f"prompt number {i}" for i in range(200)]}
    response = _admin_client(api_client, campaign).post(_url(campaign), payload, format="json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert not Prompt.objects.exists()


def test_meta_must_be_an_object(api_client):
    campaign = CampaignFactory()
    payload = {"prompts": [{"text": "a cat", "meta": []}]}
    response = _admin_client(api_client, campaign).post(_url(campaign), payload, format="json")
    assert response.status_code == 400
    assert not Prompt.objects.exists()


@pytest.mark.parametrize("who", ["anonymous", "annotator", "researcher", "site_researcher"])
def test_only_campaign_admins_may_add_prompts(api_client, who):
    campaign = CampaignFactory()
    api_client.force_authenticate(user_as(campaign, who))
    response = api_client.post(_url(campaign), {"prompts": ["a cat"]}, format="json")
    assert response.status_code in ((401, 403) if who == "anonymous" else (403,))
    assert not Prompt.objects.exists()


def test_a_non_member_gets_404(api_client):
    campaign = CampaignFactory()
    api_client.force_authenticate(user_as(campaign, "outsider"))
    response = api_client.post(_url(campaign), {"prompts": ["a cat"]}, format="json")
    assert response.status_code == 404
    assert not Prompt.objects.exists()


def test_it_refuses_other_methods(api_client):
    campaign = CampaignFactory()
    assert _admin_client(api_client, campaign).get(_url(campaign)).status_code == 405
