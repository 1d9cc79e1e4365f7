"""Column reads for pairwise campaigns' Pick-a-Pic exports (exports.writers.pair_columns).

Beside exports.selectors, the only module of this app that reads the annotate tables. The
counting pass is one SQL aggregate per (prompt, reason); the writing pass reads the same
windows of judgments as judgment_batches, but as numpy and Arrow columns, so the per-row work
happens in C over a whole batch.
"""

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.db import connections
from django.db.models import Min

from annotate.models import Campaign, Comparison, ComparisonImage, Image, Judgment, Membership
from exports.policy import Policy, policy_case_sql
from exports.selectors import PROMPT_MEMORY, comparison_prompts

# The aggregate's reason for a judgment the policy keeps, and for a ranking answer (a list
# of tiers) in a pairwise campaign, which the SQL count cannot expand into pairs.
KEPT = ""
RANKING = "ranking"


class PromptCount(NamedTuple):
    """One (prompt, reason) group of the counting aggregate."""

    prompt_id: int
    reason: str
    judgments: int
    labelled: int  # judgments whose answer is not a tie
    first_id: int
    first_labelled_id: int | None


def _answer_sql(vendor: str, criterion: str) -> tuple[str, str]:
    """SQL for the criterion's answer as text, and its parameter (the JSON path or key)."""
    if vendor == "postgresql":
        return "(j.answers ->> %s)", criterion
    # SQLite: the criterion key is lowercase letters, digits and _ (annotate.criteria).
    return "json_extract(j.answers, %s)", f'$."{criterion}"'


def judgment_counts_by_prompt(
    *, campaign: Campaign, criterion: str, last_id: int, policy: Policy
) -> list[PromptCount]:
    """The counting pass of a pairwise export in one query: judgments up to `last_id` per
    prompt and per reason they are left out (KEPT when kept), the reason from the policy's
    SQL rendering (exports.policy.policy_case_sql); a ranking answer (a list) is RANKING.
    """
    connection = connections[Judgment.objects.db]
    quote = connection.ops.quote_name
    answer, answer_param = _answer_sql(connection.vendor, criterion)
    reason, reason_params = policy_case_sql(
        policy, kept=KEPT, then=(("j.answer LIKE '[%%'", RANKING),)
    )
    # Every name and literal below comes from code, never from a request.
    sql = f"""
        SELECT c.prompt_id,
            {reason},
            COUNT(*),
            SUM(CASE WHEN j.answer = 'tie' THEN 0 ELSE 1 END),
            MIN(j.id),
            MIN(CASE WHEN j.answer = 'tie' THEN NULL ELSE j.id END)
        FROM (
            SELECT j.id, j.comparison_id, j.annotator_id, j.excluded, j.is_gold, j.is_repeat,
                {answer} AS answer
            FROM {quote(Judgment._meta.db_table)} j
            WHERE j.campaign_id = %s AND j.id <= %s
        ) j
        JOIN {quote(Comparison._meta.db_table)} c ON c.id = j.comparison_id
        LEFT JOIN {quote(Membership._meta.db_table)} m
            ON m.campaign_id = %s AND m.user_id = j.annotator_id
        GROUP BY 1, 2
    """  # noqa: S608
    params = [*reason_params, answer_param, campaign.pk, last_id, campaign.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [PromptCount(*row) for row in cursor.fetchall()]


# Ids per lookup query. With longer IN lists PostgreSQL plans hash joins that scan the whole
# comparison and image tables for every window (about twice as slow here, and growing with
# other campaigns); up to a few hundred it looks each one up in the index.
LOOKUP_IDS = 500


class JudgmentColumns(NamedTuple):
    """A batch of judgments as columns, in id order."""

    ids: np.ndarray  # int64
    comparison_ids: np.ndarray  # int64
    prompt_ids: np.ndarray  # int64
    annotator_ids: np.ndarray  # int64
    answers: pa.StringArray  # the criterion's answer as text, null when absent
    is_gold: np.ndarray  # bool
    is_repeat: np.ndarray  # bool
    excluded: np.ndarray  # bool
    created_at: pa.TimestampArray  # timestamp[ns], naive UTC

    def __len__(self) -> int:
        return len(self.ids)


def _timestamps(texts: tuple[str, ...]) -> pa.Array:
    """Naive UTC timestamp[ns] from the database's text of created_at: SQLite keeps UTC
    without an offset, PostgreSQL's text carries one (and Arrow refuses to drop it in the
    same cast, so the zoned values go through their UTC epoch)."""
    strings = pa.array(texts, pa.string())
    try:
        return strings.cast(pa.timestamp("ns"))
    except pa.ArrowInvalid:
        epoch = strings.cast(pa.timestamp("ns", "UTC")).cast(pa.int64())
        return epoch.cast(pa.timestamp("ns"))


def judgment_column_batches(
    *, campaign: Campaign, criterion: str, last_id: int, batch_size: int
) -> Iterator[JudgmentColumns]:
    """Every judgment of the campaign up to `last_id` as JudgmentColumns, one window of
    `batch_size` ids at a time, as judgment_batches reads them (range scans of the primary
    key, prompts through a lookup rather than a join). The query is built once, and its
    answer is the same text as in judgment_counts_by_prompt."""
    first = Judgment.objects.filter(campaign=campaign).aggregate(first=Min("id"))["first"]
    if first is None:
        return
    connection = connections[Judgment.objects.db]
    answer, answer_param = _answer_sql(connection.vendor, criterion)
    sql = f"""
        SELECT j.id, j.comparison_id, j.annotator_id, {answer}, j.is_gold, j.is_repeat,
            j.excluded, CAST(j.created_at AS TEXT)
        FROM {connection.ops.quote_name(Judgment._meta.db_table)} j
        WHERE j.campaign_id = %s AND j.id >= %s AND j.id < %s
        ORDER BY j.id
    """  # noqa: S608 (names from _meta)
    prompt_of: dict[int, int] = {}
    for low in range(first, last_id + 1, batch_size):
        with connection.cursor() as cursor:
            high = min(low + batch_size, last_id + 1)
            cursor.execute(sql, [answer_param, campaign.pk, low, high])
            raw = cursor.fetchall()
        if not raw:
            continue
        ids, comparisons, annotators, answers, gold, repeat, excluded, created = zip(
            *raw, strict=True
        )
        comparison_ids = np.array(comparisons, dtype=np.int64)
        yield JudgmentColumns(
            ids=np.array(ids, dtype=np.int64),
            comparison_ids=comparison_ids,
            prompt_ids=_prompts(comparison_ids, prompt_of),
            annotator_ids=np.array(annotators, dtype=np.int64),
            answers=pa.array(answers, pa.string()),
            is_gold=np.array(gold, dtype=bool),
            is_repeat=np.array(repeat, dtype=bool),
            excluded=np.array(excluded, dtype=bool),
            created_at=_timestamps(created),
        )


def _prompts(comparison_ids: np.ndarray, prompt_of: dict[int, int]) -> np.ndarray:
    """Each judgment's prompt, through `prompt_of` (comparison -> prompt, a bounded memory
    kept across windows) and one lookup of the comparisons it lacks."""
    comparisons, index = np.unique(comparison_ids, return_inverse=True)
    if len(prompt_of) > PROMPT_MEMORY:
        prompt_of.clear()
    missing = [c for c in comparisons.tolist() if c not in prompt_of]
    for start in range(0, len(missing), LOOKUP_IDS):
        prompt_of.update(comparison_prompts(comparison_ids=missing[start : start + LOOKUP_IDS]))
    return np.array([prompt_of[c] for c in comparisons.tolist()], dtype=np.int64)[index]


class ImageColumns(NamedTuple):
    """The images of some comparisons, ordered by comparison then slot."""

    comparison_ids: np.ndarray  # int64
    ids: pa.Int64Array
    uids: pa.StringArray  # dashed, lowercase, as answers name them
    models: pa.StringArray
    files: pa.StringArray


def comparison_image_columns(*, comparison_ids: list[int]) -> ImageColumns:
    """comparison_images as columns: plain SQL, uids dashed in Arrow rather than per row.
    `comparison_ids` ascending: the rows come ordered by comparison, then slot."""
    connection = connections[ComparisonImage.objects.db]
    quote = connection.ops.quote_name
    slots, images = quote(ComparisonImage._meta.db_table), quote(Image._meta.db_table)
    rows = []
    with connection.cursor() as cursor:
        for start in range(0, len(comparison_ids), LOOKUP_IDS):
            chunk = list(comparison_ids[start : start + LOOKUP_IDS])
            marks = ", ".join(["%s"] * len(chunk))
            sql = f"""
                SELECT s.comparison_id, s.image_id, CAST(i.uid AS TEXT), i.model_name, i.file
                FROM {slots} s JOIN {images} i ON i.id = s.image_id
                WHERE s.comparison_id IN ({marks}) ORDER BY s.comparison_id, s.slot
            """  # noqa: S608 (names from _meta)
            cursor.execute(sql, chunk)
            rows += cursor.fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * 5
    return ImageColumns(
        comparison_ids=np.array(columns[0], dtype=np.int64),
        ids=pa.array(columns[1], pa.int64()),
        uids=_dashed_uids(pa.array(columns[2], pa.string())),
        models=pa.array(columns[3], pa.string()),
        files=pa.array(columns[4], pa.string()),
    )


def _dashed_uids(uids: pa.Array) -> pa.Array:
    """exports.selectors._dashed over an array: SQLite keeps uuids as 32 hex digits,
    PostgreSQL's text of a uuid is dashed already."""
    parts = [pc.utf8_slice_codeunits(uids, a, b) for a, b in UUID_GROUPS]
    dashed = pc.binary_join_element_wise(*parts, "-")
    return pc.utf8_lower(pc.if_else(pc.equal(pc.utf8_length(uids), 32), dashed, uids))


UUID_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
