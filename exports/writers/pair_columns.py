"""The pairs a Pick-a-Pic export writes, as columns: every kept judgment's pairs of images
with the label of the first, a batch at a time, for exports.writers.pickapic.

Two sources give the same PairColumns:

- `pairwise_pair_batches`, for a pairwise campaign whose counting pass was the SQL aggregate
  (exports.column_scan): judgments read as columns, the policy decided over them with numpy,
  labels from comparing the answer column with the images' uids. No Python loop per row.
- `expanded_pair_batches`, for ranking campaigns and several combined campaigns: the rows of
  exports.writers.plan.kept_rows (the policy decided per row, rows rewritten for a
  combination), each ranking expanded into its k(k-1)/2 pairs (exports.pairs.rank_pairs).

Both tally the judgments again as they read and raise DataChanged at the end when they are
not what the counting pass saw.
"""

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotate.criteria import TIE
from exports.column_scan import decide_columns, rater_columns
from exports.column_selectors import comparison_image_columns, judgment_column_batches
from exports.context import BuildContext
from exports.pairs import rank_pairs
from exports.scan import DataChanged, Tally
from exports.writers.plan import ANSWER_NOT_ABOUT_IMAGES, SplitPlan, epoch_ns, kept_rows

# Judgment ids read per query. Larger than the row batches: each window costs three queries
# (judgments, their prompts, their images) whose fixed cost is most of a small window's, and
# the buffers cut their Arrow batches at batch_rows whatever the window.
WINDOW_IDS = 16_384
# Pairs gathered from expanded rows before they go out as one batch of columns.
WINDOW_PAIRS = 16_384
IMAGE_KEYS = ("uid", "model", "url", "id", "file")


class PairColumns(NamedTuple):
    """Pairs of images of kept judgments, in judgment then pair order; a judgment's pairs are
    never split across two batches."""

    judgment_ids: np.ndarray  # int64
    pair_index: np.ndarray  # int64: the pair's index in its judgment (0 for a pairwise one)
    prompt_ids: np.ndarray  # int64
    user_ids: np.ndarray  # int64: the rater's pseudonymous key
    created_at: pa.Array  # timestamp[ns], naive UTC
    a: dict[str, pa.Array]  # image a (canonical order): IMAGE_KEYS
    b: dict[str, pa.Array]  # image b
    label_a: np.ndarray  # float64: 1.0 a preferred, 0.0 b preferred, 0.5 a tie


def pairwise_pair_batches(
    *, ctx: BuildContext, counted: Tally, plan: SplitPlan
) -> Iterator[PairColumns]:
    """The pairs of a pairwise campaign (one per kept judgment), a window at a time."""
    tally = Tally()
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
            mask = pa.array(kept)
            ids = columns.ids[kept]
            a, b, valid = _image_columns(ctx=ctx, comparison_ids=columns.comparison_ids[kept])
            if not valid.any():
                raise ValueError(ANSWER_NOT_ABOUT_IMAGES.format(id=int(ids[0])))
            yield PairColumns(
                judgment_ids=ids,
                pair_index=np.zeros(len(ids), dtype=np.int64),
                prompt_ids=columns.prompt_ids[kept],
                user_ids=keys[kept],
                created_at=columns.created_at.filter(mask),
                a=a,
                b=b,
                label_a=_labels(
                    ids=ids, answers=columns.answers.filter(mask), a=a, b=b, valid=valid
                ),
            )
        ctx.progress(len(columns))
    if tally.fingerprint() != counted.fingerprint():
        raise DataChanged


def expanded_pair_batches(
    *, ctx: BuildContext, counted: Tally, plan: SplitPlan
) -> Iterator[PairColumns]:
    """The pairs of every kept judgment as exports.writers.plan.kept_rows reads them
    (rankings expanded),
    WINDOW_PAIRS or a little more at a time."""
    gathered = _Gathered()
    for kept in kept_rows(ctx=ctx, counted=counted, plan=plan):
        row, images, urls = kept.decision.row, kept.images, kept.urls
        created, user_id = epoch_ns(row.created_at), kept.decision.rater.rater_key
        for index, a, b, label in rank_pairs(kept.ranks):
            gathered.add(
                judgment_id=row.id,
                pair_index=index,
                prompt_id=row.prompt_id,
                user_id=user_id,
                created=created,
                images=(images[a], images[b]),
                urls=urls,
                label_a=label,
            )
        if gathered.count >= WINDOW_PAIRS:
            yield gathered.columns()
            gathered = _Gathered()
    if gathered.count:
        yield gathered.columns()


class _Gathered:
    """Pairs as Python lists on their way to PairColumns."""

    def __init__(self) -> None:
        self.count = 0
        self.values: dict[str, list] = {
            key: []
            for key in ("judgment_id", "pair_index", "prompt_id", "user_id", "created", "label")
        }
        self.sides: tuple[dict[str, list], ...] = tuple(
            {key: [] for key in IMAGE_KEYS} for _ in range(2)
        )

    def add(
        self, *, judgment_id, pair_index, prompt_id, user_id, created, images, urls, label_a
    ) -> None:
        values = self.values
        values["judgment_id"].append(judgment_id)
        values["pair_index"].append(pair_index)
        values["prompt_id"].append(prompt_id)
        values["user_id"].append(user_id)
        values["created"].append(created)
        values["label"].append(label_a)
        for side, image in zip(self.sides, images, strict=True):
            side["uid"].append(image.uid)
            side["model"].append(image.model_name)
            side["url"].append(urls[image.id])
            side["id"].append(image.id)
            side["file"].append(image.file)
        self.count += 1

    def columns(self) -> PairColumns:
        values = self.values
        types = {"id": pa.int64()}
        a, b = (
            {key: pa.array(side[key], types.get(key, pa.string())) for key in IMAGE_KEYS}
            for side in self.sides
        )
        return PairColumns(
            judgment_ids=np.array(values["judgment_id"], dtype=np.int64),
            pair_index=np.array(values["pair_index"], dtype=np.int64),
            prompt_ids=np.array(values["prompt_id"], dtype=np.int64),
            user_ids=np.array(values["user_id"], dtype=np.int64),
            created_at=pa.array(values["created"], pa.timestamp("ns")),
            a=a,
            b=b,
            label_a=np.array(values["label"], dtype=np.float64),
        )


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
