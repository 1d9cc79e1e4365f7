import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotate.models import Image, Judgment, Prompt
from annotate.services.image_imports.messages import BAD_ROWS, UNKNOWN_SOURCE
from tests.factories import (
    CampaignFactory,
    manifest_csv,
    manifest_zip,
    pickapic_parquet,
    pickapic_row,
    png_bytes,
    user_as,
    zip_bytes,
)

pytestmark = pytest.mark.django_db


def _url(campaign) -> str:
    return f"/api/campaigns/{campaign.pk}/images/"


def _admin_client(api_client, campaign):
    api_client.force_authenticate(user_as(campaign, "admin"))
    return api_client


def _post(client, campaign, data: bytes, name: str = "upload.zip", **fields):
    upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return client.post(_url(campaign), {"file": upload, **fields}, format="multipart")


def _media_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_an_admin_imports_a_zip_and_gets_the_counts(api_client):
    campaign = CampaignFactory()
    response = _post(_admin_client(api_client, campaign), campaign, manifest_zip(prompts=2))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["prompts_created"], body["images_created"], body["comparisons_created"]) == (
        2,
        4,
        2,
    )
    assert Image.objects.filter(prompt__campaign=campaign).count() == 4


def test_an_admin_imports_a_parquet_file_with_labels(api_client):
    campaign = CampaignFactory()
    rows = [
        pickapic_row("a cat", user_id=1),
        pickapic_row("a dog", user_id=2, label_0=0.0, label_1=1.0),
    ]
    client = _admin_client(api_client, campaign)
    response = _post(client, campaign, pickapic_parquet(rows), "pairs.parquet", with_labels="true")
    assert response.status_code == 201, response.json()
    assert response.json()["judgments_created"] == 2
    dog = Judgment.objects.get(comparison__prompt__text="a dog")
    assert dog.answers == {"overall": rows[1]["image_1_uid"]}


def test_large_uploads_spooled_to_disk_import_the_same(api_client, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100  # every upload becomes a temporary file
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    assert _post(client, campaign, manifest_zip(prompts=1)).status_code == 201
    parquet = pickapic_parquet([pickapic_row("a hat")])
    assert _post(client, campaign, parquet, "p.parquet").status_code == 201
    assert Image.objects.count() == 4


def test_the_same_upload_twice_doubles_nothing(api_client):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    data = manifest_zip(prompts=1)
    assert _post(client, campaign, data).status_code == 201
    again = _post(client, campaign, data)
    assert again.status_code == 201
    assert (again.json()["images_created"], again.json()["images_existing"]) == (0, 2)
    assert Image.objects.count() == 2 and Prompt.objects.count() == 1


def test_bad_rows_come_back_together_and_nothing_is_left_behind(api_client, settings):
    campaign = CampaignFactory()
    rows = [
        {"prompt": "ok", "file": "ok.png", "model_name": "m"},
        {"prompt": "gone", "file": "gone.png", "model_name": "m"},
        {"prompt": "text", "file": "x.txt", "model_name": "m"},
    ]
    files = {"manifest.csv": manifest_csv(rows), "ok.png": png_bytes(), "x.txt": b"hi"}
    response = _post(_admin_client(api_client, campaign), campaign, zip_bytes(files))
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["detail"]) == ("invalid_rows", BAD_ROWS.format(count=2))
    assert [e["line"] for e in body["errors"]] == [3, 4]
    assert not Prompt.objects.exists() and not Image.objects.exists()
    assert _media_files(settings) == []


def test_it_refuses_a_file_that_is_neither_zip_nor_parquet(api_client):
    campaign = CampaignFactory()
    response = _post(_admin_client(api_client, campaign), campaign, png_bytes(), "a.png")
    assert response.status_code == 400
    assert response.json() == {"detail": UNKNOWN_SOURCE, "code": "unknown_format"}


def test_it_needs_a_file(api_client):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    response = client.post(_url(campaign), {"with_labels": "true"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "file" in response.json()["fields"]


def test_it_refuses_json_bodies(api_client):
    campaign = CampaignFactory()
    response = _admin_client(api_client, campaign).post(
        _url(campaign), {"file": "x"}, format="json"
    )
    assert response.status_code == 415


def test_it_refuses_other_methods(api_client):
    campaign = CampaignFactory()
    assert _admin_client(api_client, campaign).get(_url(campaign)).status_code == 405


def test_an_upload_over_the_limit_is_refused_with_413_before_it_is_read(api_client, settings):
    settings.PICKWISE_MAX_UPLOAD_BYTES = 1_000
    campaign = CampaignFactory()
    response = _post(_admin_client(api_client, campaign), campaign, b"PK\x03\x04" + bytes(200_000))
    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "too_large"
    assert body["detail"].startswith("The upload is ") and body["detail"].endswith(
        "bytes; the limit is 1000."
    )


def test_a_file_just_over_the_limit_is_refused_with_413(api_client, settings):
    settings.PICKWISE_MAX_UPLOAD_BYTES = 1_000
    campaign = CampaignFactory()
    response = _post(_admin_client(api_client, campaign), campaign, b"PK\x03\x04" + bytes(2_000))
    assert response.status_code == 413
    assert response.json()["detail"] == "The upload is 2004 bytes; the limit is 1000."


@pytest.mark.parametrize("who", ["anonymous", "annotator", "researcher", "site_researcher"])
def test_only_campaign_admins_may_import(api_client, who):
    campaign = CampaignFactory()
    api_client.force_authenticate(user_as(campaign, who))
    response = _post(api_client, campaign, manifest_zip(prompts=1))
    expected = (401, 403) if who == "anonymous" else (403,)
    assert response.status_code in expected
    assert not Image.objects.exists()


def test_a_non_member_cannot_tell_the_campaign_exists(api_client):
    campaign = CampaignFactory()
    api_client.force_authenticate(user_as(campaign, "outsider"))
    response = _post(api_client, campaign, manifest_zip(prompts=1))
    assert response.status_code == 404
    missing = CampaignFactory.build(pk=campaign.pk + 1000)
    assert _post(api_client, missing, manifest_zip(prompts=1)).status_code == 404
    assert not Image.objects.exists()


def test_another_campaigns_admin_is_a_non_member_here(api_client):
    mine, theirs = CampaignFactory(), CampaignFactory()
    client = _admin_client(api_client, theirs)
    assert _post(client, mine, manifest_zip(prompts=1)).status_code == 404
