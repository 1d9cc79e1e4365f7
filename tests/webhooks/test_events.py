"""Which events become deliveries, for which endpoints, and the batching of judgments."""

import io
import json

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Membership
from annotate.quality.services import rater_gate_override
from annotate.services.image_imports.jobs import image_import_create, image_import_run
from exports.services import export_build, export_create
from generation.models import GenerationJob
from generation.services.completion import generation_job_finish_if_complete
from tests.exports.helpers import build, bulk_judge, constant, judge_all, prefer_models
from tests.factories import CampaignFactory, annotator, campaign_with_comparisons, manifest_zip
from tests.training.jobs_support import TINY_OPTIONS, finished_export
from training.models import TrainingJob
from training.services.jobs import training_job_create
from training.services.runs import training_job_claim, training_run_end
from webhooks.models import WebhookDelivery
from webhooks.services import (
    webhook_campaigns_completed_emit,
    webhook_create,
    webhook_judgment_batches_emit,
)

pytestmark = pytest.mark.django_db
URL = "https://receiver.example.org/hook"


@pytest.fixture(autouse=True)
def _exports_in_tmp(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.TRAINING_ROOT = tmp_path / "training"


def bodies(event: str) -> list[dict]:
    return [json.loads(d.body) for d in WebhookDelivery.objects.filter(event=event).order_by("id")]


def test_new_judgments_go_out_as_one_batch_per_endpoint_and_campaign():
    one = campaign_with_comparisons(prompts=3, models=("model-a", "model-b"))
    two = campaign_with_comparisons(prompts=2, models=("model-a", "model-b"))
    bulk_judge(one, [annotator(one)], constant("tie"))  # before the endpoints: not announced
    own = webhook_create(url=URL, events=["judgment.batch"], campaign=one)
    site = webhook_create(url=URL, events=[], campaign=None)
    other = webhook_create(url=URL + "/exports", events=["export.finished"], campaign=one)
    judged = bulk_judge(one, [annotator(one), annotator(one)], prefer_models("model-a", "model-b"))
    judged += bulk_judge(two, [annotator(two)], constant("tie"))

    assert webhook_judgment_batches_emit() == 3  # own: one; site: one per campaign
    assert webhook_judgment_batches_emit() == 0  # nothing new: nothing sent
    sent = WebhookDelivery.objects.filter(event="judgment.batch")
    assert sorted((d.webhook_id, json.loads(d.body)["data"]["count"]) for d in sent) == sorted(
        [(own.pk, 6), (site.pk, 6), (site.pk, 2)]
    )
    assert not WebhookDelivery.objects.filter(webhook=other).exists()
    ids = {j["id"] for body in bodies("judgment.batch") for j in body["data"]["judgments"]}
    assert ids == {j.pk for j in judged}


def test_a_batch_holds_at_most_the_limit_and_the_rest_follows(settings):
    settings.WEBHOOK_JUDGMENT_BATCH_MAX = 4
    campaign = campaign_with_comparisons(prompts=3, models=("model-a", "model-b"))
    webhook_create(url=URL, events=["judgment.batch"], campaign=campaign)
    bulk_judge(campaign, [annotator(campaign), annotator(campaign)], constant("tie"))

    assert [webhook_judgment_batches_emit() for _ in range(3)] == [1, 1, 0]
    assert [b["data"]["count"] for b in bodies("judgment.batch")] == [4, 2]


def test_a_finished_export_is_announced_to_its_campaigns_endpoints_only():
    campaign = campaign_with_comparisons(prompts=3, models=("model-a", "model-b"))
    elsewhere = campaign_with_comparisons(prompts=1)
    bulk_judge(campaign, [annotator(campaign)], prefer_models("model-a", "model-b"))
    wanted = webhook_create(url=URL, events=["export.finished"], campaign=campaign)
    webhook_create(url=URL, events=["export.finished"], campaign=elsewhere)
    webhook_create(url=URL + "/training", events=["training_job.finished"], campaign=campaign)

    export = build(campaign)
    (body,) = bodies("export.finished")
    assert WebhookDelivery.objects.get().webhook == wanted
    assert body["data"]["export"] == export.pk
    assert body["data"]["status"] == "finished"
    assert body["campaign"]["slug"] == campaign.slug


def test_a_failed_export_is_announced_with_its_error():
    campaign = campaign_with_comparisons(prompts=2)
    bulk_judge(campaign, [annotator(campaign)], constant("both_bad"))
    webhook_create(url=URL, events=["export.failed"], campaign=campaign)

    export = export_create(
        requested_by=None, campaign=campaign, format="image_preference", enqueue=False
    )
    export = export_build(export=export)  # every answer is both_bad: nothing to write
    assert export.status == "failed"
    (body,) = bodies("export.failed")
    assert body["data"]["error"] == export.error


@pytest.mark.parametrize(
    ("status", "event"), [("done", "training_job.finished"), ("failed", "training_job.failed")]
)
def test_a_training_job_that_ends_is_announced(pipeline_layout, status, event):
    export = finished_export(prompts=4)
    webhook_create(url=URL, events=[event], campaign=export.campaign)
    job = training_job_create(export=export, pretrained=str(pipeline_layout), options=TINY_OPTIONS)
    claimed = training_job_claim(job_id=job.pk, worker="w")

    assert training_run_end(job=claimed, status=status, error="boom" if status == "failed" else "")
    (body,) = bodies(event)
    assert body["data"]["training_job"] == job.pk
    assert TrainingJob.objects.get(pk=job.pk).status == status


@pytest.fixture
def pipeline_layout(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    return folder


def test_the_admin_action_sends_a_test_event(client):
    campaign = campaign_with_comparisons(prompts=1)
    webhook = webhook_create(url=URL, events=["export.finished"], campaign=campaign)
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw-long-1234")
    client.force_login(admin)

    response = client.post(
        "/admin/webhooks/webhook/",
        {"action": "send_test_event", "_selected_action": [webhook.pk]},
    )
    assert response.status_code == 302
    (body,) = bodies("ping")
    assert body["data"]["message"].startswith("A test event")
    assert client.get("/admin/webhooks/webhookdelivery/").status_code == 200


def test_blocking_and_unblocking_a_rater_is_announced_with_their_key():
    campaign = campaign_with_comparisons(prompts=2)
    rater = annotator(campaign)
    admin = annotator(campaign)
    webhook_create(url=URL, events=["rater.blocked", "rater.unblocked"], campaign=campaign)

    rater_gate_override(campaign=campaign, user=rater, state="blocked", reason="spam", by=admin)
    rater_gate_override(campaign=campaign, user=rater, state="warned", reason="ok", by=admin)
    rater_gate_override(campaign=campaign, user=rater, state="active", reason="fine", by=admin)

    key = Membership.objects.get(campaign=campaign, user=rater).rater_key
    (blocked,) = bodies("rater.blocked")
    (unblocked,) = bodies("rater.unblocked")  # warned -> active is not announced
    assert (blocked["data"]["rater"], blocked["data"]["reason"]) == (key, "spam")
    assert (unblocked["data"]["from"], unblocked["data"]["to"]) == ("blocked", "warned")
    assert rater.username not in json.dumps(blocked)


def test_a_generation_job_that_made_nothing_is_announced_as_failed():
    campaign = campaign_with_comparisons(prompts=1)
    webhook_create(url=URL, events=["generation_job.failed"], campaign=campaign)
    job = GenerationJob.objects.create(
        campaign=campaign, seeds_per_prompt=1, status=GenerationJob.Status.RUNNING
    )

    assert generation_job_finish_if_complete(job_id=job.pk)
    (body,) = bodies("generation_job.failed")
    assert (body["data"]["generation_job"], body["data"]["status"]) == (job.pk, "failed")


def test_an_image_import_that_ends_is_announced(settings, tmp_path):
    settings.IMPORT_ROOT = tmp_path / "imports"
    campaign = CampaignFactory()
    webhook_create(url=URL, events=["image_import.finished"], campaign=campaign)
    job = image_import_create(
        campaign=campaign, upload=io.BytesIO(manifest_zip(prompts=1)), file_name="a.zip"
    )

    assert image_import_run(job_id=job.pk, worker="w") == "succeeded"
    (body,) = bodies("image_import.finished")
    assert body["data"]["image_import"] == job.pk
    assert body["data"]["counts"]


def test_a_campaign_whose_comparisons_are_all_judged_is_announced_once():
    campaign = campaign_with_comparisons(prompts=2, models=("model-a", "model-b"), overlap=1)
    webhook_create(url=URL, events=["campaign.completed"], campaign=campaign)
    site = webhook_create(url=URL, events=["campaign.completed"], campaign=None)

    assert webhook_campaigns_completed_emit() == 0  # nothing judged yet
    judge_all(campaign, [annotator(campaign)], constant("tie"))
    assert webhook_campaigns_completed_emit() == 2  # its endpoint and the site-wide one
    assert webhook_campaigns_completed_emit() == 0
    assert {d.webhook_id for d in WebhookDelivery.objects.filter(event="campaign.completed")} >= {
        site.pk
    }
