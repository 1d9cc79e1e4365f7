"""Crowd kappa under dynamic overlap: a yardstick that optional stopping does not bias.

A contested comparison gets judgments past min_raters because its raters disagree, so those
judgments would bias a dissenting rater's kappa. From min_raters 3 the recompute leaves them
out of the kappa (both the row path and the column path); below 3 it measures each rating
against the gold-weighted consensus of the other votes instead. Fixed-overlap campaigns
count every rating against the leave-one-out majority.
"""

from collections import defaultdict

import numpy as np
import pytest

from annotate.models import Campaign, Comparison
from annotate.quality.models import Rating
from annotate.quality.pair_columns import (
    confusion_against_consensus,
    confusion_among,
    pair_columns_fetch,
    pair_counters,
)
from annotate.quality.rater_stats import (
    Checks,
    _empty_figures,
    _ranking_stats,
    kappa_against_consensus,
    kappa_first_raters,
    primary_criterion,
    stats_compute,
)
from annotate.services.assignments import assignment_next
from annotate.services.judgments import judgment_submit
from tests.annotate.quality.crowd import prefers, run_crowd
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _judge(campaign: Campaign, user, *, first: bool) -> None:
    assignment = assignment_next(campaign=campaign, annotator=user)
    assert assignment is not None
    comparison = Comparison.objects.get(pk=assignment.comparison_id)
    uids = [str(image.uid) for image in comparison.images.order_by("id")]
    judgment_submit(
        assignment=assignment, answers={"overall": uids[0 if first else 1]}, duration_ms=1500
    )


def _late_ratings(campaign: Campaign, *, first: int | None = None) -> list[Rating]:
    """Ratings past their comparison's first min_raters (or `first`) judgments, in
    submission order."""
    first = first or max(campaign.min_raters, 2)
    late, seen = [], {}
    for rating in Rating.objects.filter(campaign=campaign).order_by("judgment_id"):
        place = seen.setdefault(rating.comparison_id, [])
        if rating.judgment_id not in place:
            place.append(rating.judgment_id)
        if place.index(rating.judgment_id) >= first:
            late.append(rating)
    return late


def _kappas(computed: dict) -> dict:
    return {rater: (row["kappa"], row["kappa_n"]) for rater, row in computed.items()}


def _leaning(model: str, share: float):
    """Picks `model`'s image with probability `share`, the other one otherwise."""
    pick = prefers(model)

    def choose(assignment, models, rng):
        if rng.random() < share:
            return pick(assignment, models, rng)
        return {"overall": next(u for u in assignment.presented if models.get(u) != model)}

    return choose


def _row_path_kappas(campaign: Campaign) -> dict:
    """The ranking recompute's SQL path run on the pairwise ratings (kinds 0 and 2 alike)."""
    result = defaultdict(_empty_figures)
    _ranking_stats(campaign=campaign, result=result)
    return _kappas(result)


def _dissent_campaign() -> tuple[Campaign, object]:
    """Six comparisons (served in id order when equally far along); the dissenter D is the
    fourth, late, rater on the three that B contested and the third on the other three."""
    campaign = campaign_with_comparisons(
        prompts=6, dynamic_overlap=True, min_raters=3, max_raters=5, confidence=0.9
    )
    a, b, c, d, e = (annotator(campaign) for _ in range(5))
    for _ in range(6):
        _judge(campaign, a, first=True)
    for index in range(6):  # B contests the first three (1:1)
        _judge(campaign, b, first=index >= 3)
    for _ in range(3):  # C makes them 2:1: unsettled, a fourth rater wanted
        _judge(campaign, c, first=True)
    for _ in range(6):  # D: fourth on the contested three, third on the others
        _judge(campaign, d, first=False)
    while assignment_next(campaign=campaign, annotator=e) is not None:
        _judge(campaign, e, first=True)
    return campaign, d


def test_a_dissenters_late_judgments_on_contested_comparisons_leave_every_kappa_unchanged():
    campaign, dissenter = _dissent_campaign()
    late = _late_ratings(campaign)
    assert sum(r.annotator_id == dissenter.pk for r in late) == 3
    before = stats_compute(campaign=campaign)
    assert before[dissenter.pk]["kappa_n"] == 3  # its three early judgments only
    # Counted on every rating, the dissenter's kappa would take in its late judgments too.
    columns = pair_columns_fetch(campaign_id=campaign.pk, criterion=primary_criterion(campaign))
    every = confusion_among(columns, np.ones(len(columns.unit), dtype=bool))
    assert (every == pair_counters(columns)["confusion"]).all()
    index = int(np.searchsorted(columns.raters, dissenter.pk))
    assert every[index].sum() > before[dissenter.pk]["kappa_n"]

    Rating.objects.filter(pk__in=[r.pk for r in late]).delete()
    after = stats_compute(campaign=campaign)
    # A rater whose judgments were all late drops out of the figures; it had no kappa.
    assert {r: _kappas(after).get(r, (None, 0)) for r in before} == _kappas(before)
    # The late judgments still count in the other co-rater figures.
    assert after[dissenter.pk]["co_pairs"] < before[dissenter.pk]["co_pairs"]


def test_the_row_path_and_the_column_path_give_the_same_kappa_under_dynamic_overlap():
    campaign, _ = _dissent_campaign()
    assert _row_path_kappas(campaign) == _kappas(stats_compute(campaign=campaign))


@pytest.mark.parametrize("min_raters", [1, 2, 3])
def test_both_paths_agree_on_a_scripted_crowd_and_a_kappa_needs_three_first_judgments(
    min_raters,
):
    crowd = campaign_with_comparisons(
        prompts=12, dynamic_overlap=True, min_raters=min_raters, max_raters=5, confidence=0.9
    )
    # Fewer than three first judgments leave a rating one co-rater: every rating counts then,
    # against the weighted consensus; with no gold and no ties that is the plain majority.
    assert kappa_first_raters(crowd) == (3 if min_raters == 3 else None)
    assert kappa_against_consensus(crowd) == (min_raters < 3)
    raters = [(annotator(crowd), _leaning("model-a", 0.8)) for _ in range(4)]
    raters += [(annotator(crowd), _leaning("model-b", 0.8)) for _ in range(2)]
    run_crowd(crowd, raters, seed=3)
    assert _late_ratings(crowd)
    computed = stats_compute(campaign=crowd)
    assert any(row["kappa"] is not None for row in computed.values())
    assert _row_path_kappas(crowd) == _kappas(computed)


def test_fixed_overlap_counts_every_rating_in_the_kappa():
    campaign = campaign_with_comparisons(prompts=12, overlap=4)
    assert kappa_first_raters(campaign) is None
    raters = [(annotator(campaign), _leaning("model-a", 0.8)) for _ in range(4)]
    raters += [(annotator(campaign), _leaning("model-b", 0.8)) for _ in range(2)]
    run_crowd(campaign, raters, seed=3)
    computed = stats_compute(campaign=campaign)
    columns = pair_columns_fetch(campaign_id=campaign.pk, criterion=primary_criterion(campaign))
    confusion = pair_counters(columns)["confusion"]
    for index, rater in enumerate(columns.raters.tolist()):
        assert computed[rater]["kappa_n"] == int(confusion[index].sum())
    assert any(row["kappa_n"] > 0 for row in computed.values())
    assert _row_path_kappas(campaign) == _kappas(computed)


# Below min_raters 3: the gold-weighted consensus of the other votes --------------------------

LO, TIE, HI, BOTH_BAD = 0, 1, 2, 3


def _against(unit, rater, value, weight, excluded=None):
    value = np.array(value)
    return confusion_against_consensus(
        unit=np.array(unit),
        rater=np.array(rater),
        value=value,
        excluded=np.zeros(len(value), bool) if excluded is None else np.array(excluded),
        weight=np.array(weight, dtype=float),
        n_raters=len(weight),
        units=max(unit) + 1,
    )


def test_a_heavy_vote_outweighs_two_light_ones_as_yardstick():
    # Unit 0: rater 0 (weight 3) says lo, raters 1 and 2 (weight 1) say hi.
    confusion = _against([0, 0, 0], [0, 1, 2], [LO, HI, HI], [3.0, 1.0, 1.0])
    assert confusion[0, LO, HI] == 1  # the others: -2, towards hi
    assert confusion[1, HI, LO] == 1 and confusion[2, HI, LO] == 1  # +3 - 1 = +2
    assert confusion.sum() == 3


def test_ties_excluded_ratings_both_bad_and_others_that_say_nothing():
    # Unit 0: a tie (moves nothing, measured as its own value), an excluded hi (moves
    # nothing), a lo. Unit 1: a lo and a hi of equal weight, and a both-bad.
    confusion = _against(
        [0, 0, 0, 1, 1, 1],
        [0, 1, 2, 0, 1, 2],
        [TIE, HI, LO, LO, HI, BOTH_BAD],
        [1.0, 1.0, 1.0],
        excluded=[False, True, False, False, False, False],
    )
    assert confusion[0, TIE, LO] == 1  # unit 0: its yardstick is rater 2's lo alone
    assert confusion[0, LO, HI] == 1  # unit 1
    # Unit 0 (excluded, still measured against the others) and unit 1.
    assert confusion[1, HI, LO] == 2
    # Unit 0: the tie and the excluded hi move nothing; unit 1: both bad is left out.
    assert confusion[2].sum() == 0
    assert confusion.sum() == 4


def test_a_co_rater_whose_gold_is_no_better_than_chance_is_no_yardstick():
    """D judges six comparisons first (min = max = 2); G, with a good gold record, agrees on
    the first three; X, whose gold is all wrong, disagrees on the other three."""
    campaign = campaign_with_comparisons(
        prompts=6, dynamic_overlap=True, min_raters=2, max_raters=2, confidence=0.9
    )
    d, g, x = (annotator(campaign) for _ in range(3))
    for user, first, times in ((d, True, 6), (g, True, 3), (x, False, 3)):
        for _ in range(times):
            _judge(campaign, user, first=first)
    records = Checks(gold={g.pk: [True] * 17 + [False], x.pk: [False] * 10})
    weighted = stats_compute(campaign=campaign, checks=records)
    # X's three dissents weigh nothing: D is measured on G's three agreements only.
    assert weighted[d.pk]["kappa_n"] == 3
    # Without gold every co-rater weighs the same: all six count, three against.
    plain = stats_compute(campaign=campaign, checks=Checks())
    assert plain[d.pk]["kappa_n"] == 6
