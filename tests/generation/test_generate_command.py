"""manage.py generate: enqueue a job, or run it here with --sync; clear errors on bad input."""

import io

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Campaign, Comparison, Image
from generation.models import GenerationJob
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    campaign = CampaignFactory(slug="cats", status=Campaign.Status.DRAFT)
    PromptFactory(campaign=campaign)
    PromptFactory(campaign=campaign)
    return campaign


def test_sync_generates_compares_and_activates(campaign):
    GeneratorFactory(name="tiny-a")
    GeneratorFactory(name="tiny-b", guidance=2.0)
    out = io.StringIO()
    call_command(
        "generate", "--campaign", "cats", "--generator", "tiny-a", "--generator", "tiny-b",
        "--seeds", "1", "--gold", "1", "--sync", stdout=out,
    )  # fmt: skip

    job = GenerationJob.objects.get()
    assert job.status == "done"
    assert Image.objects.filter(source="generated").count() == 4
    assert Comparison.objects.filter(role="regular").count() == 2
    assert Comparison.objects.filter(role="gold").count() == 1
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE
    text = out.getvalue()
    assert f"Job {job.pk}: 4 images (2 generators x 1 seeds x 2 prompts)." in text
    assert f"Job {job.pk} done: 4 images, 0 failed, 2 comparisons, 1 gold." in text


def test_without_sync_the_job_is_enqueued_after_commit(
    campaign, django_capture_on_commit_callbacks
):
    GeneratorFactory(name="tiny-a")
    out = io.StringIO()
    with django_capture_on_commit_callbacks() as on_commit:
        call_command("generate", "--campaign", "cats", "--seeds", "2", stdout=out)
    job = GenerationJob.objects.get()
    assert (job.status, job.items.count(), len(on_commit)) == ("pending", 4, 1)
    assert "Enqueued on the generate queue" in out.getvalue()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--campaign", "dogs"], "No campaign with slug 'dogs'."),
        (["--campaign", "cats", "--generator", "sdxl"], "Unknown generators: sdxl."),
        (["--campaign", "cats", "--seeds", "0"], "seeds_per_prompt must be a whole number"),
        ([], "--campaign SLUG is required."),
    ],
)
def test_bad_input_is_a_clear_error(campaign, arguments, message):
    GeneratorFactory(name="tiny-a")
    with pytest.raises(CommandError, match=message):
        call_command("generate", *arguments, stdout=io.StringIO())
    assert not GenerationJob.objects.exists()


def test_a_bad_spec_fails_the_sync_run_clearly(campaign):
    GeneratorFactory(name="broken", pipeline_class="NoSuchPipeline")
    err = io.StringIO()
    with pytest.raises(CommandError, match="No image could be generated."):
        call_command("generate", "--campaign", "cats", "--sync", stdout=io.StringIO(), stderr=err)
    assert "diffusers has no pipeline class NoSuchPipeline." in err.getvalue()
