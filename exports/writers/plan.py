"""Each prompt's caption and split, decided once from the counting pass."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from exports.context import BuildContext
from exports.pairs import answer_ranks
from exports.scan import (
    DataChanged,
    Decision,
    PromptTally,
    Tally,
    decide_batch,
    empty_result_message,
)
from exports.selectors import AuditRow, ImageRow, prompt_texts
from exports.splits import caption_splits
from pickwise.errors import ApplicationError


@dataclass
class SplitPlan:
    caption_of_prompt: dict[int, str]
    split_of_prompt: dict[int, str]

    def prompts_per_split(self) -> dict[str, int]:
        return dict(sorted(Counter(self.split_of_prompt.values()).items()))


def plan_splits(*, ctx: BuildContext, tally: Tally) -> SplitPlan:
    """Raises ApplicationError (code "empty") when the policy leaves nothing to export."""
    if not tally.prompts:
        raise ApplicationError(empty_result_message(tally), code="empty", status=400)
    captions = prompt_texts(prompt_ids=sorted(tally.prompts))
    split_of_caption = caption_splits(
        captions=captions.values(), seed=ctx.seed, settings=ctx.split_settings
    )
    return SplitPlan(
        caption_of_prompt=captions,
        split_of_prompt={p: split_of_caption[captions[p]] for p in tally.prompts},
    )


class KeptRow(NamedTuple):
    decision: Decision
    prompt: PromptTally
    split: str
    caption: str
    images: list[ImageRow]
    urls: dict[int, str]
    ranks: list[int]
    audit: AuditRow | None


ANSWER_NOT_ABOUT_IMAGES = (
    "Judgment {id} answers about images that are not its comparison's; the data is inconsistent."
)


def kept_rows(
    *, ctx: BuildContext, counted: Tally, plan: SplitPlan, audit: bool = False
) -> Iterator[KeptRow]:
    """The writing pass: every kept judgment with its images, split and ranks (and, with
    `audit`, all its answers).

    Tallies again as it reads and raises DataChanged at the end when the judgments are not
    what the counting pass saw.
    """
    tally = Tally()
    for batch in ctx.batches(audit=audit):
        rows = [item[0] for item in batch] if audit else batch
        audits = [item[1] for item in batch] if audit else [None] * len(batch)
        decided = decide_batch(rows=rows, raters=ctx.raters, policy=ctx.policy, tally=tally)
        kept = [(d, a) for d, a in zip(decided, audits, strict=True) if d.reason is None]
        images_of = ctx.images_of({d.row.comparison_id for d, _ in kept})
        urls = ctx.image_urls(
            [image for d, _ in kept for image in images_of.get(d.row.comparison_id, ())]
        )
        for decision, extra in kept:
            row = decision.row
            prompt = counted.prompts.get(row.prompt_id)
            split = plan.split_of_prompt.get(row.prompt_id)
            if prompt is None or split is None:
                raise DataChanged
            images = images_of.get(row.comparison_id, [])
            ranks = answer_ranks(answer=row.answer, uids=[image.uid for image in images])
            if ranks is None:
                raise ValueError(ANSWER_NOT_ABOUT_IMAGES.format(id=row.id))
            yield KeptRow(
                decision,
                prompt,
                split,
                plan.caption_of_prompt[row.prompt_id],
                images,
                urls,
                ranks,
                extra,
            )
        ctx.progress(len(batch))
    if tally.fingerprint() != counted.fingerprint():
        raise DataChanged


EPOCH = datetime(1970, 1, 1)
ONE_MICROSECOND = timedelta(microseconds=1)


def epoch_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of a naive UTC datetime: timestamp[ns] without a zone
    holds UTC wall time, and Arrow takes an integer far faster than a datetime."""
    return (moment - EPOCH) // ONE_MICROSECOND * 1000
