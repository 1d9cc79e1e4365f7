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
from typing import NamedTuple

from annotate.criteria import BOTH_BAD, TIE
from exports.pairs import answer_pair_counts
from exports.policy import (
    ANSWER_BOTH_BAD,
    ANSWER_MISSING,
    BIT,
    FLAGGED,
    IS_GOLD,
    IS_REPEAT,
    RATER_BLOCKED,
    RATER_LEFT_OUT,
    Policy,
    policy_decision_table,
    rater_verdict,
)
from exports.selectors import JudgmentRow, Rater


@dataclass(slots=True)
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


class Decision(NamedTuple):
    row: JudgmentRow
    rater: Rater | None
    reason: str | None  # why it is left out; None when kept
    pairs: int = 0
    labelled_pairs: int = 0


def decide_batch(
    *, rows: list[JudgmentRow], raters: dict[int, Rater], policy: Policy, tally: Tally
) -> list[Decision]:
    """The policy's verdict on each judgment, added to `tally`.

    The hot loop of every export's Python path: each judgment's facts become the bits of
    an index into the policy's decision table (exports.policy.policy_decision_table), with
    the rater's facts computed once per rater.
    """
    decided = []
    append = decided.append
    prompts = tally.prompts
    excluded = tally.excluded
    table = policy_decision_table(policy)
    flagged, gold, repeat = BIT[FLAGGED], BIT[IS_GOLD], BIT[IS_REPEAT]
    both_bad, missing = BIT[ANSWER_BOTH_BAD], BIT[ANSWER_MISSING]
    verdicts: dict[int, tuple[Rater | None, int]] = {}
    considered = included = 0
    for row in rows:
        verdict = verdicts.get(row.annotator_id)
        if verdict is None:
            rater = raters.get(row.annotator_id)
            blocked, state_included = rater_verdict(
                gate_state=rater.gate_state if rater else None, policy=policy
            )
            bits = (BIT[RATER_BLOCKED] if blocked else 0) | (
                0 if state_included else BIT[RATER_LEFT_OUT]
            )
            verdict = verdicts[row.annotator_id] = (rater, bits)
        rater, bits = verdict
        considered += 1
        if row.excluded:
            bits |= flagged
        if row.is_gold:
            bits |= gold
        if row.is_repeat:
            bits |= repeat
        answer = row.answer
        pairs = labelled = 0
        if answer is None:
            bits |= missing
        elif answer.__class__ is str:
            if answer == BOTH_BAD:
                bits |= both_bad
            else:
                pairs, labelled = 1, int(answer != TIE)
        else:
            counts = answer_pair_counts(answer)
            if counts is None:
                bits |= missing
            else:
                pairs, labelled = counts[0], counts[0] - counts[1]
        reason = table[bits]
        if reason is not None:
            excluded[reason] += 1
            append(Decision(row, rater, reason))
            continue
        included += 1
        prompt = prompts.get(row.prompt_id)
        if prompt is None:
            prompt = prompts[row.prompt_id] = PromptTally()
        prompt.pairs += pairs
        prompt.labelled_pairs += labelled
        prompt.judgments += 1
        if prompt.first_judgment is None:
            prompt.first_judgment = row.id
        if prompt.first_labelled_judgment is None and labelled:
            prompt.first_labelled_judgment = row.id
        append(Decision(row, rater, None, pairs, labelled))
    tally.considered += considered
    tally.included += included
    return decided


def decisions(
    *,
    batches: Iterator[list[JudgmentRow]],
    raters: dict[int, Rater],
    policy: Policy,
    tally: Tally,
    progress: Callable[[int], None],
) -> Iterator[list[Decision]]:
    """Each batch's decisions, added to `tally` as they go."""
    for batch in batches:
        yield decide_batch(rows=batch, raters=raters, policy=policy, tally=tally)
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
        batches=ctx.batches(with_time=False),
        raters=ctx.raters,
        policy=ctx.policy,
        tally=tally,
        progress=ctx.progress,
    ):
        pass
    return tally
