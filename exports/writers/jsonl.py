"""The audit format: every judgment in the snapshot, one JSON object per line, no image
bytes. Nothing is left out; each line says whether this export's policy keeps it and, if
not, why (both_bad answers are kept: they are not preferences but they are answers).

Each line also carries its comparison's consensus over the judgments the policy keeps
(exports.consensus_ranking), over the line's `image_uids`: `consensus_ranking` (for a pair,
[1, 2] where the first image wins, [1, 1] where contested), `consensus_confidence`,
`consensus_contested`, `majority_ranking`, `consensus_votes`, `comparison_judgments` and
`comparison_settled`; null where the export keeps no judgment of the comparison.
"""

import json

from exports.consensus import export_consensus
from exports.consensus_ranking import FIELDS as CONSENSUS_FIELDS
from exports.consensus_ranking import RankingConsensus
from exports.context import BuildContext, FormatResult
from exports.scan import Tally, decide_batch, empty_result_message
from exports.selectors import prompt_texts
from pickwise.errors import ApplicationError

FILE_NAME = "judgments.jsonl"
CONSENSUS_KEYS = [name for name, _ in CONSENSUS_FIELDS]


def write_jsonl(ctx: BuildContext) -> FormatResult:
    consensus = RankingConsensus(export_consensus(ctx, rankings=True))
    tally = Tally()
    path = ctx.folder / FILE_NAME
    with path.open("w", encoding="utf-8") as handle:
        for batch in ctx.batches(audit=True):
            audits = [item[1] for item in batch]
            decided = decide_batch(
                rows=[item[0] for item in batch], raters=ctx.raters, policy=ctx.policy, tally=tally
            )
            images_of = ctx.images_of({d.row.comparison_id for d in decided})
            urls = ctx.image_urls(
                [image for d in decided for image in images_of.get(d.row.comparison_id, ())]
            )
            captions = prompt_texts(prompt_ids=sorted({d.row.prompt_id for d in decided}))
            lines = []
            for decision, audit in zip(decided, audits, strict=True):
                row = decision.row
                images = images_of.get(row.comparison_id, [])
                rater = decision.rater
                record = {
                    "judgment_id": row.id,
                    "comparison_id": row.comparison_id,
                    "prompt_id": row.prompt_id,
                    "prompt": captions.get(row.prompt_id),
                    "answers": audit.answers,
                    "presented": audit.presented,
                    "image_uids": [image.uid for image in images],
                    "image_urls": [urls[image.id] for image in images],
                    "models": [image.model_name for image in images],
                    "created_at": row.created_at.isoformat() + "Z",
                    "duration_ms": audit.duration_ms,
                    "server_ms": audit.server_ms,
                    "user_id": rater.rater_key if rater else None,
                    "gate_state": rater.gate_state if rater else None,
                    "is_gold": row.is_gold,
                    "is_repeat": row.is_repeat,
                    "gold_correct": audit.gold_correct,
                    "never_shown": audit.never_shown,
                    "excluded": row.excluded,
                    "included": decision.reason is None,
                    "exclusion_reason": decision.reason,
                }
                record.update(zip(CONSENSUS_KEYS, consensus.values(row.comparison_id), strict=True))
                lines.append(json.dumps(record, sort_keys=True, ensure_ascii=False))
            handle.write("\n".join(lines) + "\n")
            ctx.progress(len(batch))
    if tally.considered == 0:
        raise ApplicationError(empty_result_message(tally), code="empty", status=400)
    return FormatResult(
        tally=tally,
        rows={"default": {"judgments": tally.considered}},
        configs={},
        extra_counts={"consensus": consensus.summary()},
    )
