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

import math
from collections.abc import Iterable

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
