import pytest

from tests.exports.helpers import bulk_judge, constant, prefer_models
from tests.factories import annotator, campaign_with_comparisons


@pytest.fixture(autouse=True)
def _exports_in_tmp(settings, tmp_path):
    # Each test writes its exports under its own folder.
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.PUBLIC_BASE_URL = ""


@pytest.fixture
def judged_campaign(db):
    """Eight prompts, models a/b/c (three pairs each), three raters: one prefers a over b
    over c, one calls every pair a tie, one answers both_bad."""
    campaign = campaign_with_comparisons(prompts=8, models=("model-a", "model-b", "model-c"))
    bulk_judge(campaign, [annotator(campaign)], prefer_models("model-a", "model-b", "model-c"))
    bulk_judge(campaign, [annotator(campaign)], constant("tie"))
    bulk_judge(campaign, [annotator(campaign)], constant("both_bad"))
    return campaign


@pytest.fixture
def small_campaign(db):
    """Three prompts, two models, two raters who prefer model-a: 6 judgments."""
    campaign = campaign_with_comparisons(prompts=3, models=("model-a", "model-b"))
    bulk_judge(
        campaign, [annotator(campaign), annotator(campaign)], prefer_models("model-a", "model-b")
    )
    return campaign
