"""Bradley-Terry scores per model (ties count half) with bootstrap intervals, via evalica.

The ratings are first summed per (model lo, model hi, outcome) in SQL, so the fit sees a
handful of weighted rows however many judgments there are; the bootstrap resamples those
outcomes multinomially, which is resampling judgments with replacement.
"""

import evalica
import numpy as np
from django.db import connection

from annotate.models import Image
from annotate.quality.encoding import DERIVED, HI, LO, PAIR, TIE_VALUE
from annotate.quality.models import Rating

_CELLS_SQL = """
SELECT lo.model_name, hi.model_name, r.value, COUNT(*)
FROM {ratings} AS r
JOIN {images} AS lo ON lo.id = r.image_lo_id
JOIN {images} AS hi ON hi.id = r.image_hi_id
WHERE r.campaign_id = %s AND r.criterion = %s AND r.kind IN ({pair}, {derived})
  AND NOT r.excluded AND r.value IN ({lo_v}, {tie_v}, {hi_v})
GROUP BY lo.model_name, hi.model_name, r.value
"""

_WINNER = {LO: evalica.Winner.X, TIE_VALUE: evalica.Winner.Draw, HI: evalica.Winner.Y}


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


def _fit(cells: list[tuple[str, str, int, int]], weights: np.ndarray, index=None):
    keep = weights > 0
    xs = [c[0] for c, k in zip(cells, keep, strict=True) if k]
    ys = [c[1] for c, k in zip(cells, keep, strict=True) if k]
    winners = [_WINNER[c[2]] for c, k in zip(cells, keep, strict=True) if k]
    return evalica.bradley_terry(xs, ys, winners, weights=weights[keep].tolist(), index=index)


def _log_scores(scores) -> np.ndarray:
    logs = np.log(np.maximum(scores.to_numpy(dtype=np.float64), 1e-12))
    return logs - logs.mean()


def bradley_terry_leaderboard(
    *, campaign_id: int, criterion: str, replicates: int = 200, seed: int = 0
) -> list[dict]:
    """Models best first: log-strength (mean 0), 95% interval, wins/ties/losses."""
    cells = outcome_cells(campaign_id=campaign_id, criterion=criterion)
    if not cells:
        return []
    counts = np.asarray([c[3] for c in cells], dtype=np.float64)
    result = _fit(cells, counts)
    index = result.index
    point = _log_scores(result.scores)
    total = int(counts.sum())
    rng = np.random.default_rng(seed)
    samples = []
    for draw in rng.multinomial(total, counts / total, size=replicates):
        fitted = _fit(cells, draw.astype(np.float64), index=index)
        samples.append(_log_scores(fitted.scores.reindex(index).fillna(1e-12)))
    low, high = np.percentile(samples, [2.5, 97.5], axis=0) if samples else (point, point)
    record = {name: {"wins": 0, "ties": 0, "losses": 0} for name in index}
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
        for i, name in enumerate(index)
    ]
    return sorted(board, key=lambda row: -row["score"])
