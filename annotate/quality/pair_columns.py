"""A pairwise campaign's ratings as numpy columns: one fetch for counters and alpha.

The full recompute used to join a million ratings against their units' value counts in
SQL (about 2 s at 1M) and to group the units a second time for alpha. Here the database
sends each rating as one packed 64-bit word (comparison, rater, value, side, speed bucket,
excluded), concatenated into a single bytea on PostgreSQL, and numpy does the rest:
per-unit value counts once, then every leave-one-out figure from the unit totals
(co-raters agreeing with a rating = its unit's count of that value, less itself).
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection

from annotate.models import Comparison
from annotate.quality.agreement import PAIR_DOMAIN, Patterns
from annotate.quality.encoding import BOTH_BAD_VALUE, PAIR, SPEED_EDGES_MS
from annotate.quality.models import Rating

SPEED_BUCKETS = len(SPEED_EDGES_MS) + 1
# The low bits of a packed word: excluded (1), value (2), side + 1 (2), speed bucket.
_BUCKET_SHIFT = 5
_SMALL_BITS = _BUCKET_SHIFT + (SPEED_BUCKETS - 1).bit_length()
_WORD_BITS = 63  # a signed bigint
# Log-odds closer to 0 than this are a draw: two equal weights cancel up to rounding.
LEAN_TOLERANCE = 1e-9


@dataclass
class PairColumns:
    """One entry per rating of the criterion (pairs only), in no particular order."""

    unit: np.ndarray  # dense unit index, 0..units-1 (a pairwise unit is its comparison)
    rater: np.ndarray  # dense rater index into `raters`
    raters: np.ndarray  # annotator ids
    value: np.ndarray  # 0 lo, 1 tie, 2 hi, 3 both bad
    side: np.ndarray  # +1 lo shown first, -1 otherwise
    bucket: np.ndarray  # speed bucket
    excluded: np.ndarray  # bool
    units: int
    comparisons: np.ndarray | None = None  # comparison id of each unit index

    def unit_counts(self) -> np.ndarray:
        """units x 3: each unit's non-excluded lo / tie / hi counts (both-bad left out)."""
        counted = ~self.excluded & (self.value < BOTH_BAD_VALUE)
        flat = np.bincount(self.unit[counted] * 3 + self.value[counted], minlength=self.units * 3)
        return flat.reshape(self.units, 3)

    @cached_property
    def unit_patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """(the distinct unit count vectors, patterns x 3, in lexicographic order; each
        unit's pattern). With overlap k there are only a few dozen patterns."""
        counts = self.unit_counts()
        base = int(counts.max(initial=0)) + 1
        if base**3 >= 2**62:
            table, inverse = np.unique(counts, axis=0, return_inverse=True)
            return table, inverse.reshape(-1)
        codes = (counts[:, 0] * base + counts[:, 1]) * base + counts[:, 2]
        distinct, inverse = np.unique(codes, return_inverse=True)
        table = np.stack([distinct // (base * base), distinct // base % base, distinct % base], 1)
        return table, inverse.reshape(-1)


def _dense(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index into the sorted distinct ids, the distinct ids); no sort when ids are compact."""
    if len(ids) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    if span > max(4 * len(ids), 1 << 16):
        distinct, index = np.unique(ids, return_inverse=True)
        return index.astype(np.int64), distinct
    present = np.zeros(span, dtype=bool)
    present[ids - low] = True
    remap = np.cumsum(present) - 1
    return remap[ids - low], np.flatnonzero(present) + low


def _words_sql(*, rater_bits: int, packed: bool) -> tuple[list[str], str]:
    """The word expressions and the shared FROM/WHERE; one word, or two when ids are huge."""
    small = (
        f"(CAST(annotator_id AS bigint) * {1 << _SMALL_BITS})"
        f" + speed_bucket * {1 << _BUCKET_SHIFT} + (side + 1) * 8 + value * 2"
        " + CASE WHEN excluded THEN 1 ELSE 0 END"
    )
    if packed:
        words = [f"CAST(comparison_id AS bigint) * {1 << (rater_bits + _SMALL_BITS)} + {small}"]
    else:
        words = ["CAST(comparison_id AS bigint)", small]
    where = (
        f"FROM {Rating._meta.db_table} "  # noqa: S608 (the model's own table name)
        "WHERE campaign_id = %s AND criterion = %s AND kind = %s"
    )
    return words, where


def _fetch_words(words: list[str], where: str, params: list) -> list[np.ndarray]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One bytea per word: a million rows cost one value to send, not a million.
            columns = ", ".join(f"string_agg(int8send({w}), ''::bytea)" for w in words)
            cursor.execute(f"SELECT {columns} {where}", params)  # noqa: S608
            row = cursor.fetchone()
            return [
                np.frombuffer(bytes(blob), dtype=">i8").astype(np.int64)
                if blob
                else np.zeros(0, np.int64)
                for blob in row
            ]
        cursor.execute(f"SELECT {', '.join(words)} {where}", params)  # noqa: S608
        table = np.asarray(cursor.fetchall(), dtype=np.int64).reshape(-1, len(words))
        return [table[:, i] for i in range(len(words))]


def _id_bits(model) -> int:
    """Bits of the largest id the table holds (read off its primary key index): it sizes
    that id's field in the packed word."""
    largest = model.objects.order_by("-pk").values_list("pk", flat=True).first() or 1
    return max(1, int(largest).bit_length())


def pair_columns_fetch(*, campaign_id: int, criterion: str) -> PairColumns:
    """Every pair rating of one criterion of a pairwise campaign, in one query."""
    rater_bits = _id_bits(get_user_model())
    comparison_bits = _id_bits(Comparison)
    packed = comparison_bits + rater_bits + _SMALL_BITS <= _WORD_BITS
    words, where = _words_sql(rater_bits=rater_bits, packed=packed)
    fetched = _fetch_words(words, where, [campaign_id, criterion, PAIR])
    if packed:
        (word,) = fetched
        comparison = word >> (rater_bits + _SMALL_BITS)
        small = word & ((1 << (rater_bits + _SMALL_BITS)) - 1)
    else:
        comparison, small = fetched
    unit, distinct_units = _dense(comparison)
    rater, raters = _dense(small >> _SMALL_BITS)
    return PairColumns(
        unit=unit,
        rater=rater,
        raters=raters,
        value=(small >> 1) & 3,
        side=((small >> 3) & 3) - 1,
        bucket=(small >> _BUCKET_SHIFT) & ((1 << (_SMALL_BITS - _BUCKET_SHIFT)) - 1),
        excluded=(small & 1).astype(bool),
        units=len(distinct_units),
        comparisons=distinct_units,
    )


def columns_patterns(columns: PairColumns) -> Patterns:
    """The units with at least two ratings grouped by count vector, as value_patterns
    reads them from the database, in the same (lexicographic) order."""
    table, unit_pattern = columns.unit_patterns
    units = np.bincount(unit_pattern, minlength=len(table))
    keep = table.sum(axis=1) >= 2
    return Patterns(PAIR_DOMAIN, table[keep].astype(np.int64), units[keep].astype(np.int64))


def pair_counters(columns: PairColumns) -> dict[str, np.ndarray]:
    """Per-rater arrays (aligned with columns.raters) of every counter rater_stats keeps.

    Own figures count all the rater's ratings, excluded or not; co-rater figures pair each
    rating (excluded or not) with the non-excluded ratings of others on its unit, exactly
    like the incremental path. `confusion` is raters x 3 x 3: own value vs the unit's
    leave-one-out majority, where that majority is unique (for Cohen's kappa).

    Two passes over the ratings, each one bincount into a small per-rater table: (speed
    bucket, value, side) for the own figures, (unit pattern, value, excluded) for the
    co-rater ones; everything else is arithmetic on those tables.
    """
    n = len(columns.raters)
    rater, value = columns.rater, columns.value
    own = np.bincount(
        rater * (SPEED_BUCKETS * 12) + columns.bucket * 12 + value * 3 + columns.side + 1,
        minlength=n * SPEED_BUCKETS * 12,
    ).reshape(n, SPEED_BUCKETS, 4, 3)
    by_value = own.sum(axis=(1, 3))  # raters x value
    by_value_side = own.sum(axis=1)  # raters x value x (side + 1)
    decided = by_value[:, 0] + by_value[:, 2]
    figures = {
        "judgments": by_value.sum(axis=1),
        "n_lo": by_value[:, 0],
        "n_tie": by_value[:, 1],
        "n_hi": by_value[:, 2],
        "both_bad": by_value[:, BOTH_BAD_VALUE],
        "tie_judgments": by_value[:, 1],
        "pos_n": decided,
        "pos_pairs": decided,
        # side x (1 - value): lo chosen counts its side, hi chosen the opposite.
        "pos_sum": (by_value_side[:, 0, 2] - by_value_side[:, 0, 0])
        - (by_value_side[:, 2, 2] - by_value_side[:, 2, 0]),
        "pos_sumsq": decided,
        "speed_hist": own.sum(axis=(2, 3)),
    }

    patterns, unit_pattern = columns.unit_patterns
    kinds = len(patterns)
    co = np.bincount(
        rater * (kinds * 8) + unit_pattern[columns.unit] * 8 + value * 2 + columns.excluded,
        minlength=n * kinds * 8,
    ).reshape(n, kinds, 4, 2)[:, :, :BOTH_BAD_VALUE, :]  # both-bad has no co-raters
    # Leave-one-out counts for every (pattern, own value, excluded): the unit's counts
    # less the rating itself where it is one of them (counted = not excluded).
    others = np.broadcast_to(patterns[:, None, None, :], (kinds, 3, 2, 3)).copy()
    for own_value in range(3):
        others[:, own_value, 0, own_value] -= 1
    total = others.sum(axis=3)  # pattern x value x excluded
    agreeing = np.take_along_axis(others, np.arange(3)[None, :, None, None], axis=3)[..., 0]
    paired = total > 0
    figures["co_pairs"] = (co * (total * paired)).sum(axis=(1, 2, 3))
    figures["co_agree"] = (co * (agreeing * paired)).sum(axis=(1, 2, 3))
    figures["co_rated"] = (co * paired).sum(axis=(1, 2, 3))
    top = others.max(axis=3)
    clear = paired & ((others == top[..., None]).sum(axis=3) == 1)
    majority = others.argmax(axis=3)
    confusion = np.zeros((n, 3, 3), dtype=np.int64)
    for own_value in range(3):
        for majority_value in range(3):
            cells = clear[:, own_value, :] & (majority[:, own_value, :] == majority_value)
            confusion[:, own_value, majority_value] = (co[:, :, own_value, :] * cells).sum(
                axis=(1, 2)
            )
    figures["confusion"] = confusion
    return figures


def confusion_among(columns: PairColumns, keep: np.ndarray) -> np.ndarray:
    """raters x 3 x 3 like pair_counters' `confusion`, counting only the ratings in `keep`
    (a mask over the ratings): both the rater's own value and the leave-one-out majority
    come from the kept ratings alone."""
    n = len(columns.raters)
    confusion = np.zeros((n, 3, 3), dtype=np.int64)
    rated = keep & (columns.value < BOTH_BAD_VALUE)
    counted = rated & ~columns.excluded
    counts = np.bincount(
        columns.unit[counted] * 3 + columns.value[counted], minlength=columns.units * 3
    ).reshape(columns.units, 3)
    unit, value, rater = columns.unit[rated], columns.value[rated], columns.rater[rated]
    others = counts[unit].copy()
    own = ~columns.excluded[rated]
    others[np.flatnonzero(own), value[own]] -= 1
    top = others.max(axis=1)
    clear = (others.sum(axis=1) > 0) & ((others == top[:, None]).sum(axis=1) == 1)
    majority = others.argmax(axis=1)
    np.add.at(confusion, (rater[clear], value[clear], majority[clear]), 1)
    return confusion


def confusion_against_consensus(
    *,
    unit: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    excluded: np.ndarray,
    weight: np.ndarray,
    n_raters: int,
    units: int,
) -> np.ndarray:
    """raters x 3 x 3: each rating's own value against the side its unit's other votes lean
    to in the one-coin model (annotate.quality.posterior): a non-excluded lo or hi vote
    moves the unit's log-odds by its rater's `weight` (indexed by rater), a tie or "both
    bad" moves nothing. Where the others' votes cancel out, or there are none, the rating is
    left out. Aligned arrays over the ratings, `unit` and `rater` dense indices."""
    rated = value < BOTH_BAD_VALUE
    sign = np.where(value == 0, 1.0, np.where(value == 2, -1.0, 0.0))
    push = np.where(rated & ~excluded, sign * weight[rater], 0.0)
    others = np.bincount(unit, weights=push, minlength=units)[unit] - push
    keep = rated & (np.abs(others) > LEAN_TOLERANCE)
    side = np.where(others > 0, 0, 2)
    confusion = np.zeros((n_raters, 3, 3), dtype=np.int64)
    np.add.at(confusion, (rater[keep], value[keep], side[keep]), 1)
    return confusion
