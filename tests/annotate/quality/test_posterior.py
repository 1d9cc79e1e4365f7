"""The one-coin posterior that settles dynamic-overlap comparisons, against hand figures."""

import math

import numpy as np
import pytest

from annotate.quality.posterior import (
    WORTH_STEPS,
    judgment_worth,
    posterior_first,
    rater_accuracy,
    settled,
    vote_weight,
    worth_priority,
)

# A rater with no gold: Beta(4, 2) mean 3 / 4, so one vote moves the log-odds by log 3.
NEW = rater_accuracy(0, 0)


def test_a_new_rater_starts_at_three_quarters_and_weighs_log_three():
    assert NEW == 0.75
    assert vote_weight(NEW) == pytest.approx(math.log(3))


def test_gold_moves_the_accuracy_by_the_beta_posterior_mean():
    assert rater_accuracy(17, 0) == pytest.approx(20 / 21)  # (17 + 3) / (17 + 0 + 4)
    assert rater_accuracy(0, 10) == pytest.approx(3 / 14)
    assert rater_accuracy(10_000, 0) == 0.99  # capped: no rater weighs more than log 99


def test_arrays_get_the_same_figures_as_floats():
    figures = rater_accuracy(np.array([0.0, 17.0]), np.array([0.0, 0.0]))
    assert figures.tolist() == pytest.approx([0.75, 20 / 21])


def test_two_new_raters_who_agree_give_nine_tenths():
    # Log-odds 2 log 3 = log 9: P = 9 / 10.
    assert posterior_first([(1, NEW), (1, NEW)]) == pytest.approx(0.9)
    assert settled([(1, NEW), (1, NEW)], confidence=0.9)
    assert not settled([(1, NEW), (1, NEW)], confidence=0.95)


def test_three_who_agree_settle_at_ninety_five_percent_and_a_split_does_not():
    # log 27: P = 27 / 28 = 0.964; two against one: log 3, P = 3 / 4.
    assert posterior_first([(-1, NEW)] * 3) == pytest.approx(1 / 28)
    assert settled([(-1, NEW)] * 3, confidence=0.95)
    assert posterior_first([(1, NEW), (1, NEW), (-1, NEW)]) == pytest.approx(0.75)
    assert not settled([(1, NEW), (1, NEW), (-1, NEW)], confidence=0.8)


def test_ties_say_nothing():
    assert posterior_first([(0, NEW), (0, NEW)]) == 0.5
    assert not settled([(0, NEW)] * 5, confidence=0.6)


def test_a_rater_with_a_gold_record_counts_more():
    # log 20 + log 3 = log 60: P = 60 / 61 = 0.984.
    careful = rater_accuracy(17, 0)
    assert posterior_first([(1, careful), (1, NEW)]) == pytest.approx(60 / 61)
    assert settled([(1, careful)], confidence=0.95)  # 20 / 21 = 0.952 on its own


def test_a_rater_below_chance_on_gold_is_never_read_inverted_when_settling():
    # Accuracy 3 / 14 would weigh log(3 / 11) < 0 (a vote for the other side); settling
    # reads it as one half, weight 0, so it cannot close a comparison for the side it
    # voted against.
    bad = rater_accuracy(0, 10)
    assert posterior_first([(1, bad)]) < 0.5
    assert not settled([(1, bad)] * 10, confidence=0.6)
    assert not settled([(1, NEW), (1, NEW), (-1, bad)], confidence=0.95)
    assert settled([(1, NEW), (1, NEW), (-1, bad)], confidence=0.9)


# The worth of the next judgment (dynamic overlap's assignment order) ----------------------

HONEST = rater_accuracy(17, 1)  # 0.909: a rater with a good gold record


def _worth(signs, *, remaining=3, accuracy=HONEST):
    return judgment_worth([(s, HONEST) for s in signs], remaining=remaining, next_accuracy=accuracy)


def test_a_fresh_split_is_worth_more_than_raters_who_agree():
    assert _worth([1, -1]) > 5 * _worth([1, 1])


def test_a_pair_split_many_times_is_worth_less_than_a_fresh_split():
    # Raters who keep splitting make a close pair likely, where more votes change little.
    assert _worth([1, -1, 1, -1, 1, -1]) < _worth([1, -1, 1, -1]) < _worth([1, -1])


def test_nothing_remaining_is_worth_nothing_and_ties_count_as_no_vote():
    assert _worth([1, -1], remaining=0) == 0.0
    assert _worth([1, 0, 0, -1]) == pytest.approx(_worth([1, -1]))


def test_the_look_ahead_sees_a_lead_that_one_vote_cannot_overturn():
    # After 3 to 1 a single vote cannot change the lead; two or three can, so it is worth
    # something, and more the more judgments remain.
    assert 0 < _worth([1, 1, 1, -1], remaining=2) < _worth([1, 1, 1, -1], remaining=3)


def test_a_more_accurate_next_rater_is_worth_more():
    assert _worth([1, -1], accuracy=0.95) > _worth([1, -1], accuracy=0.7)


def test_the_priority_is_at_least_one_and_fits_a_small_integer():
    assert worth_priority(0.0) == 1
    assert worth_priority(0.1742) == 1743
    assert worth_priority(3.0) == 1 + 3 * WORTH_STEPS  # six image pairs may sum to 3
    assert worth_priority(50.0) == 32767
