"""The Pick-a-Pic format: one row per pairwise preference, 19 columns, five splits, and a
tie-free `dpo` config beside the default one (specs/pickapic_export.md).

Two passes over the judgments: the counting pass fixes each prompt's split, its row count
and its representative for the `*_unique` splits (for a pairwise campaign one SQL aggregate,
exports.column_scan; else exports.scan); the writing pass takes the kept judgments' pairs as
columns (exports.writers.pair_columns: rankings expanded into their pairs), builds the rows a
batch at a time with numpy and Arrow compute (labels, the seeded image-0 side, the best uid,
splits, the `*_unique` representatives), re-encodes images once each
(exports.writers.images) and streams them into shards.

After the Pick-a-Pic columns come the pair's consensus columns (exports.consensus), filled
from a pass over the same judgments before the writing pass; readers that know only the
Pick-a-Pic columns (diffusers' DPO script, `datasets`) ignore them.
"""

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from exports.column_scan import pairwise_counting_pass
from exports.consensus import FIELDS as CONSENSUS_FIELDS
from exports.consensus import export_consensus
from exports.context import BuildContext, FormatResult
from exports.pairs import MASK64, PAIR_ID_STRIDE
from exports.scan import DataChanged, Tally, run_counting_pass
from exports.splits import TEST, TRAIN, VALIDATION
from exports.writers.pair_columns import PairColumns, expanded_pair_batches, pairwise_pair_batches
from exports.writers.plan import SplitPlan, plan_splits
from exports.writers.table import (
    BUFFER_BYTES,
    ConsensusRowBuffer,
    RowBuffer,
    format_result,
    removed_on_error,
)

DEFAULT, DPO = "default", "dpo"
CONFIG_FOLDERS = {DEFAULT: "data", DPO: "dpo"}
VALIDATION_UNIQUE, TEST_UNIQUE = "validation_unique", "test_unique"
MAIN_SPLITS = (TRAIN, VALIDATION, TEST)
SPLITS = (*MAIN_SPLITS, VALIDATION_UNIQUE, TEST_UNIQUE)
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
GOLDEN = 0x9E3779B97F4A7C15
# Column names of a column batch: the row values, then the default and the dpo count.
BATCH_NAMES = [*SCHEMA.names[:ROW_VALUES], "count_default", "count_dpo"]


def write_pickapic(ctx: BuildContext) -> FormatResult:
    counted = pairwise_counting_pass(ctx)
    pair_batches = pairwise_pair_batches
    if counted is None:
        counted = run_counting_pass(ctx)
        pair_batches = expanded_pair_batches
    plan = plan_splits(ctx=ctx, tally=counted)
    consensus = export_consensus(ctx)
    buffers = {
        (config, split): ConsensusRowBuffer(
            consensus=consensus,
            uid_columns=("image_0_uid", "image_1_uid"),
            folder=ctx.folder / CONFIG_FOLDERS[config],
            split=split,
            schema=SCHEMA,
            batch_rows=ctx.batch_rows,
            max_bytes=ctx.shard_max_bytes,
        )
        for config in (DEFAULT, DPO)
        for split in SPLITS
    }
    pairs = {
        split: PairBuffer(
            default=buffers[(DEFAULT, split)], dpo=buffers[(DPO, split)], batch_rows=ctx.batch_rows
        )
        for split in SPLITS
    }
    ties = 0
    with removed_on_error(buffers):
        for batch in pair_batches(ctx=ctx, counted=counted, plan=plan):
            ties += _add_pairs(ctx=ctx, counted=counted, plan=plan, pairs=pairs, batch=batch)
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


class PairBuffer:
    """Rows of one split for both configs at once: record batches of the 17 row values and
    the default and dpo counts, written in Arrow batches of `batch_rows` rows once that many
    rows or BUFFER_BYTES of images are pending; the tie-free `dpo` rows are cut from the same
    columns with a filter on has_label."""

    def __init__(self, *, default: RowBuffer, dpo: RowBuffer, batch_rows: int) -> None:
        self.default = default
        self.dpo = dpo
        self.batch_rows = batch_rows
        self.pending: list[pa.RecordBatch] = []
        self.rows = 0
        self.bytes = 0

    def add(self, batch: pa.RecordBatch, nbytes: int) -> None:
        """`batch`: BATCH_NAMES columns; `nbytes`: its image bytes. What is pending goes out
        first when this batch's images would take it past BUFFER_BYTES, so no more than
        about BUFFER_BYTES of images wait at once."""
        if self.pending and self.bytes + nbytes > BUFFER_BYTES:
            self.flush()
        self.pending.append(batch)
        self.rows += batch.num_rows
        self.bytes += nbytes
        if self.rows >= self.batch_rows or self.bytes >= BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending).combine_chunks()
        self.pending, self.rows, self.bytes = [], 0, 0
        has_label_column = BATCH_NAMES.index("has_label")
        for start in range(0, table.num_rows, self.batch_rows):
            arrays = [column.chunk(0) for column in table.slice(start, self.batch_rows).columns]
            values, default_count, dpo_count = arrays[:-2], arrays[-2], arrays[-1]
            self.default.write_arrays([*values, default_count])
            has_label = arrays[has_label_column]
            self.dpo.write_arrays([pc.filter(a, has_label) for a in [*values, dpo_count]])


def coins(seed: int, keys: np.ndarray) -> np.ndarray:
    """exports.pairs.coin over an array of keys: splitmix64 in uint64, whose arithmetic
    wraps modulo 2**64 as the masks of the scalar version do."""
    z = keys.astype(np.uint64) + np.uint64((seed * GOLDEN + GOLDEN) & MASK64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z & np.uint64(1)).astype(bool)


def _add_pairs(
    *, ctx: BuildContext, counted: Tally, plan: SplitPlan, pairs: dict, batch: PairColumns
) -> int:
    """The batch's rows to the split buffers; returns its tied rows."""
    prompt = _prompt_columns(counted=counted, plan=plan, prompt_ids=batch.prompt_ids)
    ranking_ids = batch.judgment_ids * PAIR_ID_STRIDE + batch.pair_index
    # A seeded coin per row puts the preferred image on either side.
    swap = coins(ctx.seed, ranking_ids)
    label_0 = np.where(swap, 1.0 - batch.label_a, batch.label_a)
    has_label = label_0 != 0.5
    swapped = pa.array(swap)
    side_0 = {key: pc.if_else(swapped, batch.b[key], batch.a[key]) for key in batch.a}
    side_1 = {key: pc.if_else(swapped, batch.a[key], batch.b[key]) for key in batch.a}
    best = pc.if_else(
        pa.array(has_label),
        pc.if_else(pa.array(label_0 == 1.0), side_0["uid"], side_1["uid"]),
        "none",
    )
    values = [
        pc.not_equal(side_0["model"], side_1["model"]),
        best,
        prompt["caption"],
        batch.created_at,
        pa.array(has_label),
        side_0["uid"],
        side_0["url"],
        side_1["uid"],
        side_1["url"],
        None,  # jpg_0 and jpg_1: encoded slice by slice below
        None,
        pa.array(label_0, pa.float64()),
        pa.array(1.0 - label_0, pa.float64()),
        side_0["model"],
        side_1["model"],
        pa.array(ranking_ids, pa.int64()),
        pa.array(batch.user_ids, pa.int64()),
    ]
    representative = _representatives(batch=batch, prompt=prompt, has_label=has_label)
    jpg_0, jpg_1 = BATCH_NAMES.index("jpg_0"), BATCH_NAMES.index("jpg_1")
    for start, end, jpegs_0, jpegs_1, nbytes in _jpeg_slices(ctx=ctx, first=side_0, second=side_1):
        piece = [v.slice(start, end - start) if v is not None else v for v in values]
        piece[jpg_0], piece[jpg_1] = jpegs_0, jpegs_1
        _add_rows(
            pairs=pairs,
            values=piece,
            split=prompt["split"][start:end],
            counts=(prompt["pairs"][start:end], prompt["labelled"][start:end]),
            representative=representative[start:end],
            nbytes=nbytes,
        )
    return int((~has_label).sum())


def _representatives(*, batch: PairColumns, prompt: dict, has_label: np.ndarray) -> np.ndarray:
    """A mask of each prompt's row in the `*_unique` splits: in its representative judgment
    (the first with a preference, else the first), the first pair with a preference (else
    the first pair). A judgment's pairs are all in one batch."""
    in_judgment = batch.judgment_ids == prompt["representative"]
    wants_label = batch.judgment_ids == prompt["first_labelled"]
    candidates = np.flatnonzero(in_judgment & (has_label | ~wants_label))
    chosen = np.zeros(len(has_label), dtype=bool)
    if len(candidates):
        _, first = np.unique(batch.judgment_ids[candidates], return_index=True)
        chosen[candidates[first]] = True
    return chosen


def _add_rows(*, pairs, values, split, counts, representative, nbytes) -> None:
    """Rows to their split's buffer with their (default, dpo) counts, and each prompt's
    representative to its *_unique buffer with counts of 1."""
    rows = pa.RecordBatch.from_arrays([*values, *map(pa.array, counts)], names=BATCH_NAMES)
    for code, name in enumerate(MAIN_SPLITS):
        in_split = split == code
        if in_split.any():
            pairs[name].add(rows.filter(pa.array(in_split)), int(nbytes[in_split].sum()))
    ones = pa.array(np.ones(len(split), dtype=np.int64))
    unique_rows = pa.RecordBatch.from_arrays([*values, ones, ones], names=BATCH_NAMES)
    for name, unique in UNIQUE_OF.items():
        chosen = representative & (split == MAIN_SPLITS.index(name))
        if chosen.any():
            pairs[unique].add(unique_rows.filter(pa.array(chosen)), int(nbytes[chosen].sum()))


def _prompt_columns(*, counted: Tally, plan: SplitPlan, prompt_ids: np.ndarray) -> dict:
    """Per row: caption, split code, default and dpo counts and the representative (and the
    first labelled) judgment of its prompt, looked up once per prompt of the batch."""
    prompts, index = np.unique(prompt_ids, return_inverse=True)
    tallies, splits, captions = [], [], []
    for prompt_id in prompts.tolist():
        tally, split = counted.prompts.get(prompt_id), plan.split_of_prompt.get(prompt_id)
        if tally is None or split is None:
            raise DataChanged
        tallies.append(tally)
        splits.append(MAIN_SPLITS.index(split))
        captions.append(plan.caption_of_prompt[prompt_id])
    return {
        "caption": pa.array(captions, pa.string()).take(pa.array(index)),
        "split": np.array(splits)[index],
        "pairs": np.array([t.pairs for t in tallies], dtype=np.int64)[index],
        "labelled": np.array([t.labelled_pairs for t in tallies], dtype=np.int64)[index],
        "representative": np.array(
            [t.first_labelled_judgment or t.first_judgment for t in tallies], dtype=np.int64
        )[index],
        # -1 where the prompt has no labelled judgment: no judgment id matches it.
        "first_labelled": np.array(
            [t.first_labelled_judgment or -1 for t in tallies], dtype=np.int64
        )[index],
    }


def _jpeg_slices(*, ctx: BuildContext, first: dict, second: dict) -> Iterator[tuple]:
    """(start, end, jpg_0, jpg_1, image bytes per row) for consecutive slices of the rows,
    each ending once its image bytes reach BUFFER_BYTES, so the images of a whole batch are
    never held at once."""
    count = len(first["id"])
    if not ctx.encoder.enabled:
        empty = pa.array([b""] * count, pa.binary())
        yield 0, count, empty, empty, np.zeros(count, dtype=np.int64)
        return
    jpeg = ctx.encoder.jpeg
    rows = zip(
        first["id"].to_pylist(),
        first["file"].to_pylist(),
        second["id"].to_pylist(),
        second["file"].to_pylist(),
        strict=True,
    )
    start, jpg_0, jpg_1, sizes, total = 0, [], [], [], 0
    for end, (id_0, file_0, id_1, file_1) in enumerate(rows, start=1):
        jpg_0.append(jpeg(image_id=id_0, file=file_0))
        jpg_1.append(jpeg(image_id=id_1, file=file_1))
        sizes.append(len(jpg_0[-1]) + len(jpg_1[-1]))
        total += sizes[-1]
        if total >= BUFFER_BYTES or end == count:
            nbytes = np.array(sizes, dtype=np.int64)
            yield start, end, pa.array(jpg_0, pa.binary()), pa.array(jpg_1, pa.binary()), nbytes
            start, jpg_0, jpg_1, sizes, total = end, [], [], [], 0
