"""Active sampling: which model pair to ask about next, and how many judgments are still needed.

A campaign with `active_sampling` hands out first the comparisons whose model pair's
Bradley-Terry order is least certain. The choice is made here, off the request path: a task
(every ACTIVE_REFRESH_EVERY judgments, and with the periodic quality recompute) fits the
model once and writes each comparison's pair rank into `Comparison.priority`, which the
assignment engine's query orders by before anything else. `next` itself never fits.

The fit is the leaderboard's (annotate/quality/leaderboard.py): ties count half, PRIOR_TIES
virtual ties per pair of models, log-strengths centred to mean 0. Here it is solved by
Newton's method in numpy (a handful of models, so a few milliseconds), which also gives the
covariance of the estimate: the inverse of the Fisher information
H = sum over pairs of n_ab p_ab (1 - p_ab) (e_a - e_b)(e_a - e_b)^T, on the centred subspace.

The pair score: one more judgment of pair (a, b) adds p(1 - p) to its information, which
takes the variance v of theta_a - theta_b to v / (1 + p(1 - p) v) (Sherman-Morrison on the
direction e_a - e_b). The score is that drop of the standard error, weighted by the chance
that the pair's order is still wrong, Phi(-|d| / sqrt(v)). A pair far apart scores near 0;
a close pair scores high until its interval is narrow, and then its gain per judgment
shrinks (like n^-3/2), so two equal models do not take every judgment for ever.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from django.db import transaction
from django.db.models import Max, Min

from annotate.models import Campaign, Comparison
from annotate.quality.encoding import LO, TIE_VALUE
from annotate.quality.leaderboard import PRIOR_TIES, outcome_cells
from annotate.quality.rater_stats import primary_criterion

# A refresh is enqueued after every this many judgments of the campaign (on average: the
# hook tests the judgment's id, which the campaign shares with others, so no counter row is
# locked on the submit path). Between refreshes the order stays as last written.
ACTIVE_REFRESH_EVERY = 25
# "About N more judgments to reach +-X": the precision the pages aim at. A win-rate within
# +-5 points; for the leaderboard, each log-strength within +-0.2, which near even odds is
# the same +-5 points of win-rate (d p / d theta = 1/4 at p = 1/2).
WIN_RATE_TARGET = 0.05
STRENGTH_TARGET = 0.2
_UPDATE_CHUNK = 500
MAX_PRIORITY = 32767  # PositiveSmallIntegerField's largest value on every backend
_NEWTON_STEPS = 50


def _pair_counts(
    cells: list[tuple[str, str, int, int]], models: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(wins, games): wins[i, j] = i's wins over j with ties as half and the prior's virtual
    ties; games[i, j] = judgments of the pair plus the prior, symmetric."""
    index = {name: i for i, name in enumerate(models)}
    m = len(models)
    wins = np.full((m, m), PRIOR_TIES / 2)
    np.fill_diagonal(wins, 0.0)
    for lo, hi, value, count in cells:
        if lo not in index or hi not in index or lo == hi:
            continue
        a, b = index[lo], index[hi]
        if value == TIE_VALUE:
            wins[a, b] += count / 2
            wins[b, a] += count / 2
        elif value == LO:
            wins[a, b] += count
        else:
            wins[b, a] += count
    return wins, wins + wins.T


def bradley_terry_fit(
    cells: list[tuple[str, str, int, int]], models: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(theta, covariance, games): centred log-strengths of `models` in that order, their
    covariance (inverse Fisher information on the centred subspace) and the games matrix."""
    wins, games = _pair_counts(cells, models)
    m = len(models)
    theta = np.zeros(m)
    ones = np.ones((m, m)) / m
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # p[i, j]: i beats j
        gradient = (wins - games * p).sum(axis=1)
        weight = games * p * (1 - p)
        information = np.diag(weight.sum(axis=1)) - weight
        # Adding 11^T/m pins the mean (the likelihood is flat along 1) without moving the rest.
        step = np.linalg.solve(information + ones, gradient)
        theta = theta + step
        theta -= theta.mean()
        if np.abs(step).max() < 1e-10:
            break
    p = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))
    weight = games * p * (1 - p)
    information = np.diag(weight.sum(axis=1)) - weight
    covariance = np.linalg.inv(information + ones) - ones
    return theta, covariance, games


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def pair_scores(
    cells: list[tuple[str, str, int, int]], models: list[str]
) -> dict[tuple[str, str], float]:
    """Per pair of models (sorted names): the expected drop of the standard error of their
    difference from one more judgment, times the chance their order is wrong (module doc)."""
    models = sorted(models)
    if len(models) < 2:
        return {}
    theta, covariance, _ = bradley_terry_fit(cells, models)
    scores = {}
    for a, b in combinations(range(len(models)), 2):
        d = theta[a] - theta[b]
        v = max(covariance[a, a] + covariance[b, b] - 2 * covariance[a, b], 1e-12)
        p = 1.0 / (1.0 + math.exp(-d))
        info = p * (1 - p)
        gain = math.sqrt(v) - math.sqrt(v / (1 + info * v))
        scores[(models[a], models[b])] = _normal_cdf(-abs(d) / math.sqrt(v)) * gain
    return scores


def pair_priorities(scores: dict[tuple[str, str], float]) -> dict[tuple[str, str], int]:
    """Dense ranks, 0 for the lowest score: the least certain pair gets the highest number.
    Equal scores (as before any judgment) share a rank, so they keep the engine's own order,
    and comparisons made after the last refresh (priority 0) rank with the most certain."""
    levels = sorted({round(score, 12) for score in scores.values()})
    # Comparison.priority is a small integer: with more distinct scores than MAX_PRIORITY + 1
    # (some 260 models), neighbouring ranks share a level; the order between levels holds.
    spread = max(1, len(levels) - 1)
    rank = {
        level: i if spread <= MAX_PRIORITY else i * MAX_PRIORITY // spread
        for i, level in enumerate(levels)
    }
    return {pair: rank[round(score, 12)] for pair, score in scores.items()}


def _comparison_pairs(campaign: Campaign) -> list[tuple[int, str, str, int]]:
    """(id, model lo, model hi, current priority) of the campaign's regular comparisons that
    may still be handed out. Pairwise: the min and max model name are the pair."""
    rows = (
        Comparison.objects.filter(campaign=campaign, role=Comparison.Role.REGULAR)
        .exclude(status=Comparison.Status.RETIRED)
        .annotate(lo=Min("images__model_name"), hi=Max("images__model_name"))
        .order_by()
        .values_list("id", "lo", "hi", "priority")
    )
    return [(pk, lo or "(unnamed)", hi or "(unnamed)", priority) for pk, lo, hi, priority in rows]


def _write_priorities(changes: dict[int, list[int]]) -> int:
    """Set the priorities, a chunk per transaction so the engine's SKIP LOCKED passes over
    few rows at a time. Rows are locked in id order first, as the expiry sweep locks them,
    so the two cannot deadlock."""
    written = 0
    for priority, ids in sorted(changes.items()):
        ids.sort()
        for start in range(0, len(ids), _UPDATE_CHUNK):
            chunk = ids[start : start + _UPDATE_CHUNK]
            with transaction.atomic():
                locked = list(
                    Comparison.objects.select_for_update()
                    .filter(pk__in=chunk)
                    .order_by("id")
                    .values_list("id", flat=True)
                )
                written += Comparison.objects.filter(pk__in=locked).update(priority=priority)
    return written


def active_sampling_refresh(*, campaign: Campaign) -> dict:
    """Rank the campaign's model pairs and write the ranks into its comparisons' priority.

    Off (or not pairwise): every priority goes back to 0, the engine's plain order. Fits
    once (no bootstrap) on the first criterion's ratings; writes only rows whose priority
    changes. Returns the pair scores and ranks and the number of rows written.
    """
    comparisons = _comparison_pairs(campaign)
    if not campaign.active_sampling or campaign.kind != Campaign.Kind.PAIRWISE:
        target = dict.fromkeys(((lo, hi) for _, lo, hi, _ in comparisons), 0)
        scores: dict[tuple[str, str], float] = {}
    else:
        models = sorted({lo for _, lo, _, _ in comparisons} | {hi for _, _, hi, _ in comparisons})
        cells = outcome_cells(campaign_id=campaign.pk, criterion=primary_criterion(campaign))
        scores = pair_scores(cells, models)
        target = pair_priorities(scores)
    changes: dict[int, list[int]] = {}
    for pk, lo, hi, priority in comparisons:
        wanted = target.get((lo, hi), 0)  # a same-model pair says nothing about the order
        if wanted != priority:
            changes.setdefault(wanted, []).append(pk)
    return {
        "scores": {f"{a} vs {b}": score for (a, b), score in scores.items()},
        "priorities": {f"{a} vs {b}": rank for (a, b), rank in target.items()},
        "written": _write_priorities(changes),
    }


def judgments_needed(*, judgments: int, half_width: float, target: float) -> int | None:
    """About how many more judgments take an interval of `half_width` from `judgments` to
    `target`, if it keeps narrowing like 1/sqrt(n) (the current variance per judgment).
    0 when it is there; None before any judgment (nothing to scale from)."""
    if half_width <= target:
        return 0
    if judgments <= 0:
        return None
    return math.ceil(judgments * ((half_width / target) ** 2 - 1))


def leaderboard_precision(rows: list[dict], *, target: float = STRENGTH_TARGET) -> dict | None:
    """The leaderboard's widest interval and the judgments it still needs to reach +-target
    on every model. `rows` as bradley_terry_board gives them; None when empty."""
    if not rows:
        return None
    # Every judgment adds one win, tie or loss to each of its two models.
    judgments = sum(r["wins"] + r["ties"] + r["losses"] for r in rows) // 2
    half_width = max((r["high"] - r["low"]) / 2 for r in rows)
    return {
        "judgments": judgments,
        "half_width": half_width,
        "target": target,
        "more": judgments_needed(judgments=judgments, half_width=half_width, target=target),
    }
