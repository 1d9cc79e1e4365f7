"""The TRL preference format: prompt, chosen, rejected (image bytes), their models, rater.

Rankings expand into pairs; ties and both_bad answers are not preferences and are left out
(ties counted in the manifest). Splits by prompt: train, validation, test.
"""

import pyarrow as pa

from exports.context import BuildContext, FormatResult
from exports.pairs import rank_pairs
from exports.scan import run_counting_pass
from exports.splits import TEST, TRAIN, VALIDATION
from exports.writers.plan import kept_rows, plan_splits
from exports.writers.table import RowBuffer, format_result, removed_on_error

SPLITS = (TRAIN, VALIDATION, TEST)
SCHEMA = pa.schema(
    [
        ("prompt", pa.string()),
        ("chosen", pa.binary()),
        ("rejected", pa.binary()),
        ("chosen_model", pa.string()),
        ("rejected_model", pa.string()),
        ("user_id", pa.int64()),
    ]
)


def write_trl(ctx: BuildContext) -> FormatResult:
    counted = run_counting_pass(ctx)
    plan = plan_splits(ctx=ctx, tally=counted)
    buffers = {
        ("default", split): RowBuffer(
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
            user_id = kept.decision.rater.rater_key
            for _index, a, b, label in rank_pairs(kept.ranks):
                if label == 0.5:
                    ties += 1
                    continue
                chosen, rejected = (kept.images[a], kept.images[b])
                if label == 0.0:
                    chosen, rejected = rejected, chosen
                chosen_jpeg = ctx.encoder.jpeg(image_id=chosen.id, file=chosen.file)
                rejected_jpeg = ctx.encoder.jpeg(image_id=rejected.id, file=rejected.file)
                buffers[("default", kept.split)].add(
                    (
                        kept.caption,
                        chosen_jpeg,
                        rejected_jpeg,
                        chosen.model_name,
                        rejected.model_name,
                        user_id,
                    ),
                    len(chosen_jpeg) + len(rejected_jpeg),
                )
    return format_result(
        folder=ctx.folder,
        buffers=buffers,
        tally=counted,
        extra_counts={"ties_dropped": ties, "prompts": plan.prompts_per_split()},
    )
