import pytest
from django.db import connection

from annotate.models import Comparison, Judgment, Membership
from annotate.quality import pair_columns
from annotate.quality.models import RaterStats, Rating
from annotate.quality.rater_stats import COUNTERS, stats_compute, stored_counters
from annotate.quality.services import quality_recompute, rater_gate_override
from annotate.services.assignments import assignment_next
from annotate.services.gold import gold_build
from annotate.services.judgments import judgment_submit
from tests.annotate.quality.crowd import (
    always_left,
    always_tie,
    prefers,
    random_clicker,
    ranker,
    run_crowd,
)
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _assert_counters_match(campaign):
    computed = stats_compute(campaign=campaign)
    stored = stored_counters(campaign=campaign)
    assert set(computed) == set(stored)
    for annotator_id, figures in computed.items():
        for name in (*COUNTERS, "speed_hist"):
            assert stored[annotator_id][name] == figures[name], (annotator_id, name)


def _pairwise_crowd_campaign(prompts: int = 26, **fields):
    campaign = campaign_with_comparisons(prompts=prompts, **fields)
    gold_build(campaign=campaign, count=4)
    return campaign


def test_incremental_counters_equal_the_full_recompute_exactly():
    # Gold never blocks here: a block changes others' counters until the recompute it enqueues.
    campaign = _pairwise_crowd_campaign(
        prompts=40, overlap=4, gold_rate=0.1, repeat_rate=0.3, qc_policy={"sprt_bound": 1000}
    )
    raters = [
        (annotator(campaign), prefers("model-a")),
        (annotator(campaign), prefers("model-a")),
        (annotator(campaign), prefers("model-b")),
        (annotator(campaign), always_left),
        (annotator(campaign), always_tie),
        (annotator(campaign), random_clicker),
    ]
    assert run_crowd(campaign, raters) > 40 * 4
    stats = RaterStats.objects.filter(campaign=campaign)
    assert sum(s.repeats for s in stats) > 0 and sum(s.gold_correct for s in stats) > 0
    assert sum(s.co_pairs for s in stats) > 0 and sum(s.both_bad for s in stats) > 0
    _assert_counters_match(campaign)


def test_counters_stay_exact_after_a_block_and_the_recompute_it_enqueues(
    django_capture_on_commit_callbacks,
):
    campaign = _pairwise_crowd_campaign(overlap=3)
    admin = UserFactory()
    users = [annotator(campaign) for _ in range(5)]
    choosers = [
        prefers("model-a"),
        prefers("model-a"),
        random_clicker,
        always_left,
        prefers("model-b"),
    ]
    run_crowd(campaign, list(zip(users[:4], choosers[:4], strict=True)), max_rounds=10)
    with django_capture_on_commit_callbacks() as callbacks:
        rater_gate_override(
            campaign=campaign, user=users[2], state="blocked", reason="clicks at random", by=admin
        )
    # The block enqueues a recompute on commit (others' co-rater counters included this rater).
    assert any(c.func.__self__.name == "quality.recompute_campaign" for c in callbacks)
    quality_recompute(campaign=campaign, evaluate=False)
    _assert_counters_match(campaign)
    # Later raters meet the blocked rater's units: excluded ratings count for nobody.
    run_crowd(campaign, list(zip(users, choosers, strict=True)))
    _assert_counters_match(campaign)


def test_ranking_counters_use_derived_pairs_and_match_the_recompute():
    campaign = campaign_with_comparisons(
        prompts=6, models=("m1", "m2", "m3"), kind="ranking", k=3, overlap=3
    )
    raters = [(annotator(campaign), ranker) for _ in range(4)]
    assert run_crowd(campaign, raters) == 18
    assert Rating.objects.filter(kind=2).count() == 18 * 3
    _assert_counters_match(campaign)
    stats = RaterStats.objects.filter(campaign=campaign).first()
    assert stats.n_lo + stats.n_tie + stats.n_hi == 3 * stats.judgments


def test_gold_and_repeats_have_their_own_counters_and_make_no_ratings():
    campaign = _pairwise_crowd_campaign(gold_rate=0.5, repeat_rate=0.0)
    user = annotator(campaign)
    run_crowd(campaign, [(user, prefers("model-a"))], max_rounds=30)
    gold = Judgment.objects.filter(annotator=user, is_gold=True)
    assert gold.exists()
    assert not Rating.objects.filter(judgment__in=gold).exists()
    stats = RaterStats.objects.get(annotator=user)
    assert stats.gold_correct + stats.gold_wrong == gold.count()
    assert stats.judgments == Judgment.objects.filter(annotator=user, is_gold=False).count()


def test_a_submit_uses_a_fixed_number_of_queries(django_assert_max_num_queries):
    campaign = campaign_with_comparisons(prompts=30, overlap=3)
    users = [annotator(campaign) for _ in range(3)]
    run_crowd(campaign, [(u, prefers("model-a")) for u in users[:2]], max_rounds=8)
    user = users[2]
    run_crowd(campaign, [(user, prefers("model-a"))], max_rounds=4)  # some history of their own
    assignment = assignment_next(campaign=campaign, annotator=user)
    assert Judgment.objects.filter(comparison_id=assignment.comparison_id).count() == 2
    # Two co-raters on this unit; the count must not grow with the rater's history. PostgreSQL
    # reads the images with the counter update and the co-ratings with the rating insert, and
    # every rater's counters move in one statement.
    with django_assert_max_num_queries(8 if connection.vendor == "postgresql" else 10):
        judgment_submit(assignment=assignment, answers={"overall": "tie"}, duration_ms=1500)
    assert Comparison.objects.get(pk=assignment.comparison_id).done == 3
    assert Membership.objects.get(user=user).gate_state == "active"


def test_the_recompute_reads_the_same_counters_when_ids_are_too_large_to_pack(monkeypatch):
    campaign = _pairwise_crowd_campaign(overlap=3)
    raters = [(annotator(campaign), prefers("model-a")) for _ in range(2)]
    raters += [(annotator(campaign), random_clicker), (annotator(campaign), always_left)]
    run_crowd(campaign, raters, max_rounds=20)
    packed = stats_compute(campaign=campaign)
    assert sum(figures["co_pairs"] for figures in packed.values()) > 0
    # Ids that do not fit one 63-bit word beside each other come back as two words.
    monkeypatch.setattr(pair_columns, "_WORD_BITS", 12)
    assert stats_compute(campaign=campaign) == packed
