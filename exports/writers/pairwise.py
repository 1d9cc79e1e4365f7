"""The Pick-a-Pic writing pass of a pairwise campaign, over columns.

The same rows as exports.writers.pickapic's row path, built a batch at a time with numpy and
Arrow compute instead of a Python loop per judgment: labels, the seeded image-0 side, the best
uid, splits and the `*_unique` representatives. Rows reach the shards in the same order and in
the same Arrow batches, so the files are byte for byte those of the row path.
"""

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotate.criteria import TIE
from exports.column_scan import decide_columns, rater_columns
from exports.column_selectors import (
    JudgmentColumns,
    comparison_image_columns,
    judgment_column_batches,
)
from exports.context import BuildContext
from exports.pairs import MASK64, PAIR_ID_STRIDE
from exports.scan import DataChanged, Tally
from exports.splits import TEST, TRAIN, VALIDATION
from exports.writers.plan import ANSWER_NOT_ABOUT_IMAGES, SplitPlan
from exports.writers.table import BUFFER_BYTES, RowBuffer

MAIN_SPLITS = (TRAIN, VALIDATION, TEST)
# Judgment ids read per query. Larger than the row batches: each window costs three queries
# (judgments, their prompts, their images) whose fixed cost is most of a small window's, and
# the buffers cut their Arrow batches at batch_rows whatever the window.
WINDOW_IDS = 16_384
GOLDEN = 0x9E3779B97F4A7C15


def coins(seed: int, keys: np.ndarray) -> np.ndarray:
    """exports.pairs.coin over an array of keys: splitmix64 in uint64, whose arithmetic
    wraps modulo 2**64 as the masks of the scalar version do."""
    z = keys.astype(np.uint64) + np.uint64((seed * GOLDEN + GOLDEN) & MASK64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z & np.uint64(1)).astype(bool)


def _plain(array: pa.Array) -> pa.Array:
    """The array without a validity bitmap when nothing is null. take() allocates one anyway;
    without it the array is laid out as pa.array() lays it out, so the sizes the shard writer
    measures (and so where it starts a new file) are those of the row path."""
    if array.null_count or array.buffers()[0] is None:
        return array
    return pa.Array.from_buffers(
        array.type, len(array), [None, *array.buffers()[1:]], offset=array.offset
    )


class ColumnPairBuffer:
    """PairBuffer's batches from column batches: pending rows are cut into Arrow tables at
    the very rows where the row path flushes (after `batch_rows` rows, or once the pending
    image bytes reach BUFFER_BYTES), then written to the default and the tie-free config."""

    def __init__(self, *, default: RowBuffer, dpo: RowBuffer, batch_rows: int) -> None:
        self.default = default
        self.dpo = dpo
        self.batch_rows = batch_rows
        self.pending: list[pa.RecordBatch] = []
        self.rows = 0
        self.bytes = 0

    def add(self, batch: pa.RecordBatch, nbytes: np.ndarray) -> None:
        """`batch`: the 17 row values, then the default and the dpo count; `nbytes`: image
        bytes per row."""
        start = 0
        while start < batch.num_rows:
            end = min(batch.num_rows, start + self.batch_rows - self.rows)
            reached = self.bytes + np.cumsum(nbytes[start:end]) >= BUFFER_BYTES
            if reached.any():
                end = start + int(np.argmax(reached)) + 1
            self.pending.append(batch.slice(start, end - start))
            self.rows += end - start
            self.bytes += int(nbytes[start:end].sum())
            if self.rows >= self.batch_rows or self.bytes >= BUFFER_BYTES:
                self.flush()
            start = end

    def flush(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending).combine_chunks()
        self.pending, self.rows, self.bytes = [], 0, 0
        arrays = [_plain(column.chunk(0)) for column in table.columns]
        values, default_count, dpo_count = arrays[:-2], arrays[-2], arrays[-1]
        self.default.write_arrays([*values, default_count])
        has_label = table.column("has_label").chunk(0)
        self.dpo.write_arrays([pc.filter(a, has_label) for a in [*values, dpo_count]])


def write_pairwise(
    *,
    ctx: BuildContext,
    counted: Tally,
    plan: SplitPlan,
    pairs: dict,
    unique_of: dict,
    names: list[str],
) -> int:
    """Write every row; returns the number of tied rows in the default splits.

    Tallies again as it reads and raises DataChanged at the end when the judgments are not
    what the counting pass saw (as exports.writers.plan.kept_rows does).
    """
    tally = Tally()
    ties = 0
    for columns in judgment_column_batches(
        campaign=ctx.campaign,
        criterion=ctx.criterion,
        last_id=ctx.last_id,
        batch_size=max(ctx.batch_rows, WINDOW_IDS),
    ):
        blocked, included, keys = rater_columns(
            annotator_ids=columns.annotator_ids, raters=ctx.raters, policy=ctx.policy
        )
        kept = decide_columns(
            columns=columns, blocked=blocked, included=included, policy=ctx.policy, tally=tally
        )
        if kept.any():
            ties += _write_batch(
                ctx=ctx,
                counted=counted,
                plan=plan,
                pairs=pairs,
                unique_of=unique_of,
                names=names,
                columns=columns,
                kept=kept,
                user_ids=keys[kept],
            )
        ctx.progress(len(columns))
    if tally.fingerprint() != counted.fingerprint():
        raise DataChanged
    return ties


def _write_batch(
    *, ctx, counted, plan, pairs, unique_of, names, columns: JudgmentColumns, kept, user_ids
) -> int:
    """Add the batch's kept judgments to the split buffers; returns its tied rows."""
    mask = pa.array(kept)
    ids = columns.ids[kept]
    prompt = _prompt_columns(counted=counted, plan=plan, prompt_ids=columns.prompt_ids[kept])
    a, b, valid = _image_columns(ctx=ctx, comparison_ids=columns.comparison_ids[kept])
    if not valid.any():
        raise ValueError(ANSWER_NOT_ABOUT_IMAGES.format(id=int(ids[0])))
    label_a = _labels(ids=ids, answers=columns.answers.filter(mask), a=a, b=b, valid=valid)

    ranking_ids = ids * PAIR_ID_STRIDE  # pair index 0: a pairwise judgment is one pair
    swap = coins(ctx.seed, ranking_ids)
    label_0 = np.where(swap, 1.0 - label_a, label_a)
    has_label = label_0 != 0.5
    swapped = pa.array(swap)
    side_0 = {key: pc.if_else(swapped, b[key], a[key]) for key in a}
    side_1 = {key: pc.if_else(swapped, a[key], b[key]) for key in a}
    best = pc.if_else(
        pa.array(has_label),
        pc.if_else(pa.array(label_0 == 1.0), side_0["uid"], side_1["uid"]),
        "none",
    )
    values = [
        pc.not_equal(side_0["model"], side_1["model"]),
        best,
        prompt["caption"],
        columns.created_at.filter(mask),
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
        pa.array(user_ids, pa.int64()),
    ]
    # The prompt's representative in *_unique: its first judgment with a preference, else
    # its first judgment (a pairwise judgment is one pair).
    representative = ids == prompt["representative"]
    for start, end, jpg_0, jpg_1, nbytes in _jpeg_slices(ctx=ctx, first=side_0, second=side_1):
        piece = [_plain(v.slice(start, end - start)) if v is not None else v for v in values]
        piece[names.index("jpg_0")], piece[names.index("jpg_1")] = jpg_0, jpg_1
        _add_rows(
            pairs=pairs,
            unique_of=unique_of,
            names=names,
            values=piece,
            split=prompt["split"][start:end],
            counts=(prompt["pairs"][start:end], prompt["labelled"][start:end]),
            representative=representative[start:end],
            nbytes=nbytes,
        )
    return int((~has_label).sum())


def _add_rows(*, pairs, unique_of, names, values, split, counts, representative, nbytes) -> None:
    """Rows to their split's buffer with their (default, dpo) counts, and each prompt's
    representative to its *_unique buffer with counts of 1."""
    rows = pa.RecordBatch.from_arrays([*values, *map(pa.array, counts)], names=names)
    for code, name in enumerate(MAIN_SPLITS):
        in_split = split == code
        if in_split.any():
            pairs[name].add(rows.filter(pa.array(in_split)), nbytes[in_split])
    ones = pa.array(np.ones(len(split), dtype=np.int64))
    unique_rows = pa.RecordBatch.from_arrays([*values, ones, ones], names=names)
    for name, unique in unique_of.items():
        chosen = representative & (split == MAIN_SPLITS.index(name))
        if chosen.any():
            pairs[unique].add(unique_rows.filter(pa.array(chosen)), nbytes[chosen])


def _labels(
    *, ids: np.ndarray, answers: pa.Array, a: dict, b: dict, valid: np.ndarray
) -> np.ndarray:
    """label of image a per row, as exports.pairs.answer_ranks ranks a pairwise answer: 1.0
    when a wins, 0.0 when b wins, 0.5 for a tie. Raises ValueError, naming the first
    judgment, when an answer names neither image or its comparison has not two."""
    tie = pc.equal(answers, TIE).to_numpy(zero_copy_only=False)
    a_wins = pc.equal(answers, a["uid"]).to_numpy(zero_copy_only=False)
    b_wins = pc.equal(answers, b["uid"]).to_numpy(zero_copy_only=False)
    invalid = ~valid | ~(tie | a_wins | b_wins)
    if invalid.any():
        raise ValueError(ANSWER_NOT_ABOUT_IMAGES.format(id=int(ids[np.argmax(invalid)])))
    return np.where(a_wins, 1.0, np.where(b_wins, 0.0, 0.5))


def _prompt_columns(*, counted: Tally, plan: SplitPlan, prompt_ids: np.ndarray) -> dict:
    """Per row: caption, split code, default and dpo counts and the representative judgment
    of its prompt, looked up once per prompt of the batch."""
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
    }


def _image_columns(
    *, ctx: BuildContext, comparison_ids: np.ndarray
) -> tuple[dict, dict, np.ndarray]:
    """Per row, the uid, model, URL, id and file of its comparison's images a and b (slot
    order), read once per comparison of the batch; and whether it has exactly two."""
    comparisons, index = np.unique(comparison_ids, return_inverse=True)
    images = comparison_image_columns(comparison_ids=comparisons.tolist())
    # Rows come ordered by comparison then slot: a comparison's images start where
    # searchsorted finds it, and there are two when the next comparison starts two later.
    starts = np.searchsorted(images.comparison_ids, comparisons)
    ends = np.searchsorted(images.comparison_ids, comparisons, side="right")
    valid = (ends - starts) == 2
    if not valid.any():
        return {}, {}, valid[index]
    urls = pa.array(ctx.file_urls(images.files.to_pylist()), pa.string())
    sides = []
    for slot in (0, 1):
        # An invalid comparison borrows a valid one's images; its rows fail the answer check.
        rows = pa.array(np.where(valid, starts + slot, starts[np.argmax(valid)] + slot)[index])
        sides.append(
            {
                "uid": images.uids.take(rows),
                "model": images.models.take(rows),
                "url": urls.take(rows),
                "id": images.ids.take(rows),
                "file": images.files.take(rows),
            }
        )
    return sides[0], sides[1], valid[index]


def _jpeg_slices(*, ctx: BuildContext, first: dict, second: dict) -> Iterator[tuple]:
    """(start, end, jpg_0, jpg_1, image bytes per row) for consecutive slices of the rows,
    each ending once its image bytes reach BUFFER_BYTES, so the images of a whole window are
    never held at once. Images are asked for row by row, image 0 then image 1, as the row
    path does, so the encoder's cache behaves (and counts) the same."""
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
