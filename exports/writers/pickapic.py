"""The Pick-a-Pic format: one row per pairwise preference, 19 columns, five splits, and a
tie-free `dpo` config beside the default one (specs/pickapic_export.md).

Two passes over the judgments: the counting pass (exports.scan) fixes each prompt's split,
its row count and its representative for the `*_unique` splits; the writing pass builds the
rows, re-encodes images once each (exports.writers.images) and streams them into shards.
Pairwise campaigns take the column path (exports.column_scan, exports.writers.pairwise): a
SQL aggregate for the count and whole batches at a time for the rows, with the same output.

After the Pick-a-Pic columns come the pair's consensus columns (exports.consensus), filled
from a pass over the same judgments before the writing pass; readers that know only the
Pick-a-Pic columns (diffusers' DPO script, `datasets`) ignore them.
"""

import pyarrow as pa
import pyarrow.compute as pc

from exports.column_scan import pairwise_counting_pass
from exports.consensus import FIELDS as CONSENSUS_FIELDS
from exports.consensus import PairConsensus, export_consensus
from exports.context import BuildContext, FormatResult
from exports.pairs import PAIR_ID_STRIDE, coin, rank_pairs
from exports.scan import Tally, run_counting_pass
from exports.splits import TEST, TRAIN, VALIDATION
from exports.writers.pairwise import ColumnPairBuffer, write_pairwise
from exports.writers.plan import SplitPlan, epoch_ns, kept_rows, plan_splits
from exports.writers.table import BUFFER_BYTES, RowBuffer, format_result, removed_on_error

DEFAULT, DPO = "default", "dpo"
CONFIG_FOLDERS = {DEFAULT: "data", DPO: "dpo"}
VALIDATION_UNIQUE, TEST_UNIQUE = "validation_unique", "test_unique"
SPLITS = (TRAIN, VALIDATION, TEST, VALIDATION_UNIQUE, TEST_UNIQUE)
UNIQUE_OF = {VALIDATION: VALIDATION_UNIQUE, TEST: TEST_UNIQUE}

SCHEMA = pa.schema(
    [
        ("are_different", pa.bool_()),
        ("best_image_uid", pa.string()),
        ("caption", pa.string()),
        ("created_at", pa.timestamp("ns")),
        ("has_label", pa.bool_()),
        ("image_0_uid", pa.string()),
        ("image_0_url", pa.string()),
        ("image_1_uid", pa.string()),
        ("image_1_url", pa.string()),
        ("jpg_0", pa.binary()),
        ("jpg_1", pa.binary()),
        ("label_0", pa.float64()),
        ("label_1", pa.float64()),
        ("model_0", pa.string()),
        ("model_1", pa.string()),
        ("ranking_id", pa.int64()),
        ("user_id", pa.int64()),
        ("num_example_per_prompt", pa.int64()),
        *CONSENSUS_FIELDS,
        ("__index_level_0__", pa.int64()),
    ]
)
# Values a row carries before its two counts (default, dpo); the consensus columns and the
# index are added when a batch is written (ConsensusRowBuffer, RowBuffer).
ROW_VALUES = 17
# Column names of a column batch: the row values, then the default and the dpo count.
BATCH_NAMES = [*SCHEMA.names[:ROW_VALUES], "count_default", "count_dpo"]


def write_pickapic(ctx: BuildContext) -> FormatResult:
    counted = pairwise_counting_pass(ctx)
    by_columns = counted is not None
    if not by_columns:
        counted = run_counting_pass(ctx)
    plan = plan_splits(ctx=ctx, tally=counted)
    consensus = export_consensus(ctx)
    buffers = {
        (config, split): ConsensusRowBuffer(
            consensus=consensus,
            folder=ctx.folder / CONFIG_FOLDERS[config],
            split=split,
            schema=SCHEMA,
            batch_rows=ctx.batch_rows,
            max_bytes=ctx.shard_max_bytes,
        )
        for config in (DEFAULT, DPO)
        for split in SPLITS
    }
    pair_buffer = ColumnPairBuffer if by_columns else PairBuffer
    pairs = {
        split: pair_buffer(
            default=buffers[(DEFAULT, split)], dpo=buffers[(DPO, split)], batch_rows=ctx.batch_rows
        )
        for split in SPLITS
    }
    with removed_on_error(buffers):
        if by_columns:
            ties = write_pairwise(
                ctx=ctx,
                counted=counted,
                plan=plan,
                pairs=pairs,
                unique_of=UNIQUE_OF,
                names=BATCH_NAMES,
            )
        else:
            ties = _writing_pass(ctx=ctx, counted=counted, plan=plan, pairs=pairs)
        for buffer in pairs.values():
            buffer.flush()
    return format_result(
        folder=ctx.folder,
        buffers=buffers,
        tally=counted,
        extra_counts={
            "ties": ties,
            "ties_dropped_for_dpo": ties,
            "prompts": plan.prompts_per_split(),
            "consensus": consensus.summary(),
        },
    )


class ConsensusRowBuffer(RowBuffer):
    """A Pick-a-Pic shard set: each batch gets its pairs' consensus columns on the way out."""

    def __init__(self, *, consensus: PairConsensus, **kwargs) -> None:
        super().__init__(**kwargs)
        self.consensus = consensus
        self.uid_columns = (
            SCHEMA.get_field_index("image_0_uid"),
            SCHEMA.get_field_index("image_1_uid"),
        )

    def write_arrays(self, arrays: list[pa.Array]) -> None:
        first, second = self.uid_columns
        extra = self.consensus.columns(arrays[first], arrays[second])
        super().write_arrays([*arrays, *extra])


class PairBuffer:
    """Rows of one split for both configs at once: each row is built once, with its count
    for the default config and for `dpo`; the tie-free `dpo` rows are cut from the same
    Arrow columns with a filter on has_label instead of being built again in Python."""

    def __init__(self, *, default: RowBuffer, dpo: RowBuffer, batch_rows: int) -> None:
        self.default = default
        self.dpo = dpo
        self.batch_rows = batch_rows
        self.rows: list[tuple] = []
        self.bytes = 0

    def add(self, row: tuple, nbytes: int) -> None:
        self.rows.append(row)
        self.bytes += nbytes
        if len(self.rows) >= self.batch_rows or self.bytes >= BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        columns = list(zip(*self.rows, strict=True))
        self.rows = []
        self.bytes = 0
        arrays = [
            pa.array(values, type=field.type)
            for values, field in zip(columns[:ROW_VALUES], SCHEMA, strict=False)
        ]
        default_count = pa.array(columns[ROW_VALUES], pa.int64())
        dpo_count = pa.array(columns[ROW_VALUES + 1], pa.int64())
        self.default.write_arrays([*arrays, default_count])
        has_label = arrays[SCHEMA.get_field_index("has_label")]
        self.dpo.write_arrays([pc.filter(a, has_label) for a in [*arrays, dpo_count]])


def _writing_pass(*, ctx: BuildContext, counted: Tally, plan: SplitPlan, pairs: dict) -> int:
    """Write every row; returns the number of tied rows (label 0.5) in the default splits."""
    ties = 0
    seed = ctx.seed
    jpeg = ctx.encoder.jpeg
    for kept in kept_rows(ctx=ctx, counted=counted, plan=plan):
        row, prompt, split, images, urls = (
            kept.decision.row,
            kept.prompt,
            kept.split,
            kept.images,
            kept.urls,
        )
        created = epoch_ns(row.created_at)
        user_id = kept.decision.rater.rater_key
        add = pairs[split].add
        unique = UNIQUE_OF.get(split)
        # The prompt's representative in *_unique: its first judgment with a preference
        # (else its first judgment), and in that judgment the first pair with one.
        pick = unique is not None and row.id == (
            prompt.first_labelled_judgment or prompt.first_judgment
        )
        labelled_pick = pick and row.id == prompt.first_labelled_judgment
        for index, a, b, label in rank_pairs(kept.ranks):
            ranking_id = row.id * PAIR_ID_STRIDE + index
            if coin(seed, ranking_id):
                a, b, label = b, a, 1.0 - label
            first, second = images[a], images[b]
            jpg_0 = jpeg(image_id=first.id, file=first.file)
            jpg_1 = jpeg(image_id=second.id, file=second.file)
            has_label = label != 0.5
            if has_label:
                best = first.uid if label == 1.0 else second.uid
            else:
                best = "none"
                ties += 1
            values = (
                first.model_name != second.model_name,
                best,
                kept.caption,
                created,
                has_label,
                first.uid,
                urls[first.id],
                second.uid,
                urls[second.id],
                jpg_0,
                jpg_1,
                label,
                1.0 - label,
                first.model_name,
                second.model_name,
                ranking_id,
                user_id,
            )
            nbytes = len(jpg_0) + len(jpg_1)
            add((*values, prompt.pairs, prompt.labelled_pairs), nbytes)
            if pick and (has_label or not labelled_pick):
                pairs[unique].add((*values, 1, 1), nbytes)
                pick = False
    return ties
