"""The exports API: request, follow, download; and every way to be refused."""

import hashlib
from pathlib import Path

import pytest

from annotate.models import Membership
from annotate.services.campaigns import membership_set
from exports.models import Export
from exports.services import export_build
from tests.exports.helpers import build
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _researcher(campaign):
    user = UserFactory()
    membership_set(campaign=campaign, user=user, role=Membership.Role.RESEARCHER)
    return user


def _download(api_client, export, name, **headers):
    response = api_client.get(f"/api/exports/{export.pk}/files/{name}", **headers)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def test_a_researcher_requests_an_export_and_the_build_is_enqueued_on_commit(
    small_campaign, api_client, django_capture_on_commit_callbacks
):
    api_client.force_authenticate(_researcher(small_campaign))
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_client.post(
            "/api/exports/",
            {"campaign": small_campaign.pk, "format": "pickapic", "seed": 3},
            format="json",
        )
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["version"], body["seed"], body["criterion"]) == (
        "pending",
        1,
        3,
        "overall",
    )
    assert len(callbacks) == 1
    export = Export.objects.get(pk=body["id"])
    assert export.requested_by is not None and export.policy["states"] == ["active", "warned"]


def test_the_build_task_finishes_the_export_with_progress(small_campaign, api_client):
    from exports.tasks import export_build_task

    export = Export.objects.create(
        campaign=small_campaign, version=1, format="pickapic", policy={"states": ["active"]}
    )
    export_build_task(export.pk)
    api_client.force_authenticate(_researcher(small_campaign))
    body = api_client.get(f"/api/exports/{export.pk}/").json()
    assert body["status"] == "finished"
    assert body["progress"]["done"] == body["progress"]["total"] == 2 * 6
    assert body["manifest"]["export"] == {
        "id": export.pk,
        "version": 1,
        "format": "pickapic",
        "created_at": body["manifest"]["export"]["created_at"],
        "requested_by": None,
    }
    names = [f["name"] for f in body["files"]]
    assert "README.md" in names and "manifest.json" in names
    assert "data/train-00000-of-00001.parquet" in names
    # A second run of the task finds nothing to do: the export is immutable.
    export_build_task(export.pk)
    assert (
        Export.objects.get(pk=export.pk)
        .finished_at.isoformat()
        .startswith(body["finished_at"][:19])
    )


def test_files_download_streamed_with_their_manifest_hash(small_campaign, api_client):
    export = build(small_campaign)
    api_client.force_authenticate(_researcher(small_campaign))
    entry = next(f for f in export.manifest["files"] if f["name"].startswith("data/train-"))
    response, body = _download(api_client, export, entry["name"])
    assert response.status_code == 200 and response.streaming
    assert response["Accept-Ranges"] == "bytes"
    assert "attachment" in response["Content-Disposition"]
    assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    response, body = _download(api_client, export, entry["name"], HTTP_RANGE="bytes=4-11")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 4-11/{entry['size']}"
    assert body == Path(export.folder, entry["name"]).read_bytes()[4:12]
    response, body = _download(api_client, export, entry["name"], HTTP_RANGE="bytes=-4")
    assert response.status_code == 206 and body == b"PAR1"  # parquet's closing magic
    response, _ = _download(api_client, export, entry["name"], HTTP_RANGE="bytes=99999999-")
    assert response.status_code == 416
    response, body = _download(api_client, export, "manifest.json")
    assert response.status_code == 200 and b'"sha256"' in body


@pytest.mark.parametrize(
    "name",
    [
        "../../../../etc/passwd",
        "data/../manifest.json/../../secret",
        "data/nothing-00000-of-00001.parquet",
        "%2e%2e/%2e%2e/etc/passwd",
        "/etc/passwd",
    ],
)
def test_only_files_the_manifest_lists_can_be_downloaded(small_campaign, api_client, name):
    export = build(small_campaign)
    api_client.force_authenticate(_researcher(small_campaign))
    response, _ = _download(api_client, export, name)
    assert response.status_code == 404


def test_files_of_an_unfinished_export_are_not_served(small_campaign, api_client):
    export = Export.objects.create(campaign=small_campaign, version=1, format="pickapic")
    api_client.force_authenticate(_researcher(small_campaign))
    response, _ = _download(api_client, export, "README.md")
    assert response.status_code == 409
    assert response.json()["code"] == "not_finished"


def test_anonymous_requests_are_refused(small_campaign, api_client):
    export = build(small_campaign)
    for response in (
        api_client.post("/api/exports/", {"campaign": small_campaign.pk, "format": "pickapic"}),
        api_client.get(f"/api/exports/{export.pk}/"),
        api_client.get(f"/api/exports/{export.pk}/files/README.md"),
    ):
        assert response.status_code in (401, 403)
        assert response.json()["code"] == "not_authenticated"


def test_annotators_get_403_and_non_members_404(small_campaign, api_client):
    export = build(small_campaign)
    api_client.force_authenticate(annotator(small_campaign))
    post = {"campaign": small_campaign.pk, "format": "pickapic"}
    assert api_client.post("/api/exports/", post, format="json").status_code == 403
    assert api_client.get(f"/api/exports/{export.pk}/").status_code == 403
    assert api_client.get(f"/api/exports/{export.pk}/files/README.md").status_code == 403
    api_client.force_authenticate(UserFactory())
    assert api_client.post("/api/exports/", post, format="json").status_code == 404
    assert api_client.get(f"/api/exports/{export.pk}/").status_code == 404
    assert api_client.get(f"/api/exports/{export.pk}/files/README.md").status_code == 404
    api_client.force_authenticate(_researcher(small_campaign))
    assert api_client.get("/api/exports/999999/").status_code == 404
    assert api_client.get("/api/exports/999999/files/README.md").status_code == 404


def test_a_site_researcher_may_export_any_campaign(small_campaign, api_client):
    from django.contrib.auth.models import Group

    user = UserFactory()
    user.groups.add(Group.objects.get_or_create(name="researchers")[0])
    api_client.force_authenticate(user)
    response = api_client.post(
        "/api/exports/", {"campaign": small_campaign.pk, "format": "jsonl"}, format="json"
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"format": "csv"},
            "Unknown export format 'csv'; choose one of: pickapic, ranked, image_preference, jsonl.",
        ),
        (
            {"format": "pickapic", "criterion": "style"},
            "Campaign 'CAMPAIGN' has no criterion 'style'; it has: overall.",
        ),
        (
            {"format": "pickapic", "policy": {"states": ["blocked"]}},
            "policy.states must be a non-empty list of rater states from: qualifying, active, "
            "warned (blocked raters are never exported).",
        ),
        ({"format": "pickapic", "policy": {"colour": 1}}, "policy has unknown keys: colour."),
        (
            {"format": "pickapic", "splits": {"validation": 0.9}},
            "splits.validation must be a fraction of prompts between 0 and 0.5.",
        ),
        (
            {"format": "pickapic", "seed": -1},
            "seed: Ensure this value is greater than or equal to 0.",
        ),
        ({"format": "pickapic", "policy": "all"}, None),
        ({}, None),
    ],
)
def test_malformed_requests_get_400_with_a_reason(small_campaign, api_client, body, detail):
    api_client.force_authenticate(_researcher(small_campaign))
    response = api_client.post(
        "/api/exports/", {"campaign": small_campaign.pk, **body}, format="json"
    )
    assert response.status_code == 400
    if detail is not None:
        assert response.json()["detail"] == detail.replace("CAMPAIGN", small_campaign.slug)
    assert not Export.objects.exists()


def test_a_request_the_policy_leaves_empty_gets_400(db, api_client):
    campaign = campaign_with_comparisons(prompts=2)
    api_client.force_authenticate(_researcher(campaign))
    response = api_client.post(
        "/api/exports/", {"campaign": campaign.pk, "format": "pickapic"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "empty"
    assert response.json()["detail"] == (
        f"Nothing to export: no judgment of campaign '{campaign.slug}' is left after the policy "
        "(rater states active, warned, gold and repeats left out). Include more rater states, "
        "or wait for judgments."
    )


def test_an_export_whose_answers_are_all_both_bad_fails_with_the_counts(db):
    from exports.services import export_create
    from tests.exports.helpers import bulk_judge, constant

    campaign = campaign_with_comparisons(prompts=2)
    bulk_judge(campaign, [annotator(campaign)], constant("both_bad"))
    export = export_create(
        requested_by=None, campaign=campaign, format="image_preference", enqueue=False
    )
    export = export_build(export=export)
    assert export.status == Export.Status.FAILED
    assert export.error == (
        "Nothing to export: 2 judgment(s) considered, none left after the policy "
        "(left out: both_bad 2). Include more rater states (policy.states), or wait for judgments."
    )


def test_wrong_methods_get_405(small_campaign, api_client):
    export = build(small_campaign)
    api_client.force_authenticate(_researcher(small_campaign))
    assert api_client.get("/api/exports/").status_code == 405
    assert api_client.delete(f"/api/exports/{export.pk}/").status_code == 405
    assert api_client.put(f"/api/exports/{export.pk}/", {}).status_code == 405
    assert api_client.post(f"/api/exports/{export.pk}/files/README.md").status_code == 405
