"""The images import API: cheap checks at once (202 with a job), the rest by the job.

Jobs are run here by calling the service the worker calls (image_import_run); the queue
itself is exercised in test_image_import_worker.py.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotate.models import Image, ImageImport, Judgment, Prompt
from annotate.services.image_imports.jobs import (
    DUPLICATE_UPLOAD,
    UPLOAD_MISSING,
    image_import_run,
)
from annotate.services.image_imports.messages import (
    ARCHIVE_TOO_LARGE,
    BAD_ROWS,
    NO_MANIFEST,
    NOT_A_ZIP,
    PARQUET_COLUMNS,
    TOO_MANY_MEMBERS,
    UNKNOWN_SOURCE,
)
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


def _run(client, response) -> dict:
    """Run the accepted job as the worker would; returns what GET shows afterwards."""
    assert response.status_code == 202, response.json()
    image_import_run(job_id=response.json()["id"], worker="test")
    shown = client.get(response.json()["url"])
    assert shown.status_code == 200
    return shown.json()


def _media_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _kept_uploads(settings) -> list:
    root = settings.IMPORT_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_an_upload_is_accepted_as_a_pending_job_and_queued_on_commit(
    api_client, django_capture_on_commit_callbacks, settings
):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    with django_capture_on_commit_callbacks() as callbacks:
        response = _post(client, campaign, manifest_zip(prompts=2), "mine.zip")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "pending" and body["file_name"] == "mine.zip"
    assert body["kind"] == "zip" and body["url"] == f"/api/image-imports/{body['id']}/"
    assert response["Location"] == body["url"]
    assert len(callbacks) == 1  # the task is sent once the job is committed
    assert not Image.objects.exists()  # nothing is written in the request
    kept = _kept_uploads(settings)
    assert len(kept) == 1 and not kept[0].is_relative_to(settings.MEDIA_ROOT)


def test_an_admin_imports_a_zip_and_the_job_shows_the_counts(api_client, settings):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    job = _run(client, _post(client, campaign, manifest_zip(prompts=2)))
    assert job["status"] == "succeeded", job
    counts = job["counts"]
    assert (counts["prompts_created"], counts["images_created"], counts["comparisons_created"]) == (
        2,
        4,
        2,
    )
    assert job["progress"]["done"] == job["progress"]["total"] == 4
    assert job["finished_at"] and job["error"] == "" and job["errors"] == []
    assert Image.objects.filter(prompt__campaign=campaign).count() == 4
    assert _kept_uploads(settings) == []  # the upload is removed when the job ends


def test_an_admin_imports_a_parquet_file_with_labels(api_client):
    campaign = CampaignFactory()
    rows = [
        pickapic_row("a cat", user_id=1),
        pickapic_row("a dog", user_id=2, label_0=0.0, label_1=1.0),
    ]
    client = _admin_client(api_client, campaign)
    response = _post(client, campaign, pickapic_parquet(rows), "pairs.parquet", with_labels="true")
    job = _run(client, response)
    assert job["status"] == "succeeded" and job["with_labels"] is True
    assert job["counts"]["judgments_created"] == 2
    dog = Judgment.objects.get(comparison__prompt__text="a dog")
    assert dog.answers == {"overall": rows[1]["image_1_uid"]}


def test_large_uploads_spooled_to_disk_import_the_same(api_client, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100  # every upload becomes a temporary file
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    assert _run(client, _post(client, campaign, manifest_zip(prompts=1)))["status"] == "succeeded"
    parquet = pickapic_parquet([pickapic_row("a hat")])
    assert _run(client, _post(client, campaign, parquet, "p.parquet"))["status"] == "succeeded"
    assert Image.objects.count() == 4


def test_the_same_file_while_its_first_import_is_pending_is_a_duplicate(api_client, settings):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    data = manifest_zip(prompts=1)
    first = _post(client, campaign, data)
    assert first.status_code == 202
    again = _post(client, campaign, data, "renamed.zip")
    assert again.status_code == 409
    assert again.json() == {
        "detail": DUPLICATE_UPLOAD.format(id=first.json()["id"]),
        "code": "duplicate",
        "import": first.json()["id"],
    }
    assert ImageImport.objects.count() == 1 and len(_kept_uploads(settings)) == 1
    # Another campaign may import the same file at the same time.
    other = CampaignFactory()
    assert _post(_admin_client(api_client, other), other, data).status_code == 202


def test_the_same_file_is_accepted_again_when_the_pending_imports_upload_is_gone(
    api_client, settings
):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    data = manifest_zip(prompts=1)
    first = _post(client, campaign, data)
    assert first.status_code == 202
    for kept in _kept_uploads(settings):
        kept.unlink()  # cleaned away while the job waited for a worker

    again = _post(client, campaign, data)
    assert again.status_code == 202, again.json()
    lost = ImageImport.objects.get(pk=first.json()["id"])
    assert (lost.status, lost.error_code, lost.error) == (
        "failed",
        "upload_missing",
        UPLOAD_MISSING,
    )
    assert _run(client, again)["status"] == "succeeded"
    assert Image.objects.count() == 2


def test_the_same_upload_again_after_it_finished_doubles_nothing(api_client):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    data = manifest_zip(prompts=1)
    assert _run(client, _post(client, campaign, data))["status"] == "succeeded"
    again = _run(client, _post(client, campaign, data))
    assert again["status"] == "succeeded"
    assert (again["counts"]["images_created"], again["counts"]["images_existing"]) == (0, 2)
    assert Image.objects.count() == 2 and Prompt.objects.count() == 1


def test_bad_rows_fail_the_job_with_their_lines_and_nothing_is_left_behind(api_client, settings):
    campaign = CampaignFactory()
    rows = [
        {"prompt": "ok", "file": "ok.png", "model_name": "m"},
        {"prompt": "gone", "file": "gone.png", "model_name": "m"},
        {"prompt": "text", "file": "x.txt", "model_name": "m"},
    ]
    files = {"manifest.csv": manifest_csv(rows), "ok.png": png_bytes(), "x.txt": b"hi"}
    client = _admin_client(api_client, campaign)
    job = _run(client, _post(client, campaign, zip_bytes(files)))
    assert job["status"] == "failed"
    assert (job["error_code"], job["error"]) == ("invalid_rows", BAD_ROWS.format(count=2))
    assert [e["line"] for e in job["errors"]] == [3, 4]
    assert not Prompt.objects.exists() and not Image.objects.exists()
    assert _media_files(settings) == [] and _kept_uploads(settings) == []


def test_bad_parquet_rows_fail_the_job_with_their_row_indexes(api_client):
    campaign = CampaignFactory()
    rows = [pickapic_row("fine"), pickapic_row("broken", jpg_1=b"not an image")]
    client = _admin_client(api_client, campaign)
    job = _run(client, _post(client, campaign, pickapic_parquet(rows), "p.parquet"))
    assert job["status"] == "failed"
    assert [e["row"] for e in job["errors"]] == [1]
    assert not Image.objects.exists()


def test_a_job_runs_once_however_often_it_is_delivered(api_client):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    response = _post(client, campaign, manifest_zip(prompts=1))
    job_id = response.json()["id"]
    assert image_import_run(job_id=job_id, worker="a") == "succeeded"
    assert image_import_run(job_id=job_id, worker="b") == ""  # not pending any more
    job = ImageImport.objects.get(pk=job_id)
    assert (job.status, job.attempts, job.worker) == ("succeeded", 1, "a")
    assert Image.objects.count() == 2


@pytest.mark.parametrize(
    ("data", "name", "detail"),
    [
        (png_bytes(), "a.png", UNKNOWN_SOURCE),
        (b"PK\x03\x04 this is not really a zip", "broken.zip", NOT_A_ZIP),
        (zip_bytes({"a.png": png_bytes()}), "no-manifest.zip", NO_MANIFEST),
        (b"PAR1 not really parquet PAR1", "broken.parquet", None),
    ],
)
def test_malformed_uploads_are_refused_at_once_and_nothing_is_kept(
    api_client, settings, data, name, detail
):
    campaign = CampaignFactory()
    response = _post(_admin_client(api_client, campaign), campaign, data, name)
    assert response.status_code == 400, response.json()
    if detail is not None:
        assert response.json()["detail"] == detail
    assert not ImageImport.objects.exists() and _kept_uploads(settings) == []


def test_a_parquet_file_without_its_columns_is_refused_at_once(api_client):
    campaign = CampaignFactory()
    parquet = pickapic_parquet([pickapic_row()], drop=("jpg_1",))
    response = _post(_admin_client(api_client, campaign), campaign, parquet, "p.parquet")
    assert response.status_code == 400
    assert response.json()["detail"] == PARQUET_COLUMNS.format(missing="jpg_1")


def test_an_archive_with_too_many_members_is_refused_at_once(api_client, settings):
    settings.PICKWISE_MAX_ARCHIVE_MEMBERS = 3
    campaign = CampaignFactory()
    response = _post(_admin_client(api_client, campaign), campaign, manifest_zip(prompts=2))
    assert response.status_code == 400
    assert response.json()["detail"] == TOO_MANY_MEMBERS.format(count=5, limit=3)
    assert not ImageImport.objects.exists()


def test_an_archive_that_expands_past_the_limit_is_refused_at_once(api_client, settings):
    data = zip_bytes({"manifest.csv": b"prompt,file,model_name\n", "zeros.bin": bytes(50_000)})
    settings.PICKWISE_MAX_UPLOAD_BYTES = 10_000
    assert len(data) < 10_000
    campaign = CampaignFactory()
    response = _post(_admin_client(api_client, campaign), campaign, data)
    assert response.status_code == 413
    assert response.json()["detail"].startswith(ARCHIVE_TOO_LARGE.split("{")[0])
    assert not ImageImport.objects.exists()


def test_labels_need_a_parquet_file(api_client):
    campaign = CampaignFactory()
    client = _admin_client(api_client, campaign)
    response = _post(client, campaign, manifest_zip(prompts=1), with_labels="true")
    assert response.status_code == 400 and not ImageImport.objects.exists()


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
    client = _admin_client(api_client, campaign)
    assert client.get(_url(campaign)).status_code == 405
    job = _post(client, campaign, manifest_zip(prompts=1)).json()
    assert client.post(job["url"]).status_code == 405
    assert client.delete(job["url"]).status_code == 405


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
    assert not ImageImport.objects.exists() and _kept_uploads(settings) == []


def test_a_file_just_over_the_limit_is_refused_with_413(api_client, settings):
    settings.PICKWISE_MAX_UPLOAD_BYTES = 1_000
    campaign = CampaignFactory()
    response = _post(_admin_client(api_client, campaign), campaign, b"PK\x03\x04" + bytes(2_000))
    assert response.status_code == 413
    assert response.json()["detail"] == "The upload is 2004 bytes; the limit is 1000."


@pytest.mark.parametrize("who", ["anonymous", "annotator", "researcher", "site_researcher"])
def test_only_campaign_admins_may_import(api_client, who, settings):
    campaign = CampaignFactory()
    api_client.force_authenticate(user_as(campaign, who))
    response = _post(api_client, campaign, manifest_zip(prompts=1))
    expected = (401, 403) if who == "anonymous" else (403,)
    assert response.status_code in expected
    assert not ImageImport.objects.exists() and _kept_uploads(settings) == []


def test_a_non_member_cannot_tell_the_campaign_exists(api_client):
    campaign = CampaignFactory()
    api_client.force_authenticate(user_as(campaign, "outsider"))
    response = _post(api_client, campaign, manifest_zip(prompts=1))
    assert response.status_code == 404
    missing = CampaignFactory.build(pk=campaign.pk + 1000)
    assert _post(api_client, missing, manifest_zip(prompts=1)).status_code == 404
    assert not ImageImport.objects.exists()


def test_another_campaigns_admin_is_a_non_member_here(api_client):
    mine, theirs = CampaignFactory(), CampaignFactory()
    client = _admin_client(api_client, theirs)
    assert _post(client, mine, manifest_zip(prompts=1)).status_code == 404


# Following a job --------------------------------------------------------------------------


def _job_of(api_client, campaign) -> str:
    response = _post(_admin_client(api_client, campaign), campaign, manifest_zip(prompts=1))
    api_client.force_authenticate(None)
    return response.json()["url"]


@pytest.mark.parametrize("who", ["admin", "researcher", "site_researcher"])
def test_the_campaigns_admins_and_researchers_may_follow_a_job(api_client, who):
    campaign = CampaignFactory()
    url = _job_of(api_client, campaign)
    api_client.force_authenticate(user_as(campaign, who))
    response = api_client.get(url)
    assert response.status_code == 200
    assert response.json()["status"] == "pending"


@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", (401, 403)), ("annotator", (403,)), ("outsider", (404,))]
)
def test_others_may_not_follow_a_job(api_client, who, status):
    campaign = CampaignFactory()
    url = _job_of(api_client, campaign)
    api_client.force_authenticate(user_as(campaign, who))
    response = api_client.get(url)
    assert response.status_code in status
    assert "counts" not in response.json()


def test_another_campaigns_admin_cannot_see_a_job_nor_tell_it_exists(api_client):
    mine, theirs = CampaignFactory(), CampaignFactory()
    url = _job_of(api_client, mine)
    api_client.force_authenticate(user_as(theirs, "admin"))
    assert api_client.get(url).status_code == 404
    assert api_client.get("/api/image-imports/999999/").status_code == 404
