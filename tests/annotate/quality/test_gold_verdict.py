"""One decision on gold (annotate.quality.rules.gold_verdict) for the submit and the
evaluation, and the campaign's own SPRT in every figure an audit records."""

import math

import pytest

from annotate.models import Campaign, Membership
from annotate.quality.models import RaterStats
from annotate.quality.rules import (
    DEFAULT_POLICY,
    gold_llr,
    gold_verdict,
    policy_for,
    rules_evaluate,
)
from annotate.quality.services import rater_gate_override
from tests.factories import UserFactory, annotator, campaign_with_comparisons


def _counters(correct=0, wrong=0, post_correct=0, post_wrong=0) -> dict:
    return {
        "gold_correct": correct,
        "gold_wrong": wrong,
        "post_gold_correct": post_correct,
        "post_gold_wrong": post_wrong,
    }


def test_the_sprt_over_all_gold_blocks_before_the_one_since_qualifying():
    both = gold_verdict(_counters(correct=1, wrong=4, post_wrong=4), policy=DEFAULT_POLICY)
    assert both.block == "gold_sprt"
    after = gold_verdict(_counters(correct=20, wrong=3, post_wrong=3), policy=DEFAULT_POLICY)
    assert after.block == "gold_after_qualifying" and after.qualified


def test_qualification_needs_the_upper_bound_and_nothing_blocks_in_between():
    # +0.405 per right answer: 7 make 2.84 (< ln 19 = 2.944), 8 make 3.24.
    seven = gold_verdict(_counters(correct=7), policy=DEFAULT_POLICY)
    assert (seven.block, seven.qualified) == (None, False)
    assert gold_verdict(_counters(correct=8), policy=DEFAULT_POLICY).qualified


def test_the_verdict_uses_the_policys_sprt_hypotheses():
    strict = {**DEFAULT_POLICY, "sprt_p0": 0.8, "sprt_p1": 0.95}
    counters = _counters(correct=8)
    assert gold_verdict(counters, policy=DEFAULT_POLICY).qualified
    verdict = gold_verdict(counters, policy=strict)
    assert not verdict.qualified
    assert verdict.llr == pytest.approx(8 * math.log(0.95 / 0.8))


def test_the_evaluation_blocks_on_gold_as_the_submit_does():
    stats = RaterStats(gold_correct=20, gold_wrong=3, post_gold_wrong=3, speed_hist=[])
    verdict = rules_evaluate(stats=stats, policy=DEFAULT_POLICY, p_e=None, campaign_median_ms=None)
    assert verdict.block == ["gold_after_qualifying"]


@pytest.mark.django_db
def test_an_admin_override_records_the_gold_llr_of_the_campaigns_own_sprt():
    campaign = campaign_with_comparisons(
        prompts=1, qc_policy={"sprt_p0": 0.7, "sprt_p1": 0.95}, qualification_size=0
    )
    rater = annotator(campaign)
    RaterStats.objects.update_or_create(
        campaign=campaign,
        annotator=rater,
        defaults={"gold_correct": 6, "gold_wrong": 1, "speed_hist": []},
    )

    event = rater_gate_override(
        campaign=campaign, user=rater, state=Membership.Gate.BLOCKED, reason="r", by=UserFactory()
    )

    expected = gold_llr(correct=6, wrong=1, p0=0.7, p1=0.95)
    assert event.figures["gold_llr"] == round(expected, 4)
    assert event.figures["gold_llr"] != round(gold_llr(correct=6, wrong=1), 4)
    assert policy_for(Campaign.objects.get(pk=campaign.pk))["sprt_p0"] == 0.7
