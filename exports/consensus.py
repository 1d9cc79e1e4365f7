"""Each image pair's consensus for an export: one pass over the judgments the export keeps,
then the model the export's policy names (exports.consensus_model).

The votes are exactly those of the exported rows: the same policy decides which judgments
count, and a ranking gives one vote per pair of its images, as it gives one row per pair. An
item is an unordered pair of images, so the votes of two comparisons that share a pair (k-way
comparisons of the same prompt) pool. Memory: three integers per vote.

With `rankings`, the pass also keeps each comparison's images and the Borda points of its
kept rankings, from which exports.consensus_ranking orders a comparison's images (the ranked
and jsonl formats); a few numbers per comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from annotate.selectors import comparison_overlap_figures
from exports.consensus_model import FIRST, SECOND, TIE, Consensus, consensus
from exports.consensus_ranking import borda_points
from exports.context import BuildContext
from exports.pairs import answer_ranks, rank_pairs
from exports.scan import Tally, decide_batch

OUTCOME_OF_LABEL = {1.0: FIRST, 0.0: SECOND, 0.5: TIE}
# Appended to the Pick-a-Pic columns, oriented to the row's image 0 like label_0.
FIELDS = [
    ("consensus_label_0", pa.float64()),  # 1.0, 0.0, or 0.5 where contested
    ("consensus_confidence", pa.float64()),  # P(the consensus winner is better), 0.5 to 1
    ("consensus_contested", pa.bool_()),  # confidence below the policy's contested_below
    ("majority_label_0", pa.float64()),  # the plurality of votes, a tie counting as one
    ("consensus_votes", pa.int64()),  # judgments of this pair, ties included
    # The comparison(s) the pair was judged in: counted judgments, and whether dynamic
    # overlap found them settled (null under a fixed overlap). A pair of a ranking that
    # recurs in several comparisons sums their judgments and is settled if all of them are.
    ("comparison_judgments", pa.int64()),
    ("comparison_settled", pa.bool_()),
]


@dataclass
class PairConsensus:
    item_of: dict[tuple[str, str], int]  # (first uid, second uid) in canonical order
    result: Consensus
    contested_below: float
    model: str
    judgments: np.ndarray  # per item, the comparisons' counted judgments
    settled: list[bool | None]  # per item
    # With `rankings`: per comparison, its images and kept rankings' Borda points, and its
    # (counted judgments, settled) figures.
    rankings: dict[int, RankingTotals] = field(default_factory=dict)
    figures: dict[int, tuple[int, bool | None]] = field(default_factory=dict)

    def p_better(self, first: str, second: str) -> float:
        """P(image `first` is better than image `second`); 0.5 for a pair without votes."""
        item = self.item_of.get((first, second))
        if item is not None:
            return float(self.result.p_first[item])
        item = self.item_of.get((second, first))
        return 0.5 if item is None else 1.0 - float(self.result.p_first[item])

    def columns(self, uids_0: pa.Array, uids_1: pa.Array) -> list[pa.Array]:
        """The FIELDS columns for rows whose images are uids_0 and uids_1."""
        count = len(uids_0)
        p_first = np.full(count, 0.5)
        majority = np.full(count, 0.5)
        votes = np.zeros(count, dtype=np.int64)
        judgments = np.zeros(count, dtype=np.int64)
        settled: list[bool | None] = [None] * count
        for row, (first, second) in enumerate(
            zip(uids_0.to_pylist(), uids_1.to_pylist(), strict=True)
        ):
            item = self.item_of.get((first, second))
            flipped = item is None
            if flipped:
                item = self.item_of.get((second, first))
            if item is None:
                continue
            p, m = self.result.p_first[item], self.result.majority[item]
            p_first[row], majority[row] = (1.0 - p, 1.0 - m) if flipped else (p, m)
            votes[row] = self.result.votes[item]
            judgments[row], settled[row] = self.judgments[item], self.settled[item]
        confidence = np.maximum(p_first, 1.0 - p_first)
        contested = confidence < self.contested_below
        labels = np.where(contested, 0.5, np.where(p_first >= 0.5, 1.0, 0.0))
        return [
            pa.array(labels, pa.float64()),
            pa.array(confidence, pa.float64()),
            pa.array(contested, pa.bool_()),
            pa.array(majority, pa.float64()),
            pa.array(votes, pa.int64()),
            pa.array(judgments, pa.int64()),
            pa.array(settled, pa.bool_()),
        ]

    def summary(self) -> dict:
        """What the manifest records beside the policy: the model, threshold and counts."""
        confidence = self.result.confidence()
        contested = int((confidence < self.contested_below).sum())
        return {
            "model": self.model,
            "contested_below": self.contested_below,
            "pairs": len(self.item_of),
            "contested_pairs": contested,
        }


@dataclass(slots=True)
class RankingTotals:
    """A comparison's images (canonical order) and the sum of its kept rankings' Borda
    points per image (exports.consensus_ranking.borda_points)."""

    uids: tuple[str, ...]
    points: np.ndarray
    rankings: int = 0


def export_consensus(ctx: BuildContext, *, rankings: bool = False) -> PairConsensus:
    """Gather the kept judgments' votes per image pair and fit the policy's model; with
    `rankings`, keep each comparison's Borda points too."""
    item_of: dict[tuple[str, str], int] = {}
    totals: dict[int, RankingTotals] = {}
    rater_of: dict[int, int] = {}
    items: list[int] = []
    raters: list[int] = []
    outcomes: list[int] = []
    comparisons_of: dict[int, set[int]] = {}  # item -> the comparisons it was judged in
    tally = Tally()
    for batch in ctx.batches(with_time=False):
        decided = decide_batch(rows=batch, raters=ctx.raters, policy=ctx.policy, tally=tally)
        kept = [d.row for d in decided if d.reason is None]
        images_of = ctx.images_of({row.comparison_id for row in kept})
        for row in kept:
            uids = [image.uid for image in images_of.get(row.comparison_id, [])]
            ranks = answer_ranks(answer=row.answer, uids=uids)
            if ranks is None:
                continue  # the writing pass reports the inconsistent judgment
            rater = rater_of.setdefault(row.annotator_id, len(rater_of))
            if rankings:
                total = totals.get(row.comparison_id)
                if total is None:
                    total = totals[row.comparison_id] = RankingTotals(
                        uids=tuple(uids), points=np.zeros(len(uids))
                    )
                total.points += borda_points(ranks)
                total.rankings += 1
            for _, a, b, label in rank_pairs(ranks):
                item = item_of.setdefault((uids[a], uids[b]), len(item_of))
                items.append(item)
                comparisons_of.setdefault(item, set()).add(row.comparison_id)
                raters.append(rater)
                outcomes.append(OUTCOME_OF_LABEL[label])
    result = consensus(
        items=np.array(items, dtype=np.int64),
        raters=np.array(raters, dtype=np.int64),
        outcomes=np.array(outcomes, dtype=np.int64),
        n_items=len(item_of),
        n_raters=len(rater_of),
        model=ctx.policy.consensus,
    )
    figures = comparison_overlap_figures(
        comparison_ids=sorted({c for ids in comparisons_of.values() for c in ids})
    )
    judgments, settled = _overlap_figures(comparisons_of, figures, n_items=len(item_of))
    return PairConsensus(
        item_of=item_of,
        result=result,
        contested_below=ctx.policy.contested_below,
        model=ctx.policy.consensus,
        judgments=judgments,
        settled=settled,
        rankings=totals,
        figures=figures if rankings else {},
    )


def _overlap_figures(
    comparisons_of: dict[int, set[int]], figures: dict, *, n_items: int
) -> tuple[np.ndarray, list[bool | None]]:
    """Per item: its comparisons' counted judgments and whether all of them settled."""
    judgments = np.zeros(n_items, dtype=np.int64)
    settled: list[bool | None] = [None] * n_items
    for item, ids in comparisons_of.items():
        states = [figures[c][1] for c in ids]
        judgments[item] = sum(figures[c][0] for c in ids)
        settled[item] = None if None in states else all(states)
    return judgments, settled
