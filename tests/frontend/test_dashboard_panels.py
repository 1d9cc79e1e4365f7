"""The dashboard's job panels read the generation, export and training selectors."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from annotate.models import ImageImport, Membership
from annotate.quality.active import leaderboard_precision
from annotate.quality.models import Rating
from annotate.quality.selectors import model_leaderboard
from annotate.services.campaigns import membership_set
from exports.models import Export
from frontend.panels import agreement_panel
from generation.models import GenerationJob, Generator
from tests.annotate.quality.crowd import prefers, run_crowd
from tests.factories import UserFactory, annotator, campaign_with_comparisons, user_as
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_generation_export_and_training_progress(client):
    campaign = campaign_with_comparisons(prompts=2)
    researcher = UserFactory()
    membership_set(campaign=campaign, user=researcher, role=Membership.Role.RESEARCHER)
    generator = Generator.objects.create(name="tiny-sd", source="/models/tiny")
    job = GenerationJob.objects.create(campaign=campaign, seeds_per_prompt=2)
    job.generators.add(generator)
    export = Export.objects.create(
        campaign=campaign,
        version=1,
        format="pickapic",
        status="running",
        progress_done=30,
        progress_total=120,
    )
    job = TrainingJob.objects.create(
        export=export,
        pretrained="/models/tiny",
        name="dpo-lora-1",
        status="running",
        step=25,
        max_steps=100,
        latest_metrics={"loss": 0.6931},
    )
    client.force_login(researcher)
    response = client.get(reverse("frontend:dashboard", args=[campaign.pk]))
    panels = {panel["key"]: panel for panel in response.context["jobs"]["panels"]}
    assert panels["generation"]["rows"][0]["label"] == "tiny-sd"
    assert panels["exports"]["rows"][0] | {"created_at": None, "error": ""} == {
        "label": "pickapic v1",
        "status": "running",
        "done": 30,
        "total": 120,
        "percent": 25,
        "created_at": None,
        "error": "",
        "active": True,
        "links": [],  # files appear once the export has finished
        "action": None,  # only a finished export offers fine-tuning
    }
    training = panels["training"]["rows"][0]
    assert (training["label"], training["percent"]) == ("dpo-lora-1", 25)
    assert training["action"]["url"] == reverse("frontend:training-job", args=[job.pk])
    assert b"loss 0.6931" in response.content
    # Researchers read; only admins get the block and unblock forms.
    assert not response.context["may_manage"]


def test_the_agreement_chart_gets_unix_seconds_of_each_windows_last_rating():
    campaign = campaign_with_comparisons(prompts=10, overlap=2, qc_policy={"alpha_window_units": 4})
    run_crowd(campaign, [(annotator(campaign), prefers("model-a")) for _ in range(2)])
    start = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    units = Rating.objects.filter(campaign=campaign).values_list("comparison", flat=True)
    for k, comparison in enumerate(sorted(set(units))):
        Rating.objects.filter(comparison=comparison).update(created_at=start + timedelta(minutes=k))
    (series,) = agreement_panel(campaign=campaign)["series"]
    # Windows of 4 units end at units 3, 7 and 9: seconds, not milliseconds.
    assert series["x"] == [(start + timedelta(minutes=k)).timestamp() for k in (3, 7, 9)]
    assert series["x"][0] == 1748772180.0


def _jobs_html(client, campaign) -> str:
    response = client.get(reverse("frontend:dashboard-jobs", args=[campaign.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_job_panels_poll_while_a_job_runs_and_stop_with_the_finished_state(client):
    campaign = campaign_with_comparisons(prompts=2)
    researcher = UserFactory()
    membership_set(campaign=campaign, user=researcher, role=Membership.Role.RESEARCHER)
    client.force_login(researcher)
    assert "hx-trigger" not in _jobs_html(client, campaign)  # nothing running, nothing polled

    job = GenerationJob.objects.create(campaign=campaign, seeds_per_prompt=2)
    job.generators.add(Generator.objects.create(name="sketch-x", source="procedural:faithful"))
    html = _jobs_html(client, campaign)
    assert 'hx-trigger="every 3s"' in html and 'data-status="pending"' in html

    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.DONE)
    export = Export.objects.create(
        campaign=campaign,
        version=1,
        format="pickapic",
        status="finished",
        manifest={"files": [{"name": "data/train-00000.parquet", "size": 10, "sha256": "ab"}]},
    )
    html = _jobs_html(client, campaign)
    assert "hx-trigger" not in html and 'data-status="done"' in html
    file_url = reverse("exports:file", args=[export.pk, "data/train-00000.parquet"])
    assert f'href="{file_url}"' in html
    assert reverse("frontend:training-start", args=[export.pk]) in html


@pytest.mark.parametrize(("format", "trainable"), [("ranked", True), ("jsonl", False)])
def test_a_finished_export_links_to_fine_tuning_only_in_a_format_the_trainer_reads(
    client, format, trainable
):
    campaign = campaign_with_comparisons(prompts=2)
    researcher = UserFactory()
    membership_set(campaign=campaign, user=researcher, role=Membership.Role.RESEARCHER)
    client.force_login(researcher)
    export = Export.objects.create(
        campaign=campaign, version=1, format=format, status="finished", manifest={"files": []}
    )
    train_url = reverse("frontend:training-start", args=[export.pk])
    assert (train_url in _jobs_html(client, campaign)) is trainable


def test_image_imports_have_their_own_panel(client):
    campaign = campaign_with_comparisons(prompts=1)
    admin = UserFactory()
    membership_set(campaign=campaign, user=admin, role=Membership.Role.ADMIN)
    ImageImport.objects.create(
        campaign=campaign,
        file_name="batch.zip",
        size=10,
        sha256="0" * 64,
        kind="zip",
        status="running",
        phase="checking",
        progress_done=3,
        progress_total=12,
    )
    client.force_login(admin)
    html = _jobs_html(client, campaign)
    assert "Image imports" in html and "batch.zip" in html and "3 of 12" in html
    assert 'hx-trigger="every 3s"' in html


@pytest.mark.parametrize(("who", "status"), [("annotator", 403), ("outsider", 404)])
def test_job_panels_are_hidden_from_annotators_and_outsiders(client, who, status):
    campaign = campaign_with_comparisons(prompts=1)
    client.force_login(user_as(campaign, who))
    assert client.get(reverse("frontend:dashboard-jobs", args=[campaign.pk])).status_code == status
    assert client.post(reverse("frontend:dashboard-jobs", args=[campaign.pk])).status_code in (
        405,
        status,
    )


def test_anonymous_visitors_of_job_panels_are_sent_to_log_in(client):
    campaign = campaign_with_comparisons(prompts=1)
    response = client.get(reverse("frontend:dashboard-jobs", args=[campaign.pk]))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_dashboard_says_how_many_judgments_a_comparison_gets(client):
    fixed = campaign_with_comparisons(prompts=1, overlap=4)
    dynamic = campaign_with_comparisons(prompts=1, dynamic_overlap=True, min_raters=2, max_raters=6)
    client.force_login(UserFactory(is_superuser=True))
    page = client.get(reverse("frontend:dashboard", args=[fixed.pk])).content.decode()
    assert "4 judgments per comparison" in page
    page = client.get(reverse("frontend:dashboard", args=[dynamic.pk])).content.decode()
    assert "2 to 6 judgments per comparison (dynamic overlap)" in page


@pytest.mark.parametrize("active", [False, True])
def test_the_leaderboard_shows_its_widest_interval_and_the_judgments_still_needed(client, active):
    campaign = campaign_with_comparisons(
        prompts=4, models=("m-a", "m-b", "m-c"), overlap=2, active_sampling=active
    )

    def either(assignment, models, rng):  # no preference: wide intervals
        return {"overall": rng.choice(assignment.presented)}

    run_crowd(campaign, [(annotator(campaign), either) for _ in range(2)])
    client.force_login(user_as(campaign, "researcher"))
    html = client.get(reverse("frontend:dashboard", args=[campaign.pk])).content.decode()
    precision = leaderboard_precision(model_leaderboard(campaign=campaign))
    assert precision["judgments"] == 24 and precision["more"] > 0
    assert (
        f"Widest interval ±{precision['half_width']:.2f} after 24 judgments." in html
        and f"About {precision['more']} more judgments to bring every model within ±0.20." in html
    )
    assert ("Active sampling is on" in html) is active
