"""The seed_demo hook: tiny-model images, comparisons and gold for a demo campaign."""

import pytest

from annotate.models import Campaign, Comparison, Image
from generation.demo import demo_generate
from generation.models import Generator
from tests.factories import CampaignFactory, PromptFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_demo_generate_renders_the_campaign_with_distinct_tiny_models(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    campaign = CampaignFactory(status=Campaign.Status.GENERATING)
    for _ in range(2):
        PromptFactory(campaign=campaign)

    assert demo_generate(campaign=campaign, models=["tiny-sd-a", "tiny-sd-b"], seeds_per_prompt=1)

    assert (tmp_path / "var" / "models" / "tiny-sd" / "model_index.json").exists()
    a, b = Generator.objects.order_by("name")
    assert (a.name, b.name) == ("tiny-sd-a", "tiny-sd-b")
    assert (a.guidance, a.scheduler) != (b.guidance, b.scheduler)
    images = Image.objects.filter(source="generated")
    assert images.count() == 4
    assert {image.width for image in images} == {64}
    # Same prompt, same seed, different model: different pixels.
    assert len(set(images.values_list("sha256", flat=True))) == 4
    assert Comparison.objects.filter(role="regular").count() == 2
    assert Comparison.objects.filter(role="gold").exists()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE
