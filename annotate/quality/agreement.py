"""Krippendorff's alpha from per-unit value counts, its unit bootstrap, and its timeline.

Never a raters x units matrix (10k raters x 500k units would be 40 GB): the database
groups the ratings per unit, then groups units by their count vector ("pattern"). With
overlap 3 there are only a dozen patterns, so a unit bootstrap is a multinomial draw over
patterns, thousands of replicates in milliseconds, exact for resampling units.
"""

from dataclasses import dataclass
from datetime import UTC

import krippendorff
import numpy as np
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotate.quality.encoding import BOTH_BAD_VALUE, DERIVED, PAIR, RANK
from annotate.quality.models import Rating

PAIR_DOMAIN = [0, 1, 2]  # lo better < tie < hi better: ordered, so ordinal alpha applies


@dataclass
class Patterns:
    """Distinct per-unit count vectors over `domain` and how many units share each."""

    domain: list[int]
    counts: np.ndarray  # patterns x values
    units: np.ndarray  # how many units have each pattern

    @property
    def unit_total(self) -> int:
        return int(self.units.sum())

    @property
    def rating_total(self) -> int:
        return int((self.counts.sum(axis=1) * self.units).sum())


def rank_domain(k: int) -> list[int]:
    """Rank units hold 2 x mid-rank, so the values are 2..2k."""
    return list(range(2, 2 * k + 1))


def _unit_counts_sql(domain: list[int], *, kind: int, with_time: bool) -> str:
    columns = ", ".join(f"SUM(CASE WHEN value = {v} THEN 1 ELSE 0 END) AS c{v}" for v in domain)
    # A pairwise unit is its comparison: grouping on one integer is much cheaper.
    unit = "comparison_id" if kind == PAIR else "comparison_id, image_lo_id, image_hi_id"
    last = "MAX(created_at) AS last, " if with_time else ""
    # Only integers from our own domain and the model's table name are interpolated.
    return (
        f"SELECT {unit}, {last}{columns} FROM {Rating._meta.db_table} "  # noqa: S608
        "WHERE campaign_id = %s AND criterion = %s AND kind = %s AND NOT excluded AND value <> %s "
        f"GROUP BY {unit} HAVING COUNT(*) >= 2"
    )


def value_patterns(*, campaign_id: int, criterion: str, kind: int, domain: list[int]) -> Patterns:
    """Units with at least two ratings, grouped by count vector, in one query."""
    names = ", ".join(f"c{v}" for v in domain)
    inner = _unit_counts_sql(domain, kind=kind, with_time=False)
    # Ordered, so the bootstrap's draws do not depend on the order groups come out in.
    sql = (
        f"SELECT {names}, COUNT(*) FROM ({inner}) AS units "  # noqa: S608
        f"GROUP BY {names} ORDER BY {names}"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL work_mem = '64MB'")  # the per-unit hash table fits
        cursor.execute(sql, [campaign_id, criterion, kind, BOTH_BAD_VALUE])
        rows = cursor.fetchall()
    if not rows:
        return Patterns(domain, np.zeros((0, len(domain)), dtype=np.int64), np.zeros(0, np.int64))
    table = np.asarray(rows, dtype=np.int64)
    return Patterns(domain, table[:, :-1], table[:, -1])


def unit_counts_by_completion(
    *, campaign_id: int, criterion: str, kind: int, domain: list[int]
) -> tuple[np.ndarray, list]:
    """Per-unit count vectors and completion times, ordered by the time the unit's latest rating arrived."""
    sql = _unit_counts_sql(domain, kind=kind, with_time=True) + " ORDER BY last, comparison_id"
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id, criterion, kind, BOTH_BAD_VALUE])
        rows = cursor.fetchall()
    if not rows:
        return np.zeros((0, len(domain)), dtype=np.int64), []
    first = 2 if kind == PAIR else 4  # after the unit's columns and its last time
    times = [_aware(row[first - 1]) for row in rows]
    return np.asarray([row[first:] for row in rows], dtype=np.int64), times


def _aware(value):
    """Raw SQL gives SQLite's timestamps as text; hand out datetimes on every backend."""
    if isinstance(value, str):
        value = parse_datetime(value)
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
    return value


def pattern_coincidences(counts: np.ndarray) -> np.ndarray:
    """Each unit's coincidence matrix: (n n^T - diag(n)) / (m - 1), m = ratings in the unit."""
    counts = counts.astype(np.float64)
    m = counts.sum(axis=1)
    outer = counts[:, :, None] * counts[:, None, :]
    outer[:, np.arange(counts.shape[1]), np.arange(counts.shape[1])] -= counts
    return outer / np.maximum(m - 1, 1)[:, None, None]


def distances(domain: list[int], level: str, totals: np.ndarray) -> np.ndarray:
    """Squared distances between values (Krippendorff 2011); ordinal uses the marginals."""
    v = len(domain)
    if level == "nominal":
        return 1.0 - np.eye(v)
    if level == "ordinal":
        cumulative = np.concatenate([[0.0], np.cumsum(totals)])
        d = np.zeros((v, v))
        for i in range(v):
            for j in range(v):
                low, high = min(i, j), max(i, j)
                d[i, j] = (
                    cumulative[high + 1] - cumulative[low] - (totals[i] + totals[j]) / 2
                ) ** 2
        return d
    values = np.asarray(domain, dtype=np.float64)
    return (values[:, None] - values[None, :]) ** 2  # interval


def alpha_from_coincidences(o: np.ndarray, domain: list[int], level: str) -> float | None:
    """Alpha from a coincidence matrix; None when undefined (all values identical)."""
    totals = o.sum(axis=0)
    n = totals.sum()
    if n <= 1:
        return None
    e = (np.outer(totals, totals) - np.diag(totals)) / (n - 1)
    d = distances(domain, level, totals)
    expected = (e * d).sum()
    if expected <= 1e-12:
        return None
    return float(1.0 - (o * d).sum() / expected)


def alpha_package(patterns: Patterns, level: str) -> float | None:
    """The `krippendorff` package on the per-unit value counts (the level always passed)."""
    if patterns.unit_total == 0 or (patterns.counts.sum(axis=0) > 0).sum() < 2:
        return None
    value_counts = np.repeat(patterns.counts, patterns.units, axis=0)
    return float(
        krippendorff.alpha(
            value_counts=value_counts,
            value_domain=patterns.domain,
            level_of_measurement=level,
        )
    )


def alpha_from_patterns(patterns: Patterns, level: str) -> float | None:
    """Alpha from the patterns' summed coincidences: the package's figure (the tests
    cross-check the two), without expanding the patterns back into one row per unit."""
    if patterns.unit_total == 0:
        return None
    per_pattern = pattern_coincidences(patterns.counts)
    o = np.einsum("p,pij->ij", patterns.units.astype(np.float64), per_pattern)
    return alpha_from_coincidences(o, patterns.domain, level)


def alpha_bootstrap(
    patterns: Patterns, level: str, *, replicates: int = 1000, seed: int = 0
) -> tuple[float | None, float | None]:
    """95% percentile interval from resampling units with replacement."""
    total = patterns.unit_total
    if total < 2:
        return None, None
    per_pattern = pattern_coincidences(patterns.counts)  # patterns x V x V
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(total, patterns.units / total, size=replicates)
    stacked = np.einsum("bp,pij->bij", draws, per_pattern)
    values = [alpha_from_coincidences(o, patterns.domain, level) for o in stacked]
    values = [v for v in values if v is not None]
    if len(values) < replicates // 2:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def agreement_for(
    *,
    campaign_id: int,
    criterion: str,
    kind: int,
    domain: list[int],
    replicates: int = 1000,
    min_units: int = 0,
    patterns: Patterns | None = None,
) -> dict:
    """Nominal (headline) and ordinal alpha with intervals for one criterion and unit kind.

    `patterns` skips the database read when the caller has the unit counts already.
    """
    if patterns is None:
        patterns = value_patterns(
            campaign_id=campaign_id, criterion=criterion, kind=kind, domain=domain
        )
    result: dict = {
        "criterion": criterion,
        "unit": {PAIR: "pair", RANK: "rank", DERIVED: "derived_pair"}[kind],
        "units": patterns.unit_total,
        "ratings": patterns.rating_total,
    }
    levels = ("nominal", "ordinal")
    if patterns.unit_total < max(min_units, 1):
        result["status"] = "too_few_units"
        for level in levels:
            result[level] = {"alpha": None, "low": None, "high": None}
        return result
    status = "ok"
    for level in levels:
        value = alpha_from_patterns(patterns, level)
        if value is None or not np.isfinite(value):
            status = "undefined"
            result[level] = {"alpha": None, "low": None, "high": None}
            continue
        low, high = alpha_bootstrap(patterns, level, replicates=replicates)
        result[level] = {"alpha": value, "low": low, "high": high}
    result["status"] = status
    return result


def alpha_windows(
    unit_counts: np.ndarray,
    times: list,
    domain: list[int],
    *,
    window: int,
    drop: float,
    trailing: int,
    level: str = "nominal",
) -> list[dict]:
    """Alpha over consecutive windows of `window` units in completion order.

    Each window after the first gets a baseline: the pooled alpha of up to `trailing`
    windows before it; `alert` is set when the window falls more than `drop` below it.
    """
    if len(unit_counts) == 0:
        return []
    per_unit = pattern_coincidences(unit_counts)
    windows = []
    starts = list(range(0, len(unit_counts), window))
    for index, start in enumerate(starts):
        stop = min(start + window, len(unit_counts))
        value = alpha_from_coincidences(per_unit[start:stop].sum(axis=0), domain, level)
        baseline = None
        if index > 0:
            first = starts[max(0, index - trailing)]
            baseline = alpha_from_coincidences(per_unit[first:start].sum(axis=0), domain, level)
        windows.append(
            {
                "index": index,
                "units": stop - start,
                "start": times[start],
                "end": times[stop - 1],
                "alpha": value,
                "baseline": baseline,
                "alert": bool(
                    value is not None and baseline is not None and value < baseline - drop
                ),
            }
        )
    return windows
