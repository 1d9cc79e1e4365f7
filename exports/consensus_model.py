"""Consensus labels for pairwise comparisons from many raters' votes (numpy only).

An item is one pair of images, in a fixed order (first, second). A vote is FIRST, SECOND or
TIE. Two models give, per item, the probability that the first image is the better one:

- ``majority``: the share of FIRST among the item's FIRST and SECOND votes (0.5 with none).
- ``dawid_skene``: one-coin Dawid-Skene (Dawid and Skene 1979, with one accuracy per rater
  as in Raykar et al. 2010), fitted by EM. The latent class is which image is better; a rater
  names it with probability a_r. Ties carry no information about the class in this model and
  are left out of it (they still count as votes in the majority). Each rater's vote weighs
  w_r = log(a_r / (1 - a_r)), so a careful rater counts more than a careless one.

Minority taste is not punished: a rater who legitimately prefers the other image on taste
items still agrees with everyone on the rest, so their accuracy stays well above chance and
their votes keep a positive weight; only a rater who reliably answers the opposite of the
consensus (a contrarian, accuracy below one half) is read inverted, as Dawid-Skene reads
them. A Beta prior (annotate.quality.posterior's PRIOR_CORRECT, PRIOR_WRONG pseudo-votes) keeps raters with few votes near a
moderate accuracy, and MAX_ACCURACY caps any one rater's weight either way (log 99, about
4.6), so no single rater decides an item against several others.

An item whose probability is within a threshold of even is *contested*: callers mark it and
do not force a winner on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The prior, the cap and the vote weight are the ones dynamic overlap settles with.
from annotate.quality.posterior import rater_accuracy, vote_weight

FIRST, SECOND, TIE = 0, 1, 2
MODELS = ("dawid_skene", "majority")
MAX_ITERATIONS = 100
TOLERANCE = 1e-7


@dataclass(frozen=True)
class Consensus:
    """Per item: P(first is better), the majority label, votes; per rater: accuracy."""

    p_first: np.ndarray  # float, in [0, 1]
    majority: np.ndarray  # 1.0 first, 0.0 second, 0.5 when the top outcomes are level or tie
    votes: np.ndarray  # int, every vote including ties
    rater_accuracy: np.ndarray  # float; 0.5 for the majority model

    def confidence(self) -> np.ndarray:
        """The probability of the more likely winner, in [0.5, 1]."""
        return np.maximum(self.p_first, 1.0 - self.p_first)

    def labels(self, *, contested_below: float) -> np.ndarray:
        """1.0 first, 0.0 second; 0.5 for a contested item (confidence below the threshold)."""
        labels = np.where(self.p_first >= 0.5, 1.0, 0.0)
        return np.where(self.confidence() < contested_below, 0.5, labels)


def majority_labels(items: np.ndarray, outcomes: np.ndarray, n_items: int) -> np.ndarray:
    """The plurality outcome per item, a tie counting as a vote; level pluralities give 0.5."""
    counts = np.zeros((n_items, 3))
    np.add.at(counts, (items, outcomes), 1)
    first, second, ties = counts[:, FIRST], counts[:, SECOND], counts[:, TIE]
    labels = np.full(n_items, 0.5)
    labels[(first > second) & (first > ties)] = 1.0
    labels[(second > first) & (second > ties)] = 0.0
    return labels


def consensus(
    *,
    items: np.ndarray,
    raters: np.ndarray,
    outcomes: np.ndarray,
    n_items: int,
    n_raters: int,
    model: str = "dawid_skene",
) -> Consensus:
    """Fit ``model`` to votes given as parallel arrays of item, rater and outcome indices."""
    if model not in MODELS:
        raise ValueError(f"consensus model must be one of {MODELS}, not {model!r}")
    items, raters, outcomes = (np.asarray(a, dtype=np.int64) for a in (items, raters, outcomes))
    votes = np.bincount(items, minlength=n_items)
    majority = majority_labels(items, outcomes, n_items)
    decided = outcomes != TIE
    items_d, raters_d = items[decided], raters[decided]
    sign = np.where(outcomes[decided] == FIRST, 1.0, -1.0)  # +1 votes for the first image
    if model == "majority":
        p_first = _share_first(items_d, sign, n_items)
        return Consensus(p_first, majority, votes, np.full(n_raters, 0.5))
    p_first, accuracy = _one_coin_dawid_skene(items_d, raters_d, sign, n_items, n_raters)
    return Consensus(p_first, majority, votes, accuracy)


def _share_first(items: np.ndarray, sign: np.ndarray, n_items: int) -> np.ndarray:
    first = np.bincount(items, weights=(sign > 0).astype(float), minlength=n_items)
    total = np.bincount(items, minlength=n_items).astype(float)
    return np.divide(first, total, out=np.full(n_items, 0.5), where=total > 0)


def _one_coin_dawid_skene(
    items: np.ndarray, raters: np.ndarray, sign: np.ndarray, n_items: int, n_raters: int
) -> tuple[np.ndarray, np.ndarray]:
    """EM from the majority's soft labels. The class prior (how often the first image is the
    better one) is estimated too: the canonical order follows image ids, which follow the
    generation order, so it can carry one model's advantage."""
    p_first = _share_first(items, sign, n_items)
    accuracy = np.full(n_raters, 0.5)
    votes_per_rater = np.bincount(raters, minlength=n_raters).astype(float)
    for _ in range(MAX_ITERATIONS):
        # M step: expected correct votes per rater, with the Beta prior's pseudo-votes.
        p_vote_right = np.where(sign > 0, p_first[items], 1.0 - p_first[items])
        correct = np.bincount(raters, weights=p_vote_right, minlength=n_raters)
        accuracy = rater_accuracy(correct, votes_per_rater - correct)  # capped
        weight = vote_weight(accuracy)
        prior = np.clip(p_first.mean(), 0.05, 0.95) if n_items else 0.5
        # E step: the posterior log-odds of "first is better" add up the weighted votes.
        log_odds = np.log(prior / (1.0 - prior)) + np.bincount(
            items, weights=weight[raters] * sign, minlength=n_items
        )
        updated = 1.0 / (1.0 + np.exp(-log_odds))
        change = np.max(np.abs(updated - p_first)) if n_items else 0.0
        p_first = updated
        if change < TOLERANCE:
            break
    return p_first, accuracy
