"""The dashboard's job panels read the generation, export and training selectors."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from annotate.models import Membership
from annotate.quality.models import Rating
from annotate.services.campaigns import membership_set
from exports.models import Export
from frontend.panels import agreement_panel
from generation.models import GenerationJob, Generator
from tests.annotate.quality.crowd import prefers, run_crowd
from tests.factories import UserFactory, annotator, campaign_with_comparisons
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
    panels = {panel["key"]: panel for panel in response.context["jobs"]}
    assert panels["generation"]["rows"][0]["label"] == "tiny-sd"
    assert panels["exports"]["rows"][0] | {"created_at": None, "error": ""} == {
        "label": "pickapic v1",
        "status": "running",
        "done": 30,
        "total": 120,
        "percent": 25,
        "created_at": None,
        "error": "",
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
