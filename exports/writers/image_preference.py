"""The image-preference format: one row per preference, its two images as `datasets.Image`.

Columns: prompt; chosen and rejected, each an Image feature ({bytes, path}: JPEG bytes and
`<image uid>.jpg`), so `load_dataset` hands back decoded PIL images; and what traces a row
to its source: the images' uids and models, their ranks in the judgment (1 = best), the
Pick-a-Pic `ranking_id` of the same pair, the judgment id and the rater (`user_id`).

Rankings expand into pairs; ties and both_bad answers are not preferences and are left out
(ties counted in the manifest). Splits by prompt: train, validation, test.

Then the pair's consensus over every judgment the export keeps, ties included (as in the
Pick-a-Pic format, exports.consensus), oriented to `chosen`: `consensus_label` is 1.0 where
the consensus prefers the chosen image, 0.0 where it prefers the rejected one (this rater
went against it), 0.5 where the pair is contested; `majority_label` likewise.
"""

import pyarrow as pa

from exports.consensus import FIELDS as CONSENSUS_FIELDS
from exports.consensus import export_consensus
from exports.context import BuildContext, FormatResult
from exports.pairs import PAIR_ID_STRIDE, rank_pairs
from exports.scan import run_counting_pass
from exports.splits import TEST, TRAIN, VALIDATION
from exports.writers.plan import kept_rows, plan_splits
from exports.writers.shards import schema_with_features
from exports.writers.table import ConsensusRowBuffer, format_result, removed_on_error

SPLITS = (TRAIN, VALIDATION, TEST)
# How `datasets` stores an Image feature in Arrow.
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
COLUMNS = [
    ("prompt", pa.string(), "string"),
    ("chosen", IMAGE, None),
    ("rejected", IMAGE, None),
    ("chosen_uid", pa.string(), "string"),
    ("rejected_uid", pa.string(), "string"),
    ("chosen_model", pa.string(), "string"),
    ("rejected_model", pa.string(), "string"),
    ("chosen_rank", pa.int64(), "int64"),
    ("rejected_rank", pa.int64(), "int64"),
    ("ranking_id", pa.int64(), "int64"),
    ("judgment_id", pa.int64(), "int64"),
    ("user_id", pa.int64(), "int64"),
]
# The consensus columns under the names of this format (no image 0 here: chosen is first).
CONSENSUS_NAMES = {"consensus_label_0": "consensus_label", "majority_label_0": "majority_label"}
DTYPES = {pa.float64(): "float64", pa.int64(): "int64", pa.bool_(): "bool"}
COLUMNS += [
    (CONSENSUS_NAMES.get(name, name), arrow_type, DTYPES[arrow_type])
    for name, arrow_type in CONSENSUS_FIELDS
]
SCHEMA = schema_with_features(
    pa.schema([(name, arrow_type) for name, arrow_type, _ in COLUMNS]),
    {
        name: {"_type": "Image"} if dtype is None else {"dtype": dtype, "_type": "Value"}
        for name, _, dtype in COLUMNS
    },
)


def _image(ctx: BuildContext, image) -> tuple[dict | None, int]:
    """The Image cell of one image (None when the export leaves images out) and its size."""
    data = ctx.encoder.jpeg(image_id=image.id, file=image.file)
    if not data:
        return None, 0
    return {"bytes": data, "path": f"{image.uid}.jpg"}, len(data)


def write_image_preference(ctx: BuildContext) -> FormatResult:
    counted = run_counting_pass(ctx)
    plan = plan_splits(ctx=ctx, tally=counted)
    consensus = export_consensus(ctx)
    buffers = {
        ("default", split): ConsensusRowBuffer(
            consensus=consensus,
            uid_columns=("chosen_uid", "rejected_uid"),
            folder=ctx.folder / "data",
            split=split,
            schema=SCHEMA,
            batch_rows=ctx.batch_rows,
            max_bytes=ctx.shard_max_bytes,
        )
        for split in SPLITS
    }
    ties = 0
    with removed_on_error(buffers):
        for kept in kept_rows(ctx=ctx, counted=counted, plan=plan):
            judgment_id = kept.decision.row.id
            user_id = kept.decision.rater.rater_key
            for index, a, b, label in rank_pairs(kept.ranks):
                if label == 0.5:
                    ties += 1
                    continue
                chosen, rejected = (a, b) if label == 1.0 else (b, a)
                chosen_image, rejected_image = kept.images[chosen], kept.images[rejected]
                chosen_cell, chosen_bytes = _image(ctx, chosen_image)
                rejected_cell, rejected_bytes = _image(ctx, rejected_image)
                buffers[("default", kept.split)].add(
                    (
                        kept.caption,
                        chosen_cell,
                        rejected_cell,
                        chosen_image.uid,
                        rejected_image.uid,
                        chosen_image.model_name,
                        rejected_image.model_name,
                        kept.ranks[chosen],
                        kept.ranks[rejected],
                        judgment_id * PAIR_ID_STRIDE + index,
                        judgment_id,
                        user_id,
                    ),
                    chosen_bytes + rejected_bytes,
                )
    return format_result(
        folder=ctx.folder,
        buffers=buffers,
        tally=counted,
        extra_counts={
            "ties_dropped": ties,
            "prompts": plan.prompts_per_split(),
            "consensus": consensus.summary(),
        },
    )
