"""The counting pass every table format starts with, and the checks it makes possible.

It reads each judgment once without images, applies the policy, and keeps per prompt the
rows it will give, so the writing pass knows each prompt's split, `num_example_per_prompt`
and which judgment stands for the prompt in the `*_unique` splits. Memory grows with the
number of prompts, not of judgments. The writing pass repeats the same tally; a difference
means the data changed in between (a rater was blocked meanwhile) and the export restarts.
"""

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from exports.pairs import answer_pair_counts
from exports.policy import BOTH_BAD, NO_ANSWER, Policy, exclusion_reason
from exports.selectors import JudgmentRow, Rater


@dataclass
class PromptTally:
    pairs: int = 0
    labelled_pairs: int = 0  # pairs that are not ties
    judgments: int = 0
    first_judgment: int | None = None
    first_labelled_judgment: int | None = None


@dataclass
class Tally:
    considered: int = 0
    included: int = 0
    excluded: Counter = field(default_factory=Counter)
    prompts: dict[int, PromptTally] = field(default_factory=dict)

    def fingerprint(self) -> tuple:
        return (
            self.considered,
            self.included,
            tuple(sorted(self.excluded.items())),
            tuple(
                (p, t.pairs, t.labelled_pairs, t.judgments, t.first_judgment)
                for p, t in sorted(self.prompts.items())
            ),
        )


class DataChanged(Exception):
    """The judgments changed between the counting and the writing pass."""


@dataclass(frozen=True)
class Decision:
    row: JudgmentRow
    rater: Rater | None
    reason: str | None
    answer: object
    pairs: int = 0
    labelled_pairs: int = 0


def decide(
    *, row: JudgmentRow, raters: dict[int, Rater], policy: Policy, criterion: str
) -> Decision:
    rater = raters.get(row.annotator_id)
    reason = exclusion_reason(
        gate_state=rater.gate_state if rater else None,
        excluded=row.excluded,
        is_gold=row.is_gold,
        is_repeat=row.is_repeat,
        policy=policy,
    )
    answer = row.answers.get(criterion) if isinstance(row.answers, dict) else None
    if reason is not None:
        return Decision(row, rater, reason, answer)
    if answer is None:
        return Decision(row, rater, NO_ANSWER, answer)
    counts = answer_pair_counts(answer)
    if counts is None:
        return Decision(row, rater, BOTH_BAD, answer)
    pairs, ties = counts
    return Decision(row, rater, None, answer, pairs, pairs - ties)


def tally_add(tally: Tally, decision: Decision) -> None:
    tally.considered += 1
    if decision.reason is not None:
        tally.excluded[decision.reason] += 1
        return
    tally.included += 1
    row = decision.row
    prompt = tally.prompts.get(row.prompt_id)
    if prompt is None:
        prompt = tally.prompts[row.prompt_id] = PromptTally()
    prompt.pairs += decision.pairs
    prompt.labelled_pairs += decision.labelled_pairs
    prompt.judgments += 1
    if prompt.first_judgment is None:
        prompt.first_judgment = row.id
    if prompt.first_labelled_judgment is None and decision.labelled_pairs:
        prompt.first_labelled_judgment = row.id


def decisions(
    *,
    batches: Iterator[list[JudgmentRow]],
    raters: dict[int, Rater],
    policy: Policy,
    criterion: str,
    tally: Tally,
    progress: Callable[[int], None],
) -> Iterator[list[Decision]]:
    """Each batch's decisions, added to `tally` as they go."""
    for batch in batches:
        decided = [
            decide(row=row, raters=raters, policy=policy, criterion=criterion) for row in batch
        ]
        for decision in decided:
            tally_add(tally, decision)
        yield decided
        progress(len(batch))


EMPTY_RESULT = (
    "Nothing to export: {considered} judgment(s) considered, none left after the policy "
    "(left out: {reasons}). Include more rater states (policy.states), or wait for judgments."
)


def empty_result_message(tally: Tally) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(tally.excluded.items())) or "none"
    return EMPTY_RESULT.format(considered=tally.considered, reasons=reasons)


def run_counting_pass(ctx) -> Tally:
    """Pass one: the tally, with nothing written."""
    tally = Tally()
    for _ in decisions(
        batches=ctx.batches(),
        raters=ctx.raters,
        policy=ctx.policy,
        criterion=ctx.criterion,
        tally=tally,
        progress=ctx.progress,
    ):
        pass
    return tally
