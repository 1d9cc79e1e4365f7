"""The dashboard's job panels read the generation, export and training selectors."""

import pytest
from django.urls import reverse

from annotate.models import Membership
from annotate.services.campaigns import membership_set
from exports.models import Export
from generation.models import GenerationJob, Generator
from tests.factories import UserFactory, campaign_with_comparisons
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
