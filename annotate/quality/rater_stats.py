"""Per-rater counters: kept incrementally in the submit transaction, rebuilt by a recompute.

Both paths define every counter the same way, on the campaign's first criterion:
- own labels, ties, both-bad, position and speed from the rater's own first judgments;
- co-rater pairs and agreements with the non-excluded ratings of others on the same unit
  (pairs for pairwise campaigns, derived pairs for rankings), counted for both raters of a
  pair, so a rater's figures keep growing as later raters meet their units;
- gold and repeat counters from the gold and repeat judgments.
The incremental path never scans a rater's history: the rating insert and a read of the
unit's other ratings (one statement on PostgreSQL), then one UPDATE that locks the involved
stats rows in id order and moves all of them.
"""

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Count, F, JSONField, Q
from django.db.models.fields.json import KeyTextTransform

from annotate.models import Assignment, Campaign, Comparison, Judgment
from annotate.quality.encoding import (
    BOTH_BAD_VALUE,
    DERIVED,
    PAIR,
    SPEED_EDGES_MS,
    TIE_VALUE,
    Unit,
    encode_answer,
    judgment_ms,
    mid_ranks,
    position_score,
    speed_bucket,
)
from annotate.quality.models import RaterStats, Rating
from annotate.quality.pair_columns import (
    SPEED_BUCKETS,
    PairColumns,
    confusion_against_consensus,
    confusion_among,
    pair_columns_fetch,
    pair_counters,
)
from annotate.quality.posterior import rater_accuracy, vote_weight
from annotate.quality.rules import (
    GOLD_COUNTERS,
    drift_steps,
    gold_replay,
    policy_for,
    recent_decay,
)
from annotate.selectors import comparison_canonical_images

COUNTERS = (
    "judgments",
    "n_lo",
    "n_tie",
    "n_hi",
    "both_bad",
    "tie_judgments",
    "co_rated",
    "co_pairs",
    "co_agree",
    "pos_n",
    "pos_pairs",
    "pos_sum",
    "pos_sumsq",
    *GOLD_COUNTERS,
    "repeats",
    "repeats_same",
)


def primary_criterion(campaign: Campaign) -> str:
    return campaign.criteria[0]["key"]


def _is_pairish(unit: Unit) -> bool:
    return unit.kind in (PAIR, DERIVED)


def own_increments(units: list[Unit], *, milliseconds: int) -> dict[str, Any]:
    """What one judgment adds to its rater's own counters (first criterion's units)."""
    pairs = [u for u in units if _is_pairish(u)]
    values = [u.value for u in pairs]
    ties = values.count(TIE_VALUE)
    both_bad = values.count(BOTH_BAD_VALUE)
    non_tie = len(values) - ties - both_bad
    score = position_score(pairs)
    return {
        "judgments": 1,
        "n_lo": values.count(0),
        "n_tie": ties,
        "n_hi": values.count(2),
        "both_bad": both_bad,
        "tie_judgments": int(2 * ties > len(values)),
        "pos_n": int(non_tie > 0),
        "pos_pairs": non_tie,
        "pos_sum": score,
        "pos_sumsq": score * score,
        "bucket": speed_bucket(milliseconds),
    }


def _rating_rows(
    *, judgment: Judgment, campaign: Campaign, images: list[tuple[int, str]]
) -> tuple[list[Rating], list[Unit]]:
    """A regular judgment's ratings, and the first criterion's units."""
    bucket = speed_bucket(
        judgment_ms(duration_ms=judgment.duration_ms, server_ms=judgment.server_ms)
    )
    rows, primary_units = [], []
    primary = primary_criterion(campaign)
    for criterion in campaign.criteria:
        key = criterion["key"]
        units = encode_answer(
            answer=judgment.answers[key], images=images, presented=judgment.presented
        )
        if key == primary:
            primary_units = units
        rows.extend(
            Rating(
                campaign_id=campaign.pk,
                comparison_id=judgment.comparison_id,
                judgment_id=judgment.pk,
                annotator_id=judgment.annotator_id,
                criterion=key,
                kind=u.kind,
                image_lo_id=u.lo,
                image_hi_id=u.hi,
                value=u.value,
                side=u.side,
                speed_bucket=bucket,
                created_at=judgment.created_at,
            )
            for u in units
        )
    return rows, primary_units


def judgment_units(
    *, judgment: Judgment, campaign: Campaign, images: list[tuple[int, str]]
) -> list[Unit]:
    """A regular judgment's first-criterion units: what its rater's own counters moved by."""
    return _rating_rows(judgment=judgment, campaign=campaign, images=images)[1]


def ratings_store(
    *, judgment: Judgment, campaign: Campaign, images: list[tuple[int, str]] | None = None
) -> list[Unit]:
    """Encode and store a regular judgment's ratings; returns the first criterion's units.

    `images`: the comparison's (image id, uid) in canonical order, read here when not given.
    """
    if images is None:
        images = comparison_canonical_images(comparison_id=judgment.comparison_id)
    rows, units = _rating_rows(judgment=judgment, campaign=campaign, images=images)
    Rating.objects.bulk_create(rows)
    return units


_RATING_COLUMNS = (
    "campaign_id",
    "comparison_id",
    "judgment_id",
    "annotator_id",
    "criterion",
    "kind",
    "image_lo_id",
    "image_hi_id",
    "value",
    "side",
    "speed_bucket",
    "excluded",
    "created_at",
)

# PostgreSQL: store the new ratings and read the unit's earlier ones in one round trip. The
# SELECT runs on the statement's snapshot, so it does not see the rows the INSERT adds.
_STORE_AND_READ_OTHERS_SQL = """
WITH stored AS (
    INSERT INTO annotate_rating ({columns}) VALUES {values}
)
SELECT annotator_id, image_lo_id, image_hi_id, value, excluded FROM annotate_rating
WHERE comparison_id = %s AND criterion = %s AND kind IN ({pair}, {derived}) AND value < {both_bad}
"""


def _store_and_read_others(
    *, judgment: Judgment, campaign: Campaign, images: list[tuple[int, str]] | None
) -> tuple[list[Unit], list[tuple[int, int, int, int, bool]]]:
    """Store the judgment's ratings; return its first criterion's units and the (annotator,
    lo, hi, value, excluded) of the unit's other pair ratings on that criterion."""
    primary = primary_criterion(campaign)
    if connection.vendor == "postgresql" and images is not None:
        rows, units = _rating_rows(judgment=judgment, campaign=campaign, images=images)
        params: list[Any] = []
        for row in rows:
            params.extend(getattr(row, column) for column in _RATING_COLUMNS)
        placeholder = "(" + ", ".join(["%s"] * len(_RATING_COLUMNS)) + ")"
        sql = _STORE_AND_READ_OTHERS_SQL.format(
            columns=", ".join(_RATING_COLUMNS),
            values=", ".join([placeholder] * len(rows)),
            pair=PAIR,
            derived=DERIVED,
            both_bad=BOTH_BAD_VALUE,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, judgment.comparison_id, primary])
            return units, cursor.fetchall()
    units = ratings_store(judgment=judgment, campaign=campaign, images=images)
    others = list(
        Rating.objects.filter(
            comparison_id=judgment.comparison_id,
            criterion=primary,
            kind__in=(PAIR, DERIVED),
            value__lt=BOTH_BAD_VALUE,
        )
        .exclude(judgment_id=judgment.pk)
        .values_list("annotator_id", "image_lo_id", "image_hi_id", "value", "excluded")
    )
    return units, others


def co_rater_updates(
    mine: list[Unit], others: list[tuple[int, int, int, int, bool]]
) -> tuple[dict[str, int], dict[int, dict[str, int]]]:
    """Pair counters for the new rating and for each earlier rater of the same units.

    `others` = (annotator, lo, hi, value, excluded) of the unit's other ratings. Excluded
    ratings never count as a co-rater for anyone; their raters still count pairs with the
    new, non-excluded rating, exactly as the recompute does.
    """
    my_values = {
        (u.lo, u.hi): u.value for u in mine if _is_pairish(u) and u.value != BOTH_BAD_VALUE
    }
    own = {"co_rated": 0, "co_pairs": 0, "co_agree": 0}
    if not my_values:
        return own, {}
    per_rater: dict[int, dict[str, int]] = defaultdict(lambda: {"pairs": 0, "agree": 0})
    excluded: dict[int, bool] = {}
    for annotator_id, lo, hi, value, is_excluded in others:
        mine_value = my_values.get((lo, hi))
        if mine_value is None:
            continue
        per_rater[annotator_id]["pairs"] += 1
        per_rater[annotator_id]["agree"] += int(value == mine_value)
        excluded[annotator_id] = is_excluded
    counted = [a for a in per_rater if not excluded[a]]
    for annotator_id in counted:
        own["co_pairs"] += per_rater[annotator_id]["pairs"]
        own["co_agree"] += per_rater[annotator_id]["agree"]
    own["co_rated"] = int(bool(counted))
    theirs = {}
    for annotator_id, figures in per_rater.items():
        # Their judgment gains its first co-rater when nobody else counted before this one.
        before = len(counted) - (0 if excluded[annotator_id] else 1)
        theirs[annotator_id] = {
            "co_pairs": figures["pairs"],
            "co_agree": figures["agree"],
            "co_rated": int(before == 0),
        }
    return own, theirs


def stats_on_regular(
    *,
    judgment: Judgment,
    campaign: Campaign,
    images: list[tuple[int, str]] | None = None,
    policy: dict | None = None,
) -> RaterStats:
    """Store the ratings and move every affected counter. Needs the submit's transaction.

    Runs after the submit updated the comparison row, so concurrent submits on the same
    comparison are serialised by that row lock: each sees the ratings committed before it,
    and no co-rater pair is missed or counted twice. `images` as for ratings_store;
    `policy`: the campaign's (policy_for), when the caller has it already.
    """
    units, others = _store_and_read_others(judgment=judgment, campaign=campaign, images=images)
    own_pairs, theirs = co_rater_updates(units, others)
    increments = own_increments(
        units,
        milliseconds=judgment_ms(duration_ms=judgment.duration_ms, server_ms=judgment.server_ms),
    )
    bucket = increments.pop("bucket")
    increments.update(own_pairs)
    milliseconds = judgment_ms(duration_ms=judgment.duration_ms, server_ms=judgment.server_ms)
    return stats_increment(
        campaign_id=campaign.pk,
        annotator_id=judgment.annotator_id,
        own=increments,
        bucket=bucket,
        theirs=theirs,
        recent=recent_steps(
            policy=policy or policy_for(campaign),
            annotator_id=judgment.annotator_id,
            own=increments,
            theirs=theirs,
            milliseconds=milliseconds,
        ),
    )


@dataclass(frozen=True)
class RecentStep:
    """What one submit does to a rater's recent figures (quality.rules): the pairs' weight
    decay and counts, the CUSUM's step, and for the submitting rater the judgment time's."""

    decay: float
    pairs: int
    agree: int
    drift: float
    speed_decay: float | None = None
    log_ms: float | None = None


def recent_steps(
    *,
    policy: dict,
    annotator_id: int,
    own: dict[str, int],
    theirs: dict[int, dict[str, int]],
    milliseconds: int,
) -> dict[int, RecentStep]:
    """The recent figures' steps for the submitting rater and each co-rater who gained pairs."""
    up_agree, up_disagree = drift_steps(policy)
    steps = {}
    for rater, inc in {**theirs, annotator_id: own}.items():
        pairs, agree = inc.get("co_pairs", 0), inc.get("co_agree", 0)
        steps[rater] = RecentStep(
            decay=recent_decay(policy, steps=pairs, span_key="recent_pairs"),
            pairs=pairs,
            agree=agree,
            drift=agree * up_agree + (pairs - agree) * up_disagree,
        )
    steps[annotator_id] = RecentStep(
        **{
            **steps[annotator_id].__dict__,
            "speed_decay": recent_decay(policy, steps=1, span_key="recent_judgments"),
            "log_ms": math.log(max(1, milliseconds)),
        }
    )
    return steps


def _recent_assignments(recent: dict[int, RecentStep]) -> tuple[list[str], list[Any]]:
    """SET clauses moving the recent figures (the arithmetic of quality.rules'
    drift_cusum_step and recent_decay), one CASE per column over the raters."""
    floor = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    columns = {
        "co_recent_pairs": "co_recent_pairs * %s + %s",
        "co_recent_agree": "co_recent_agree * %s + %s",
        "drift_cusum": f"{floor}(0.0, drift_cusum + %s)",
    }
    assignments, params = [], []
    moved = {rater: step for rater, step in recent.items() if step.pairs}
    for column, expression in columns.items():
        if not moved:
            break
        whens = []
        for rater, step in moved.items():
            whens.append(f"WHEN %s THEN {expression}")
            params.append(rater)
            if column == "co_recent_pairs":
                params.extend([step.decay, float(step.pairs)])
            elif column == "co_recent_agree":
                params.extend([step.decay, float(step.agree)])
            else:
                params.append(step.drift)
        assignments.append(f"{column} = CASE annotator_id {' '.join(whens)} ELSE {column} END")
    for rater, step in recent.items():
        if step.log_ms is not None:
            assignments.append(
                "speed_recent_log = CASE WHEN annotator_id = %s THEN "
                "COALESCE(speed_recent_log * %s + %s, %s) ELSE speed_recent_log END"
            )
            params.extend(
                [rater, step.speed_decay, (1 - step.speed_decay) * step.log_ms, step.log_ms]
            )
    return assignments, params


_STATS_COLUMNS = [f.attname for f in RaterStats._meta.concrete_fields]

# One UPDATE for the rater's counters and their co-raters'. The rows are locked in id order
# first (the subquery; PostgreSQL only, SQLite's write transaction already excludes everyone
# else), so two submits that touch the same raters cannot deadlock.
_STATS_INCREMENT_SQL = """
UPDATE annotate_raterstats SET {assignments}
WHERE id IN (
    SELECT id FROM annotate_raterstats
    WHERE campaign_id = %s AND annotator_id IN ({annotators})
    ORDER BY id{lock}
)
RETURNING {returning}
"""


def _speed_hist_increment(bucket: int, step: int = 1) -> str:
    """SQL for the speed histogram with `step` more in `bucket` (ints, never user input)."""
    bucket, step = int(bucket), int(step)
    fresh = json.dumps([step * int(i == bucket) for i in range(SPEED_BUCKETS)])
    if connection.vendor == "postgresql":
        return (
            f"CASE WHEN jsonb_array_length(speed_hist) = 0 THEN '{fresh}'::jsonb ELSE "
            f"jsonb_set(speed_hist, '{{{bucket}}}', "
            f"to_jsonb(COALESCE((speed_hist->>{bucket})::int, 0) + ({step}))) END"
        )
    return (
        f"CASE WHEN json_array_length(speed_hist) = 0 THEN '{fresh}' ELSE "
        f"json_set(speed_hist, '$[{bucket}]', "
        f"COALESCE(json_extract(speed_hist, '$[{bucket}]'), 0) + ({step})) END"
    )


def _stats_from_row(row: tuple) -> RaterStats:
    """A RaterStats from a raw RETURNING row (SQLite hands back text and 0/1 there)."""
    values = {}
    for field, value in zip(RaterStats._meta.concrete_fields, row, strict=True):
        if isinstance(field, JSONField):
            values[field.attname] = json.loads(value) if isinstance(value, str) else value
        else:
            values[field.attname] = field.to_python(value)
    return RaterStats(**values)


def stats_increment(
    *,
    campaign_id: int,
    annotator_id: int,
    own: dict[str, int],
    bucket: int | None = None,
    theirs: dict[int, dict[str, int]] | None = None,
    bucket_step: int = 1,
    recent: dict[int, RecentStep] | None = None,
) -> RaterStats:
    """Add `own` to the rater's counters (and `bucket_step` to speed bucket `bucket`),
    `theirs` to other raters' counters, in one statement; the rater's row as updated.
    Negative steps take a judgment back out. `recent` (a submit's, from recent_steps)
    moves the recent figures in the same statement. Needs a transaction.

    The rater's row is created on their first counted judgment.
    """
    theirs = {a: inc for a, inc in (theirs or {}).items() if a != annotator_id}
    everyone = {annotator_id: own, **theirs}
    fields = sorted({name for inc in everyone.values() for name, step in inc.items() if step})
    assignments, params = [], []
    for name in fields:
        whens = []
        for rater, inc in everyone.items():
            if inc.get(name):
                whens.append("WHEN %s THEN %s")
                params.extend([rater, int(inc[name])])
        assignments.append(f"{name} = {name} + CASE annotator_id {' '.join(whens)} ELSE 0 END")
    if bucket is not None:
        assignments.append(
            "speed_hist = CASE WHEN annotator_id = %s THEN "
            f"{_speed_hist_increment(bucket, bucket_step)} "
            "ELSE speed_hist END"
        )
        params.append(annotator_id)
    recent = {a: step for a, step in (recent or {}).items() if a in everyone}
    recent_sql, recent_params = _recent_assignments(recent)
    assignments.extend(recent_sql)
    params.extend(recent_params)
    if not assignments:  # nothing to add: a no-op that still reads the row back
        assignments.append("judgments = judgments")
    sql = _STATS_INCREMENT_SQL.format(
        assignments=", ".join(assignments),
        annotators=", ".join(["%s"] * len(everyone)),
        lock=" FOR UPDATE" if connection.vendor == "postgresql" else "",
        returning=", ".join(_STATS_COLUMNS),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, campaign_id, *everyone])
        rows = cursor.fetchall()
    mine = [row for row in rows if row[_STATS_COLUMNS.index("annotator_id")] == annotator_id]
    if mine:
        return _stats_from_row(mine[0])
    # The rater's first counted judgment: their row starts from these increments.
    hist = [0] * SPEED_BUCKETS
    if bucket is not None:
        hist[bucket] = 1
    first = {}
    if (step := recent.get(annotator_id)) is not None:
        first = {
            "co_recent_pairs": float(step.pairs),
            "co_recent_agree": float(step.agree),
            "drift_cusum": max(0.0, step.drift),
            "speed_recent_log": step.log_ms,
        }
    return RaterStats.objects.create(
        campaign_id=campaign_id,
        annotator_id=annotator_id,
        speed_hist=hist,
        **own,
        **first,
    )


def stats_for_update_free(*, campaign: Campaign, annotator_id: int) -> RaterStats:
    """The rater's stats row, created if missing, read without a row lock."""
    stats, _ = RaterStats.objects.get_or_create(
        campaign=campaign, annotator_id=annotator_id, defaults={"speed_hist": [0] * SPEED_BUCKETS}
    )
    return stats


def stats_add(*, stats: RaterStats, **increments: int) -> None:
    RaterStats.objects.filter(pk=stats.pk).update(
        **{name: F(name) + step for name, step in increments.items()}
    )
    for name, step in increments.items():
        setattr(stats, name, getattr(stats, name) + step)


def same_answer(first: Any, second: Any) -> bool:
    """Pairwise: the same image (or tie); ranking: the same ranks, tier order aside."""
    if isinstance(first, list) and isinstance(second, list):
        return mid_ranks(first) == mid_ranks(second)
    return first == second


# -- full recompute -------------------------------------------------------------------------

# Per judgment first (a ranking yields several pairs per judgment), then per rater.
_OWN_SQL = """
SELECT annotator_id, COUNT(*), SUM(lo), SUM(tie), SUM(hi), SUM(bb),
       SUM(CASE WHEN 2 * tie > pairs THEN 1 ELSE 0 END),
       SUM(CASE WHEN pairs - tie - bb > 0 THEN 1 ELSE 0 END),
       SUM(pairs - tie - bb), SUM(s), SUM(s * s)
FROM (
    SELECT annotator_id, judgment_id, COUNT(*) AS pairs,
           SUM(CASE WHEN value = 0 THEN 1 ELSE 0 END) AS lo,
           SUM(CASE WHEN value = 1 THEN 1 ELSE 0 END) AS tie,
           SUM(CASE WHEN value = 2 THEN 1 ELSE 0 END) AS hi,
           SUM(CASE WHEN value = 3 THEN 1 ELSE 0 END) AS bb,
           SUM(CASE WHEN value < 3 THEN side * (1 - value) ELSE 0 END) AS s
    FROM {table}
    WHERE campaign_id = %s AND criterion = %s AND kind IN (0, 2)
    GROUP BY annotator_id, judgment_id
) AS per_judgment
GROUP BY annotator_id
"""

# Each rating against its unit's non-excluded value counts, less its own (leave-one-out).
_CO_SQL = """
SELECT r.annotator_id, r.value,
       t.n0 - CASE WHEN NOT r.excluded AND r.value = 0 THEN 1 ELSE 0 END,
       t.n1 - CASE WHEN NOT r.excluded AND r.value = 1 THEN 1 ELSE 0 END,
       t.n2 - CASE WHEN NOT r.excluded AND r.value = 2 THEN 1 ELSE 0 END,
       COUNT(*)
FROM {table} AS r
JOIN (
    SELECT {unit},
           SUM(CASE WHEN value = 0 THEN 1 ELSE 0 END) AS n0,
           SUM(CASE WHEN value = 1 THEN 1 ELSE 0 END) AS n1,
           SUM(CASE WHEN value = 2 THEN 1 ELSE 0 END) AS n2
    FROM {table}
    WHERE campaign_id = %s AND criterion = %s AND kind IN ({kinds}) AND NOT excluded AND value < 3
    GROUP BY {unit}
) AS t ON {join}
WHERE r.campaign_id = %s AND r.criterion = %s AND r.kind IN ({kinds}) AND r.value < 3
GROUP BY 1, 2, 3, 4, 5
"""


def _co_sql(table: str) -> str:
    columns = ["comparison_id", "image_lo_id", "image_hi_id"]
    return _CO_SQL.format(
        table=table,
        unit=", ".join(columns),
        kinds="0, 2",
        join=" AND ".join(f"t.{c} = r.{c}" for c in columns),
    )


# Under dynamic overlap a comparison gets more judgments only while it is contested, so the
# ratings past its first min_raters judgments (submission order) are selected by
# disagreement: a dissenting rater meets more co-raters exactly where it dissents, and a
# rater who agrees meets one co-rater, or none, where the first judgments settled it.
# From min_raters 3, Cohen's kappa is counted on the first min_raters judgments of each
# comparison only, the part of the sample every comparison gets whatever its votes. Below
# 3 that leaves a rating one co-rater, a noisier yardstick that warned more honest raters
# and no fewer minority-taste ones in bench/dynamic_overlap.py; there the yardstick is the
# one-coin consensus of the other votes instead, each weighed by its rater's gold record as
# dynamic overlap weighs it (_consensus_kappas), so a lone co-rater with a good record counts
# as much as the record says, and random clickers count nothing (bench/RESULTS.md).
_FIRST_SQL = """
SELECT * FROM (
    SELECT x.*, DENSE_RANK() OVER (PARTITION BY comparison_id ORDER BY judgment_id) AS place
    FROM {table} AS x
    WHERE campaign_id = %s AND criterion = %s AND kind IN (0, 2)
) AS ranked WHERE place <= %s
"""


KAPPA_FIRST_FROM = 3  # the fewest first judgments that leave each rating two co-raters


def kappa_against_consensus(campaign: Campaign) -> bool:
    """Whether the kappa's yardstick is the weighted consensus of the other votes."""
    return campaign.dynamic_overlap and campaign.min_raters < KAPPA_FIRST_FROM


def kappa_first_raters(campaign: Campaign) -> int | None:
    """How many of each comparison's first judgments the kappa counts; None: all of them."""
    if campaign.dynamic_overlap and campaign.min_raters >= KAPPA_FIRST_FROM:
        return campaign.min_raters
    return None


def _first_judgments_co_sql(table: str) -> str:
    return f"WITH first_rated AS ({_FIRST_SQL.format(table=table)}) " + _co_sql("first_rated")


def _first_rated_pairs(*, campaign: Campaign) -> list[tuple[int, int]]:
    """(comparison, rater) of the ratings among their comparison's first min_raters."""
    table = Rating._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT comparison_id, annotator_id FROM ({_FIRST_SQL.format(table=table)}) "  # noqa: S608
            "AS first_rated GROUP BY comparison_id, annotator_id",
            [campaign.pk, primary_criterion(campaign), kappa_first_raters(campaign)],
        )
        return cursor.fetchall()


def _first_rated_mask(*, columns: PairColumns, campaign: Campaign) -> np.ndarray:
    """Over the columns' ratings: those among their comparison's first min_raters."""
    pairs = np.asarray(_first_rated_pairs(campaign=campaign), dtype=np.int64).reshape(-1, 2)
    n = len(columns.raters)
    units = np.searchsorted(columns.comparisons, pairs[:, 0])
    raters = np.searchsorted(columns.raters, pairs[:, 1])
    return np.isin(columns.unit * n + columns.rater, units * n + raters)


def _speed_sql() -> str:
    table = Judgment._meta.db_table
    if connection.vendor == "postgresql":
        edges = ", ".join(str(edge) for edge in SPEED_EDGES_MS)
        bucket = f"width_bucket(ms, ARRAY[{edges}])"
    else:
        ladder = " ".join(f"WHEN ms < {edge} THEN {i}" for i, edge in enumerate(SPEED_EDGES_MS))
        bucket = f"CASE {ladder} ELSE {len(SPEED_EDGES_MS)} END"
    return (
        f"SELECT annotator_id, {bucket} AS bucket, COUNT(*) FROM ("  # noqa: S608
        "SELECT annotator_id, CASE WHEN duration_ms IS NOT NULL AND duration_ms < server_ms "
        f"THEN duration_ms ELSE server_ms END AS ms FROM {table} "
        "WHERE campaign_id = %s AND NOT is_gold AND NOT is_repeat) AS timed GROUP BY 1, 2"
    )


def kappa(confusion: dict[tuple[int, int], int]) -> tuple[float | None, int]:
    """Cohen's kappa between a rater's labels and the leave-one-out majority."""
    n = sum(confusion.values())
    if n == 0:
        return None, 0
    observed = sum(c for (a, b), c in confusion.items() if a == b) / n
    rows = defaultdict(int)
    cols = defaultdict(int)
    for (a, b), c in confusion.items():
        rows[a] += c
        cols[b] += c
    expected = sum(rows[v] * cols[v] for v in rows) / (n * n)
    if expected >= 1:
        return None, n
    return (observed - expected) / (1 - expected), n


@dataclass
class Checks:
    """Each rater's gold answers (right or wrong, None when unknown) in the order given,
    and their repeats: (repeats, repeats with the same answer)."""

    gold: dict[int, list[bool | None]] = dataclass_field(default_factory=dict)
    repeats: dict[int, list[int]] = dataclass_field(default_factory=dict)


def checks_fetch(*, campaign: Campaign) -> Checks:
    """The gold and repeat judgments' figures, read through indexes, not a judgment scan.

    Gold judgments are found through the campaign's gold comparisons (only gold
    assignments meet them), repeats through their assignments' repeat_of, the original
    by its primary key: index lookups, where filtering a million judgments on is_gold /
    is_repeat took most of a second.
    """
    checks = Checks()
    gold_comparisons = Comparison.objects.filter(campaign=campaign, role=Comparison.Role.GOLD)
    gold = (
        Judgment.objects.filter(comparison__in=gold_comparisons.values("id"), is_gold=True)
        .order_by("annotator_id", "id")
        .values_list("annotator_id", "gold_correct")
    )
    for annotator_id, correct in gold:
        checks.gold.setdefault(annotator_id, []).append(correct)
    primary = primary_criterion(campaign)
    repeats = Assignment.objects.filter(
        campaign=campaign, is_repeat=True, repeat_of__isnull=False, judgment__isnull=False
    ).order_by()
    if campaign.kind != Campaign.Kind.PAIRWISE:
        # Rankings: the same ranking may list a tier's images in another order.
        rows = repeats.values_list("annotator_id", "judgment__answers", "repeat_of__answers")
        for annotator_id, answers, original in rows.iterator(chunk_size=2000):
            figures = checks.repeats.setdefault(annotator_id, [0, 0])
            figures[0] += 1
            figures[1] += int(same_answer(answers.get(primary), (original or {}).get(primary)))
        return checks
    # A pairwise answer is one string: the database compares the two texts.
    rows = (
        repeats.annotate(
            mine=KeyTextTransform(primary, "judgment__answers"),
            original=KeyTextTransform(primary, "repeat_of__answers"),
        )
        .values("annotator_id")
        .annotate(n=Count("id"), same=Count("id", filter=Q(mine=F("original"))))
    )
    for row in rows:
        checks.repeats[row["annotator_id"]] = [row["n"], row["same"]]
    return checks


def _checks_apply(*, checks: Checks, result: dict, policy: dict) -> None:
    for annotator_id, answers in checks.gold.items():
        # The submit's own arithmetic (gold_step), answer by answer, in the order given.
        gold_replay(result[annotator_id], answers=answers, policy=policy)
    for annotator_id, (repeats, same) in checks.repeats.items():
        result[annotator_id]["repeats"] = repeats
        result[annotator_id]["repeats_same"] = same


def _empty_figures() -> dict[str, Any]:
    return {
        **dict.fromkeys(COUNTERS, 0),
        "speed_hist": [0] * SPEED_BUCKETS,
        "kappa": None,
        "kappa_n": 0,
    }


def stats_compute(
    *, campaign: Campaign, columns: PairColumns | None = None, checks: Checks | None = None
) -> dict[int, dict[str, Any]]:
    """Every rater's counters rebuilt from the ratings and judgments; nothing is written.

    A pairwise campaign's counters come from one fetch of its ratings as columns (pass
    `columns` and `checks` when the caller fetched them already); rankings, whose units
    are derived pairs, are counted in SQL.
    """
    result: dict[int, dict[str, Any]] = defaultdict(_empty_figures)
    if campaign.kind == Campaign.Kind.PAIRWISE:
        if columns is None:
            columns = pair_columns_fetch(
                campaign_id=campaign.pk, criterion=primary_criterion(campaign)
            )
        _pair_stats(columns=columns, result=result)
        if kappa_first_raters(campaign) is not None:
            confusions = confusion_among(
                columns, _first_rated_mask(columns=columns, campaign=campaign)
            )
            _pair_kappas(raters=columns.raters, confusions=confusions, result=result)
    else:
        _ranking_stats(campaign=campaign, result=result)
    if checks is None:
        checks = checks_fetch(campaign=campaign)
    _checks_apply(checks=checks, result=result, policy=policy_for(campaign))
    if kappa_against_consensus(campaign):
        _consensus_kappas(campaign=campaign, columns=columns, result=result)
    return dict(result)


def _consensus_kappas(*, campaign: Campaign, columns: PairColumns | None, result: dict) -> None:
    """Every rater's kappa against the gold-weighted consensus of the other votes on each
    unit (see kappa_against_consensus); needs the gold counters in `result`. A ranking's
    derived pairs are fetched here (a pairwise campaign's columns are passed in)."""
    if columns is not None:
        unit, rater, raters = columns.unit, columns.rater, columns.raters
        value, excluded, units = columns.value, columns.excluded, columns.units
    else:
        rows = np.asarray(
            Rating.objects.filter(
                campaign=campaign,
                criterion=primary_criterion(campaign),
                kind__in=(Rating.Kind.PAIR, Rating.Kind.DERIVED),
            ).values_list(
                "comparison_id", "image_lo_id", "image_hi_id", "annotator_id", "value", "excluded"
            ),
            dtype=np.int64,
        ).reshape(-1, 6)
        keys, unit = np.unique(rows[:, :3], axis=0, return_inverse=True)
        raters, rater = np.unique(rows[:, 3], return_inverse=True)
        unit, rater, units = unit.reshape(-1), rater.reshape(-1), len(keys)
        value, excluded = rows[:, 4], rows[:, 5].astype(bool)
    correct = np.array([result[r]["gold_correct"] for r in raters.tolist()], dtype=float)
    wrong = np.array([result[r]["gold_wrong"] for r in raters.tolist()], dtype=float)
    weight = vote_weight(np.maximum(0.5, rater_accuracy(correct, wrong)))
    confusions = confusion_against_consensus(
        unit=unit,
        rater=rater,
        value=value,
        excluded=excluded,
        weight=np.atleast_1d(weight),
        n_raters=len(raters),
        units=units,
    )
    _pair_kappas(raters=raters, confusions=confusions, result=result)


def _pair_stats(*, columns: PairColumns, result: dict) -> None:
    figures = pair_counters(columns)
    names = [name for name in figures if name not in ("speed_hist", "confusion")]
    table = np.stack([figures[name] for name in names], axis=1).tolist()
    hists = figures["speed_hist"].tolist()
    for index, annotator_id in enumerate(columns.raters.tolist()):
        row = result[annotator_id]
        row.update(zip(names, table[index], strict=True))
        row["speed_hist"] = hists[index]
    _pair_kappas(raters=columns.raters, confusions=figures["confusion"], result=result)


def _pair_kappas(*, raters: np.ndarray, confusions: np.ndarray, result: dict) -> None:
    for index, annotator_id in enumerate(raters.tolist()):
        row = result[annotator_id]
        matrix = confusions[index]
        row["kappa"], row["kappa_n"] = None, 0
        if matrix.any():
            cells = {(a, b): int(matrix[a, b]) for a, b in zip(*np.nonzero(matrix), strict=True)}
            row["kappa"], row["kappa_n"] = kappa(cells)


def _ranking_stats(*, campaign: Campaign, result: dict) -> None:
    table = Rating._meta.db_table
    primary = primary_criterion(campaign)
    pairs_per_judgment = campaign.k * (campaign.k - 1) // 2
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Room for the per-unit hash tables, so a million ratings do not spill to disk.
            cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(_OWN_SQL.format(table=table), [campaign.pk, primary])
        for row in cursor.fetchall():
            figures = result[row[0]]
            for name, value in zip(
                (
                    "judgments",
                    "n_lo",
                    "n_tie",
                    "n_hi",
                    "both_bad",
                    "tie_judgments",
                    "pos_n",
                    "pos_pairs",
                    "pos_sum",
                    "pos_sumsq",
                ),
                row[1:],
                strict=True,
            ):
                figures[name] += int(value or 0)
        cursor.execute(_co_sql(table), [campaign.pk, primary, campaign.pk, primary])
        confusions: dict[int, dict[tuple[int, int], int]] = defaultdict(lambda: defaultdict(int))
        co_rows: dict[int, int] = defaultdict(int)
        for annotator_id, value, o0, o1, o2, count in cursor.fetchall():
            others = (o0, o1, o2)
            total = sum(others)
            if total == 0:
                continue
            figures = result[annotator_id]
            figures["co_pairs"] += total * count
            figures["co_agree"] += others[value] * count
            co_rows[annotator_id] += count
            top = max(others)
            if others.count(top) == 1:
                confusions[annotator_id][(value, others.index(top))] += count
        for annotator_id, rows in co_rows.items():
            result[annotator_id]["co_rated"] = rows // pairs_per_judgment
        if kappa_first_raters(campaign) is not None:
            cursor.execute(
                _first_judgments_co_sql(table),
                [campaign.pk, primary, kappa_first_raters(campaign)]
                + [campaign.pk, primary, campaign.pk, primary],
            )
            confusions = defaultdict(lambda: defaultdict(int))
            for annotator_id, value, o0, o1, o2, count in cursor.fetchall():
                others = (o0, o1, o2)
                top = max(others)
                if top > 0 and others.count(top) == 1:
                    confusions[annotator_id][(value, others.index(top))] += count
        for annotator_id, confusion in confusions.items():
            result[annotator_id]["kappa"], result[annotator_id]["kappa_n"] = kappa(confusion)
        cursor.execute(_speed_sql(), [campaign.pk])
        for annotator_id, bucket, count in cursor.fetchall():
            result[annotator_id]["speed_hist"][bucket] = count


def stats_write(*, campaign: Campaign, computed: dict[int, dict[str, Any]], now) -> int:
    """Overwrite the stored counters with recomputed ones. Needs a transaction.

    Locks the campaign's stats rows in id order first (the order submits use), so a submit
    that is waiting applies its increment after this write, on top of exact numbers. Rows
    whose figures did not change are not rewritten; every row gets `recomputed_at`.
    Returns the number of raters recomputed.
    """
    fields = [*COUNTERS, "speed_hist", "kappa", "kappa_n"]
    # Only the columns compared and rewritten here: the rest (flags, the recent and drift
    # figures) are the submit's and the gating's, and decoding them cost time for nothing.
    existing = {
        s.annotator_id: s
        for s in RaterStats.objects.select_for_update()
        .filter(campaign=campaign)
        .only("id", "annotator_id", *fields)
        .order_by("id")
    }
    changed, created = [], []
    for annotator_id, figures in computed.items():
        stats = existing.pop(annotator_id, None)
        if stats is None:
            stats = RaterStats(campaign=campaign, annotator_id=annotator_id, recomputed_at=now)
            created.append(stats)
        elif any(_differs(getattr(stats, name), figures[name]) for name in fields):
            changed.append(stats)
        for name in fields:
            setattr(stats, name, figures[name])
    for stats in existing.values():  # raters with no judgments left
        for name in COUNTERS:
            setattr(stats, name, 0)
        stats.speed_hist, stats.kappa, stats.kappa_n = [0] * SPEED_BUCKETS, None, 0
        changed.append(stats)
    _update_many(changed, fields)
    RaterStats.objects.filter(campaign=campaign).update(recomputed_at=now)
    RaterStats.objects.bulk_create(created, batch_size=500)
    return len(computed) + len(existing)


def _differs(stored: Any, computed: Any) -> bool:
    if isinstance(computed, list):
        return list(stored or []) != computed
    return stored != computed


def _update_many(rows: list[RaterStats], fields: list[str], batch: int = 500) -> None:
    """One UPDATE ... FROM (VALUES ...) per batch: bulk_update's CASE per field and row is
    quadratic in the batch and took seconds for a thousand raters."""
    table = RaterStats._meta.db_table
    names = ["id", *fields]
    postgres = connection.vendor == "postgresql"

    def value(name: str) -> str:
        if name == "speed_hist":
            return "CAST(v.speed_hist AS jsonb)" if postgres else "v.speed_hist"
        if name == "kappa":
            return "CAST(v.kappa AS double precision)" if postgres else "v.kappa"
        if name == "recomputed_at":
            return "CAST(v.recomputed_at AS timestamptz)" if postgres else "v.recomputed_at"
        return f"CAST(v.{name} AS integer)" if postgres else f"v.{name}"

    assignments = ", ".join(f"{name} = {value(name)}" for name in fields)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            placeholders = ", ".join("(" + ", ".join(["%s"] * len(names)) + ")" for _ in chunk)
            params = []
            for stats in chunk:
                for name in names:
                    item = getattr(stats, name)
                    if name == "speed_hist":
                        item = json.dumps(list(item))
                    elif name == "recomputed_at":
                        item = connection.ops.adapt_datetimefield_value(item)
                    params.append(item)
            cursor.execute(
                f"WITH v({', '.join(names)}) AS (VALUES {placeholders}) "  # noqa: S608
                f"UPDATE {table} SET {assignments} FROM v WHERE {table}.id = v.id",
                params,
            )


def stored_counters(*, campaign: Campaign) -> dict[int, dict[str, Any]]:
    """The counters as stored, in the shape of stats_compute (for checks and tests)."""
    return {
        row["annotator_id"]: row
        for row in RaterStats.objects.filter(campaign=campaign).values(
            "annotator_id", *COUNTERS, "speed_hist"
        )
    }
