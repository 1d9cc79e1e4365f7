"""Gold scales with the campaign, and a campaign too small for its policy says so."""

import pytest

from annotate.campaign_checks import (
    GOLD_RATE_TOO_HIGH,
    NO_COMPARISONS,
    TOO_FEW_ANNOTATORS,
    CampaignSize,
    campaign_warnings,
    gold_count_for,
    gold_needed_to_qualify,
)
from annotate.quality.rules import DEFAULT_POLICY
from tests.factories import CampaignFactory, annotator, campaign_with_comparisons


@pytest.mark.parametrize(
    ("regular", "gold"),
    [(0, 0), (3, 0), (4, 1), (40, 10), (60, 15), (100, 15), (750, 15), (751, 16), (10_000, 200)],
)
def test_gold_is_two_percent_at_least_fifteen_at_most_a_quarter(regular, gold):
    assert gold_count_for(regular_comparisons=regular) == gold


def test_gold_is_never_more_than_a_fifth_of_the_work():
    for regular in range(0, 5000):
        gold = gold_count_for(regular_comparisons=regular)
        assert gold <= (regular + gold) / 5, regular


def test_the_default_policy_needs_eight_right_answers_to_qualify():
    assert gold_needed_to_qualify(policy=DEFAULT_POLICY) == 8


@pytest.mark.django_db
def test_a_four_prompt_campaign_is_warned_that_annotators_cannot_qualify():
    campaign = CampaignFactory(qualification_size=15, overlap=1)
    warnings = campaign_warnings(
        campaign=campaign, size=CampaignSize(regular=4, gold=0, annotators=3)
    )
    assert len(warnings) == 1
    assert warnings[0].startswith("With 4 comparisons the campaign gets 1 gold item(s)")
    assert "at least 8 right answers" in warnings[0]


@pytest.mark.django_db
def test_a_large_enough_campaign_with_annotators_has_no_warnings():
    campaign = CampaignFactory(qualification_size=15, overlap=3, gold_rate=0.02)
    size = CampaignSize(regular=200, gold=15, annotators=3)
    assert campaign_warnings(campaign=campaign, size=size) == []


@pytest.mark.django_db
def test_no_qualification_means_no_qualification_warning():
    campaign = CampaignFactory(qualification_size=0, overlap=1)
    size = CampaignSize(regular=4, gold=0, annotators=1)
    assert campaign_warnings(campaign=campaign, size=size) == []


@pytest.mark.django_db
def test_it_counts_the_campaign_itself_when_not_given_a_size():
    campaign = campaign_with_comparisons(prompts=2, overlap=2, gold_rate=0.3)
    annotator(campaign)
    assert campaign_warnings(campaign=campaign) == [
        GOLD_RATE_TOO_HIGH.format(percent=30),
        TOO_FEW_ANNOTATORS.format(overlap=2, annotators=1),
    ]
    empty = CampaignFactory(overlap=1)
    annotator(empty)
    assert campaign_warnings(campaign=empty) == [NO_COMPARISONS]
