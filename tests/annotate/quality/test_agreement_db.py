"""Alpha and the leaderboard on ratings stored by real submits."""

from datetime import datetime

import krippendorff
import numpy as np
import pytest

from annotate.models import Judgment
from annotate.quality.agreement import (
    PAIR_DOMAIN,
    agreement_for,
    alpha_from_coincidences,
    pattern_coincidences,
    value_patterns,
)
from annotate.quality.encoding import PAIR
from annotate.quality.selectors import agreement_timeline, model_leaderboard, quality_summary
from tests.annotate.quality.crowd import models_of, prefers, random_clicker, run_crowd
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _raw_matrix(campaign, code) -> np.ndarray:
    """A raters x units matrix built the naive way, for the check only."""
    judgments = list(Judgment.objects.filter(campaign=campaign, is_gold=False, is_repeat=False))
    raters = sorted({j.annotator_id for j in judgments})
    units = sorted({j.comparison_id for j in judgments})
    matrix = np.full((len(raters), len(units)), np.nan)
    for j in judgments:
        value = code(j)
        if value is not None:
            matrix[raters.index(j.annotator_id), units.index(j.comparison_id)] = value
    return matrix


def _larger_uid(assignment, models, rng):
    """One fixed winner per pair, unrelated to image ids (so canonical values vary)."""
    return {"overall": max(assignment.presented)}


def _canonical(j: Judgment):
    answer = j.answers["overall"]
    if answer == "both_bad":
        return None
    if answer == "tie":
        return 1
    ids = sorted(j.comparison.images.values_list("id", "uid"))
    return 0 if str(ids[0][1]) == answer else 2


def test_sql_sums_give_the_packages_alpha_on_submitted_judgments():
    campaign = campaign_with_comparisons(prompts=20, overlap=3)
    raters = [(annotator(campaign), random_clicker) for _ in range(2)]
    raters += [(annotator(campaign), prefers("model-a")) for _ in range(2)]
    run_crowd(campaign, raters, seed=3)
    patterns = value_patterns(
        campaign_id=campaign.pk, criterion="overall", kind=PAIR, domain=PAIR_DOMAIN
    )
    o = (pattern_coincidences(patterns.counts) * patterns.units[:, None, None]).sum(axis=0)
    reference = _raw_matrix(campaign, _canonical)
    # The krippendorff package and the coincidence matrix compute one ratio in float64 in another
    # order (about 1e-15 apart): approx's default rel 1e-6.
    for level in ("nominal", "ordinal"):
        expected = krippendorff.alpha(reliability_data=reference, level_of_measurement=level)
        assert alpha_from_coincidences(o, PAIR_DOMAIN, level) == pytest.approx(expected)
        figures = agreement_for(
            campaign_id=campaign.pk,
            criterion="overall",
            kind=PAIR,
            domain=PAIR_DOMAIN,
            replicates=50,
        )
        assert figures[level]["alpha"] == pytest.approx(expected)


def test_canonical_coding_gives_alpha_1_for_perfect_agreement_with_random_sides():
    campaign = campaign_with_comparisons(prompts=30, overlap=3)

    run_crowd(campaign, [(annotator(campaign), _larger_uid) for _ in range(3)])
    figures = agreement_for(
        campaign_id=campaign.pk, criterion="overall", kind=PAIR, domain=PAIR_DOMAIN, replicates=50
    )
    assert figures["units"] == 30
    assert figures["nominal"]["alpha"] == pytest.approx(1.0)
    # The same judgments coded as raw left/right clicks: alpha near 0 (or below).
    left_right = _raw_matrix(campaign, lambda j: 0 if j.answers["overall"] == j.presented[0] else 1)
    raw = krippendorff.alpha(reliability_data=left_right, level_of_measurement="nominal")
    assert raw < 0.3


def test_agreement_waits_for_enough_units():
    campaign = campaign_with_comparisons(prompts=3, overlap=2)
    run_crowd(campaign, [(annotator(campaign), prefers("model-a")) for _ in range(2)])
    (row,) = quality_summary(campaign=campaign)["agreement"]
    assert row["status"] == "too_few_units" and row["nominal"]["alpha"] is None
    assert row["units"] == 3


def test_the_leaderboard_ranks_the_preferred_model_first():
    campaign = campaign_with_comparisons(prompts=12, overlap=3, models=("a", "b", "c"))
    order = {"a": 0, "b": 1, "c": 2}

    def best_first(assignment, models, rng):
        return {"overall": min(assignment.presented, key=lambda uid: order[models[uid]])}

    run_crowd(campaign, [(annotator(campaign), best_first) for _ in range(3)])
    board = model_leaderboard(campaign=campaign)
    assert [row["model"] for row in board] == ["a", "b", "c"]
    assert board[0]["low"] <= board[0]["score"] <= board[0]["high"]
    assert board[0]["wins"] == 2 * 12 * 3 and board[2]["losses"] == 2 * 12 * 3
    assert len(models_of(campaign)) == 36


def test_the_timeline_has_one_window_per_block_of_units():
    campaign = campaign_with_comparisons(prompts=10, overlap=2)

    def alternating(assignment, models, rng):  # lo better on even comparisons, hi on odd
        lo, hi = assignment.comparison.slots.order_by("slot").values_list("image__uid", flat=True)
        return {"overall": str(lo if assignment.comparison_id % 2 == 0 else hi)}

    run_crowd(campaign, [(annotator(campaign), alternating) for _ in range(2)])
    windows = agreement_timeline(campaign=campaign, window=4)
    assert [w["units"] for w in windows] == [4, 4, 2]
    assert isinstance(windows[0]["start"], datetime)  # datetimes on every backend
    assert windows[0]["start"] <= windows[2]["end"]
    assert windows[0]["baseline"] is None and windows[1]["baseline"] == pytest.approx(1.0)
    assert not any(w["alert"] for w in windows)
