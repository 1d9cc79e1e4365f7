"""A sampled pairwise design pairs images of the same seed first."""

import pytest

from annotate.models import Comparison, Image
from annotate.services.comparisons import comparisons_build_for_campaign
from annotate.services.images import image_create
from tests.factories import CampaignFactory, PromptFactory, png_bytes

pytestmark = pytest.mark.django_db


def _draw(prompt, model: str, seed: int) -> Image:
    image, _ = image_create(
        prompt=prompt,
        data=png_bytes(),
        source=Image.Source.GENERATED,
        model_name=model,
        seed=seed,
    )
    return image


@pytest.mark.parametrize("prompts", [1, 5])
def test_one_pair_per_seed_pairs_the_models_at_each_seed(prompts):
    campaign = CampaignFactory(pairs_per_prompt=3)
    for _ in range(prompts):
        prompt = PromptFactory(campaign=campaign)
        for seed in (11, 22, 33):
            _draw(prompt, "base", seed)
            _draw(prompt, "tuned", seed)
    comparisons_build_for_campaign(campaign=campaign)
    comparisons = Comparison.objects.filter(campaign=campaign)
    assert comparisons.count() == 3 * prompts  # of 9 cross-model pairs per prompt
    for comparison in comparisons:
        images = list(comparison.images.all())
        assert {i.model_name for i in images} == {"base", "tuned"}
        assert len({i.seed for i in images}) == 1


def test_pairs_beyond_the_same_seed_ones_are_filled_from_the_rest():
    campaign = CampaignFactory(pairs_per_prompt=3)
    prompt = PromptFactory(campaign=campaign)
    _draw(prompt, "base", 1)
    _draw(prompt, "tuned", 1)
    _draw(prompt, "tuned", 2)
    _draw(prompt, "other", 3)
    comparisons_build_for_campaign(campaign=campaign)
    pairs = [
        sorted((i.model_name, i.seed) for i in c.images.all())
        for c in Comparison.objects.filter(campaign=campaign)
    ]
    assert len(pairs) == 3 and [("base", 1), ("tuned", 1)] in pairs
