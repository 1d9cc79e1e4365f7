"""The ranked format: one row per ranking (a pairwise judgment is a ranking of two).

`ranking` holds each image's rank, 1 = best, equal ranks = ties (the ImageReward / HPDv2
convention: lower is better). Images are in a seeded random order per row. Campaigns with
several criteria get a `ranking_<criterion>` column per criterion (null where that answer
is not a preference). Splits by prompt: train, validation, test.

Then the comparison's consensus over every ranking of it the export keeps
(exports.consensus_ranking), in the row's own image order: `consensus_ranking` (level where
the pairwise consensus is contested or cyclic, never forced), `consensus_confidence`,
`consensus_contested`, `majority_ranking` (Borda, for reference), `consensus_votes`,
`comparison_judgments` and `comparison_settled`. Readers of the ranking columns (`datasets`,
the RankDPO trainer) read by name and are unaffected.
"""

import pyarrow as pa

from exports.consensus import export_consensus
from exports.consensus_ranking import FIELDS as CONSENSUS_FIELDS
from exports.consensus_ranking import RankingConsensus
from exports.context import BuildContext, FormatResult
from exports.pairs import answer_ranks, seeded_order
from exports.scan import run_counting_pass
from exports.splits import TEST, TRAIN, VALIDATION
from exports.writers.plan import epoch_ns, kept_rows, plan_splits
from exports.writers.table import RowBuffer, format_result, removed_on_error

SPLITS = (TRAIN, VALIDATION, TEST)
BASE_FIELDS = [
    ("prompt", pa.string()),
    ("images", pa.list_(pa.binary())),
    ("image_uids", pa.list_(pa.string())),
    ("models", pa.list_(pa.string())),
    ("ranking", pa.list_(pa.int64())),
    ("user_id", pa.int64()),
    ("created_at", pa.timestamp("ns")),
]


def ranked_schema(criteria_keys: list[str]) -> pa.Schema:
    fields = list(BASE_FIELDS)
    if len(criteria_keys) > 1:
        fields += [(f"ranking_{key}", pa.list_(pa.int64())) for key in criteria_keys]
    return pa.schema(fields + CONSENSUS_FIELDS)


def write_ranked(ctx: BuildContext) -> FormatResult:
    counted = run_counting_pass(ctx)
    plan = plan_splits(ctx=ctx, tally=counted)
    consensus = RankingConsensus(export_consensus(ctx, rankings=True))
    keys = [c["key"] for c in ctx.campaign.criteria]
    per_criterion = len(keys) > 1
    schema = ranked_schema(keys)
    buffers = {
        ("default", split): RowBuffer(
            folder=ctx.folder / "data",
            split=split,
            schema=schema,
            batch_rows=ctx.batch_rows,
            max_bytes=ctx.shard_max_bytes,
        )
        for split in SPLITS
    }
    with removed_on_error(buffers):
        for kept in kept_rows(ctx=ctx, counted=counted, plan=plan, audit=per_criterion):
            row = kept.decision.row
            order = seeded_order(ctx.seed, row.id, len(kept.images))
            images = [kept.images[i] for i in order]
            jpegs = [ctx.encoder.jpeg(image_id=image.id, file=image.file) for image in images]
            values = [
                kept.caption,
                jpegs,
                [image.uid for image in images],
                [image.model_name for image in images],
                [kept.ranks[i] for i in order],
                kept.decision.rater.rater_key,
                epoch_ns(row.created_at),
            ]
            if per_criterion:
                uids = [image.uid for image in kept.images]
                for key in keys:
                    ranks = answer_ranks(answer=kept.audit.answers.get(key), uids=uids)
                    values.append(None if ranks is None else [ranks[i] for i in order])
            values += consensus.values(row.comparison_id, order)
            buffers[("default", kept.split)].add(values, sum(len(j) for j in jpegs))
    return format_result(
        folder=ctx.folder,
        buffers=buffers,
        tally=counted,
        extra_counts={"prompts": plan.prompts_per_split(), "consensus": consensus.summary()},
    )
