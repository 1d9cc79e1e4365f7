"""Bradley-Terry scores per model (ties count half) with bootstrap intervals, via evalica.

Scale: the score of model i is its natural log-strength theta_i, centred to mean 0, with
P(i beats j) = 1 / (1 + exp(theta_j - theta_i)). With two models and no prior this is half
the log of (wins + ties/2) over (losses + ties/2).

Prior: every pair of models starts with PRIOR_TIES virtual ties (half a win each way). Without
it a model that never loses (or never wins) has an infinite maximum-likelihood score, and a
bootstrap draw that happens to leave a model without a loss breaks the interval. With two
models the estimate becomes half the log of (wins + ties/2 + PRIOR_TIES/2) over
(losses + ties/2 + PRIOR_TIES/2): same sign as the record, a little closer to 0.

The ratings are first summed per (model lo, model hi, outcome) in SQL, so the fit sees a
handful of weighted rows however many judgments there are; the bootstrap resamples those
outcomes multinomially, which is resampling judgments with replacement, and adds the same
prior to every draw. evalica (which pulls in pandas) is imported only when a fit runs.
"""

from itertools import combinations

import numpy as np
from django.db import connection

from annotate.models import Image
from annotate.quality.encoding import DERIVED, HI, LO, PAIR, TIE_VALUE
from annotate.quality.models import Rating

PRIOR_TIES = 1.0

_CELLS_SQL = """
SELECT lo.model_name, hi.model_name, r.value, COUNT(*)
FROM {ratings} AS r
JOIN {images} AS lo ON lo.id = r.image_lo_id
JOIN {images} AS hi ON hi.id = r.image_hi_id
WHERE r.campaign_id = %s AND r.criterion = %s AND r.kind IN ({pair}, {derived})
  AND NOT r.excluded AND r.value IN ({lo_v}, {tie_v}, {hi_v})
GROUP BY lo.model_name, hi.model_name, r.value
"""


def outcome_cells(*, campaign_id: int, criterion: str) -> list[tuple[str, str, int, int]]:
    """(model of lo, model of hi, value, count), same-model pairs left out."""
    sql = _CELLS_SQL.format(
        ratings=Rating._meta.db_table,
        images=Image._meta.db_table,
        pair=PAIR,
        derived=DERIVED,
        lo_v=LO,
        tie_v=TIE_VALUE,
        hi_v=HI,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id, criterion])
        rows = cursor.fetchall()
    return [(a or "(unnamed)", b or "(unnamed)", v, n) for a, b, v, n in rows if a != b]


def log_strengths(
    cells: list[tuple[str, str, int, int]], weights: np.ndarray, models: list[str]
) -> np.ndarray:
    """Centred log-strengths of `models` (in that order) fitted to the weighted cells plus
    the prior. Scores are matched to models by name: evalica returns them best first."""
    import evalica

    winner = {LO: evalica.Winner.X, TIE_VALUE: evalica.Winner.Draw, HI: evalica.Winner.Y}
    xs, ys, winners, kept = [], [], [], []
    for (lo, hi, value, _), weight in zip(cells, weights, strict=True):
        if weight > 0:
            xs.append(lo)
            ys.append(hi)
            winners.append(winner[value])
            kept.append(float(weight))
    for a, b in combinations(models, 2):
        xs.append(a)
        ys.append(b)
        winners.append(evalica.Winner.Draw)
        kept.append(PRIOR_TIES)
    result = evalica.bradley_terry(xs, ys, winners, weights=kept, limit=1000)
    scores = result.scores.reindex(models).to_numpy(dtype=np.float64)
    logs = np.log(scores)
    return logs - logs.mean()


def bradley_terry_board(
    cells: list[tuple[str, str, int, int]], *, replicates: int = 200, seed: int = 0
) -> list[dict]:
    """Models best first: log-strength (mean 0), 95% percentile interval, wins/ties/losses."""
    if not cells:
        return []
    models = sorted({c[0] for c in cells} | {c[1] for c in cells})
    counts = np.asarray([c[3] for c in cells], dtype=np.float64)
    point = log_strengths(cells, counts, models)
    total = int(counts.sum())
    rng = np.random.default_rng(seed)
    samples = [
        log_strengths(cells, draw.astype(np.float64), models)
        for draw in rng.multinomial(total, counts / total, size=replicates)
    ]
    low, high = np.percentile(samples, [2.5, 97.5], axis=0) if samples else (point, point)
    record = {name: {"wins": 0, "ties": 0, "losses": 0} for name in models}
    for lo, hi, value, n in cells:
        if value == TIE_VALUE:
            record[lo]["ties"] += n
            record[hi]["ties"] += n
        else:
            winner, loser = (lo, hi) if value == LO else (hi, lo)
            record[winner]["wins"] += n
            record[loser]["losses"] += n
    board = [
        {
            "model": name,
            "score": float(point[i]),
            "low": float(low[i]),
            "high": float(high[i]),
            **record[name],
        }
        for i, name in enumerate(models)
    ]
    return sorted(board, key=lambda row: -row["score"])


def bradley_terry_leaderboard(
    *, campaign_id: int, criterion: str, replicates: int = 200, seed: int = 0
) -> list[dict]:
    """The campaign's leaderboard for one criterion (see bradley_terry_board)."""
    cells = outcome_cells(campaign_id=campaign_id, criterion=criterion)
    return bradley_terry_board(cells, replicates=replicates, seed=seed)
