"""The one-coin rater model's pieces, shared by the export's consensus and dynamic overlap.

Pure functions, no Django. In the one-coin model (Dawid and Skene 1979, one accuracy per
rater as in Raykar et al. 2010) a rater names the better of two images with probability a_r,
so a vote moves the log-odds that the first image is the better one by
w_r = log(a_r / (1 - a_r)), towards the side it names. Ties and "both bad" carry no
information about which image is better and move nothing.

exports.consensus_model fits the a_r by EM over a whole export; dynamic overlap
(annotate.services.overlap) decides on each submit, from one comparison's votes and each
rater's gold record, whether the comparison's consensus is settled. Both use the same prior,
cap and weight, from here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import numpy as np

# A Beta(4, 2) prior on a rater's accuracy: a rater with no evidence starts at 0.75.
PRIOR_CORRECT, PRIOR_WRONG = 3.0, 1.0
# No single rater's vote weighs more than log 99 (about 4.6) either way.
MAX_ACCURACY = 0.99
SETTLE_TOLERANCE = 1e-9


def rater_accuracy(correct, wrong):
    """The posterior mean accuracy under the Beta prior, capped; floats or numpy arrays."""
    accuracy = (np.asarray(correct, dtype=float) + PRIOR_CORRECT) / (
        np.asarray(correct, dtype=float)
        + np.asarray(wrong, dtype=float)
        + PRIOR_CORRECT
        + PRIOR_WRONG
    )
    accuracy = np.clip(accuracy, 1.0 - MAX_ACCURACY, MAX_ACCURACY)
    return float(accuracy) if accuracy.ndim == 0 else accuracy


def vote_weight(accuracy):
    """How far one vote moves the log-odds: log(a / (1 - a)); floats or numpy arrays."""
    weight = np.log(np.asarray(accuracy, dtype=float) / (1.0 - np.asarray(accuracy, dtype=float)))
    return float(weight) if weight.ndim == 0 else weight


def posterior_first(votes: Iterable[tuple[int, float]], *, prior_log_odds: float = 0.0) -> float:
    """P(the first image is better) from (sign, accuracy) votes: sign +1 names the first
    image, -1 the second, 0 (a tie) nothing."""
    log_odds = prior_log_odds + sum(sign * vote_weight(accuracy) for sign, accuracy in votes)
    if log_odds >= 0:
        return 1.0 / (1.0 + math.exp(-log_odds))
    odds = math.exp(log_odds)
    return odds / (1.0 + odds)


def settled(votes: Iterable[tuple[int, float]], *, confidence: float) -> bool:
    """Whether the leading side's posterior reaches `confidence` (0.5 < confidence < 1).

    A rater's accuracy is read as at least one half here: on one comparison's few votes a
    rater is never read inverted (the export's EM, over every comparison, may do that), so a
    dissenting vote can only keep a comparison open, never close it for the other side.
    """
    p_first = posterior_first(
        ((sign, max(0.5, accuracy)) for sign, accuracy in votes), prior_log_odds=0.0
    )
    # The tolerance keeps a posterior that is exactly the threshold in exact arithmetic (two
    # agreeing new raters: 9 / 10) from missing it by a rounding error.
    return max(p_first, 1.0 - p_first) >= confidence - SETTLE_TOLERANCE


def overlap_wanted(
    *, done: int, in_flight: int, wanted: int, is_settled: bool, max_raters: int
) -> int:
    """What a dynamic-overlap comparison wants after a counted judgment.

    Settled: what it has done or in flight (judgments in flight still count; none is
    revoked). Not settled: one more than it has done, up to max_raters, never below what it
    wanted or has. A submit leaves done + in_flight as it was, so this grows by at most one
    judgment per submit: a contested comparison draws one rater at a time.
    """
    used = done + in_flight
    if is_settled:
        return used
    return max(used, min(max_raters, max(wanted, done + 1)))


# Dynamic overlap's assignment order: what the next judgments of a comparison are worth.
# A pair's easiness e in [0, 1] scales how far above a coin flip its raters are: on a pair of
# easiness e a rater of accuracy a names the better image with probability 1/2 + e (a - 1/2)
# (e = 1: as clear as the gold pairs a was measured on; e = 0: a coin flip for everyone).
# The prior over e is uniform on this grid, so raters who split make a close pair likely, and
# on a close pair more judgments change little: a 2-2 split is worth less than a 1-1.
EASE = np.linspace(0.0, 1.0, 21)
# Comparison.priority is a small integer: the worth (a probability gain per judgment, at most
# 1/2 per image pair) in steps of 1e-4, plus one, so that a comparison that wants more ranks
# above those at 0; capped at the field's largest value.
WORTH_STEPS = 10_000
MAX_PRIORITY = 32767
# The look-ahead stops here whatever max_raters allows, so a submit's cost stays bounded.
LOOKAHEAD = 8


def _ease_posterior(votes: Iterable[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Joint posterior over (which image is better, easiness): the weights on the grid for
    "the first" and for "the second", summing to 1 together."""
    first = np.zeros_like(EASE)
    second = np.zeros_like(EASE)
    for sign, accuracy in votes:
        if sign == 0:
            continue
        lift = EASE * (max(0.5, accuracy) - 0.5)
        agree, dissent = np.log(0.5 + lift), np.log(0.5 - lift)
        first += agree if sign > 0 else dissent
        second += dissent if sign > 0 else agree
    top = max(first.max(), second.max())
    first, second = np.exp(first - top), np.exp(second - top)
    total = first.sum() + second.sum()
    return first / total, second / total


@functools.cache
def _binomial(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns j = 0..k and the binomial coefficients C(k, j)."""
    j = np.arange(k + 1)[:, None]
    return j, np.array([[math.comb(k, i)] for i in range(k + 1)], dtype=float)


def judgment_worth(
    votes: Sequence[tuple[int, float]], *, remaining: int, next_accuracy: float
) -> float:
    """What one more judgment of a comparison is worth: the expected gain in the chance that
    its leading image is the better one, per judgment, for the best number k <= `remaining`
    (and <= LOOKAHEAD) of further judgments by raters of `next_accuracy` (looking ahead k
    judgments, not one: one vote that cannot overturn the lead gains nothing on its own). 0
    when nothing remains.

    In the easiness model above, not the one-coin model: the one-coin model reads every split
    as a coin still to be tossed, however many raters have split it already.
    """
    if remaining <= 0:
        return 0.0
    first, second = _ease_posterior(votes)
    now = max(first.sum(), second.sum())
    right = 0.5 + EASE * (max(0.5, next_accuracy) - 0.5)
    best = 0.0
    for k in range(1, min(remaining, LOOKAHEAD) + 1):
        j, ways = _binomial(k)
        # P(j of the k name the first image | first better, e), rows j, columns e.
        if_first = ways * right**j * (1.0 - right) ** (k - j)
        expected = np.maximum(if_first @ first, if_first[::-1] @ second).sum()
        best = max(best, (expected - now) / k)
    return float(best)


def worth_priority(worth: float) -> int:
    """Comparison.priority for a comparison whose next judgment is worth `worth`: 1 and up."""
    return 1 + min(MAX_PRIORITY - 1, round(worth * WORTH_STEPS))
