"""A comparison's consensus ranking: its images ordered from the pairwise consensus.

A ranking of k images is k(k-1)/2 pairwise votes (exports.consensus expands it so, as the
Pick-a-Pic format does), and the policy's model (exports.consensus_model) gives each pair
P(i is better than j), pooled over every kept judgment of that pair. From those:

- A pair is *decided* for i when P(i better than j) is above one half and at least the
  policy's `contested_below`; otherwise it is contested (raters split, or they called the
  images level: ties carry no side in the model).
- `consensus_ranking` is the finest ranking (1 = best, equal ranks = level) in which every
  order it states is a decided pair: for each two images in different tiers, the pair is
  decided for the one ranked higher. Nothing is forced: images whose order the model cannot
  decide, and images on a cycle of decided pairs (a beats b beats c beats a), share a rank.
  It is unique: an upper set of images that beats all the others by decided pairs has more
  decided wins than any of them, so every such set is a prefix of the images sorted by
  decided wins, and the ranking cuts that order at every prefix that qualifies. Being
  conservative, one contested pair levels every image that cannot be put wholly above or
  below it: with a > b decided and c contested against both, all three share rank 1.
- `consensus_confidence` is the least certain of the comparison's pairs: the lowest, over
  its pairs, of the probability of the pair's more likely winner (for two images, the pair
  formats' `consensus_confidence`). Where the ranking is strict it is the probability of
  the least certain order it states, at least `contested_below`.
- `consensus_contested` is true where the consensus ranking leaves two images level, which
  happens where a pair is contested (confidence under the threshold, so the confidence is
  too) or decided pairs form a cycle (then the confidence can be high: each pair is sure,
  the order is not).
- `majority_ranking`, for reference, orders the images by their Borda points summed over
  the comparison's own kept rankings, unweighted: one point per image ranked below, half a
  point per image level with it; equal sums share a rank.

Ranks are dense, as in the `ranking` column: 1 for the best tier, then 2, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from exports.consensus import PairConsensus

# A comparison's consensus, appended to each of its rows in the ranked format, in the row's
# own image order.
FIELDS = [
    ("consensus_ranking", pa.list_(pa.int64())),  # 1 = best; level where not decided
    ("consensus_confidence", pa.float64()),  # the least certain pair's confidence
    ("consensus_contested", pa.bool_()),  # the consensus ranking leaves images level
    ("majority_ranking", pa.list_(pa.int64())),  # Borda over the kept rankings
    ("consensus_votes", pa.int64()),  # the comparison's kept rankings
    ("comparison_judgments", pa.int64()),  # its counted judgments (dynamic overlap)
    ("comparison_settled", pa.bool_()),  # null under a fixed overlap
]


@dataclass(frozen=True)
class ComparisonConsensus:
    """One comparison's consensus over its images in canonical order."""

    ranking: list[int]
    confidence: float
    contested: bool
    majority: list[int]
    votes: int
    judgments: int | None
    settled: bool | None

    def in_order(self, order: list[int] | None = None) -> list:
        """The FIELDS values with the images in `order` (indices into canonical order;
        None: canonical order)."""
        if order is None:
            order = list(range(len(self.ranking)))
        return [
            [self.ranking[i] for i in order],
            self.confidence,
            self.contested,
            [self.majority[i] for i in order],
            self.votes,
            self.judgments,
            self.settled,
        ]


def borda_points(ranks: list[int]) -> np.ndarray:
    """Per image: the images ranked below it, plus half of those level with it."""
    r = np.asarray(ranks)
    below = (r[None, :] > r[:, None]).sum(axis=1)
    level = (r[None, :] == r[:, None]).sum(axis=1) - 1
    return below + 0.5 * level


def dense_ranks(scores: np.ndarray) -> list[int]:
    """1 for the highest score, equal scores sharing a rank, no gaps."""
    levels = np.unique(scores)[::-1]
    return [int(np.searchsorted(-levels, -score)) + 1 for score in scores]


def consensus_ranks(p_better: np.ndarray, *, contested_below: float) -> list[int]:
    """The finest ranking whose every stated order is a decided pair (the module docstring).

    `p_better[i, j]` is P(image i is better than image j)."""
    k = len(p_better)
    beats = (p_better > 0.5) & (p_better >= contested_below)
    np.fill_diagonal(beats, False)
    # Stable: images with equal decided wins keep their order, and no cut falls between them.
    order = sorted(range(k), key=lambda i: -int(beats[i].sum()))
    ranks = [0] * k
    tier = 1
    for position, image in enumerate(order):
        ranks[image] = tier
        upper, lower = order[: position + 1], order[position + 1 :]
        if lower and beats[np.ix_(upper, lower)].all():
            tier += 1
    return ranks


def comparison_consensus(pairs: PairConsensus, comparison_id: int) -> ComparisonConsensus | None:
    """The comparison's consensus, or None when the export keeps none of its rankings."""
    totals = pairs.rankings.get(comparison_id)
    if totals is None:
        return None
    k = len(totals.uids)
    p_better = np.full((k, k), 0.5)
    for i, j in combinations(range(k), 2):
        p = pairs.p_better(totals.uids[i], totals.uids[j])
        p_better[i, j], p_better[j, i] = p, 1.0 - p
    ranking = consensus_ranks(p_better, contested_below=pairs.contested_below)
    upper = p_better[np.triu_indices(k, 1)]
    judgments, settled = pairs.figures.get(comparison_id, (None, None))
    return ComparisonConsensus(
        ranking=ranking,
        confidence=float(np.maximum(upper, 1.0 - upper).min()) if k > 1 else 1.0,
        contested=len(set(ranking)) < k,
        majority=dense_ranks(totals.points),
        votes=totals.rankings,
        judgments=judgments,
        settled=settled,
    )


class RankingConsensus:
    """Each comparison's consensus, computed once when first asked for."""

    def __init__(self, pairs: PairConsensus) -> None:
        self.pairs = pairs
        self.known: dict[int, ComparisonConsensus | None] = {}

    def of(self, comparison_id: int) -> ComparisonConsensus | None:
        if comparison_id not in self.known:
            self.known[comparison_id] = comparison_consensus(self.pairs, comparison_id)
        return self.known[comparison_id]

    def values(self, comparison_id: int, order: list[int] | None = None) -> list:
        """The FIELDS values of the comparison, images in `order`; nulls when the export
        keeps none of its judgments (a left-out judgment's comparison, in the jsonl format)."""
        agreed = self.of(comparison_id)
        return [None] * len(FIELDS) if agreed is None else agreed.in_order(order)

    def summary(self) -> dict:
        """The pair summary, and the comparisons ranked and how many are contested."""
        contested = sum(bool(self.of(c).contested) for c in self.pairs.rankings)
        return {
            **self.pairs.summary(),
            "comparisons": len(self.pairs.rankings),
            "contested_comparisons": contested,
        }
