"""The counting pass and the policy over columns, for pairwise campaigns.

The same tally as exports.scan, reached without a Python loop per judgment: the counting pass
is one SQL aggregate (exports.column_selectors), and the writing pass decides a whole batch
with the policy's numpy rendering (exports.policy.policy_reason_codes), and checks it
against the count at the end.
"""

import numpy as np
import pyarrow.compute as pc

from annotate.criteria import BOTH_BAD, TIE
from annotate.models import Campaign
from exports.column_selectors import KEPT, RANKING, JudgmentColumns, judgment_counts_by_prompt
from exports.policy import (
    ANSWER_BOTH_BAD,
    ANSWER_MISSING,
    FLAGGED,
    IS_GOLD,
    IS_REPEAT,
    KEPT_CODE,
    RATER_BLOCKED,
    RATER_LEFT_OUT,
    REASONS,
    Policy,
    policy_reason_codes,
    rater_verdict,
)
from exports.scan import PromptTally, Tally
from exports.selectors import Rater

# Not a policy reason: a ranking answer (a list) in a pairwise campaign, which these columns
# cannot expand into pairs; such a campaign takes the row source
# (exports.writers.pair_columns), and in the writing pass it means the data changed.
RANKING_CODE = KEPT_CODE + 1
# Reason per code: the policy's (its index in REASONS), then RANKING's.
REASON_OF_CODE = {**dict(enumerate(REASONS)), RANKING_CODE: RANKING}


def pairwise_counting_pass(ctx) -> Tally | None:
    """Pass one of a pairwise campaign: the tally exports.scan.run_counting_pass gives, from
    one aggregate query. None when an answer is a ranking, or for several campaigns (their
    rows are rewritten on the way, exports.combined): those are counted by exports.scan
    and their pairs expanded from rows (exports.writers.pair_columns)."""
    if ctx.campaign.kind != Campaign.Kind.PAIRWISE or ctx.combination is not None:
        return None
    counts = judgment_counts_by_prompt(
        campaign=ctx.campaign, criterion=ctx.criterion, last_id=ctx.last_id, policy=ctx.policy
    )
    if any(count.reason == RANKING for count in counts):
        return None
    tally = Tally()
    for count in counts:
        tally.considered += count.judgments
        if count.reason != KEPT:
            tally.excluded[count.reason] += count.judgments
            continue
        tally.included += count.judgments
        # A pairwise judgment is one pair; labelled when it is not a tie.
        tally.prompts[count.prompt_id] = PromptTally(
            pairs=count.judgments,
            labelled_pairs=count.labelled,
            judgments=count.judgments,
            first_judgment=count.first_id,
            first_labelled_judgment=count.first_labelled_id,
        )
    ctx.progress(tally.considered)
    return tally


def rater_columns(
    *, annotator_ids: np.ndarray, raters: dict[int, Rater], policy: Policy
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blocked, state included, rater key) per judgment, decided once per rater."""
    annotators, index = np.unique(annotator_ids, return_inverse=True)
    blocked, included, keys = [], [], []
    for annotator in annotators.tolist():
        rater = raters.get(annotator)
        verdict = rater_verdict(gate_state=rater.gate_state if rater else None, policy=policy)
        blocked.append(verdict[0])
        included.append(verdict[1])
        keys.append(rater.rater_key if rater else 0)  # 0 only for raters never kept
    return (
        np.array(blocked, dtype=bool)[index],
        np.array(included, dtype=bool)[index],
        np.array(keys, dtype=np.int64)[index],
    )


def decide_columns(
    *,
    columns: JudgmentColumns,
    blocked: np.ndarray,
    included: np.ndarray,
    policy: Policy,
    tally: Tally,
) -> np.ndarray:
    """The policy's verdict on a batch, added to `tally`: a mask of the kept judgments."""
    answers = columns.answers
    facts = {
        RATER_BLOCKED: blocked,
        FLAGGED: columns.excluded,
        RATER_LEFT_OUT: ~included,
        IS_GOLD: columns.is_gold,
        IS_REPEAT: columns.is_repeat,
        ANSWER_MISSING: answers.is_null().to_numpy(zero_copy_only=False),
        ANSWER_BOTH_BAD: pc.fill_null(pc.equal(answers, BOTH_BAD), False).to_numpy(
            zero_copy_only=False
        ),
    }
    codes = policy_reason_codes(policy, facts)
    ranking = pc.fill_null(pc.starts_with(answers, "["), False).to_numpy(zero_copy_only=False)
    codes[(codes == KEPT_CODE) & ranking] = RANKING_CODE
    per_code = np.bincount(codes, minlength=RANKING_CODE + 1)
    for code, reason in REASON_OF_CODE.items():
        if per_code[code]:
            tally.excluded[reason] += int(per_code[code])
    kept = codes == KEPT_CODE
    tally.considered += len(columns)
    tally.included += int(per_code[KEPT_CODE])
    labelled = pc.fill_null(pc.not_equal(answers, TIE), False).to_numpy(zero_copy_only=False)
    _add_prompts(
        tally=tally,
        ids=columns.ids[kept],
        prompts=columns.prompt_ids[kept],
        labelled=labelled[kept],
    )
    return kept


def _add_prompts(*, tally: Tally, ids: np.ndarray, prompts: np.ndarray, labelled: np.ndarray):
    """Per prompt: pairs, labelled pairs, judgments and first (labelled) judgment. Ids come
    in ascending order, so a prompt's first occurrence is its smallest id."""
    if not len(ids):
        return
    unique, first, index = np.unique(prompts, return_index=True, return_inverse=True)
    judgments = np.bincount(index, minlength=len(unique))
    labelled_judgments = np.bincount(index, weights=labelled, minlength=len(unique))
    first_labelled = {}
    if labelled.any():
        labelled_prompts, labelled_first = np.unique(prompts[labelled], return_index=True)
        first_labelled = dict(
            zip(labelled_prompts.tolist(), ids[labelled][labelled_first].tolist(), strict=True)
        )
    for prompt_id, first_id, count, labelled_count in zip(
        unique.tolist(),
        ids[first].tolist(),
        judgments.tolist(),
        labelled_judgments.tolist(),
        strict=True,
    ):
        prompt = tally.prompts.get(prompt_id)
        if prompt is None:
            prompt = tally.prompts[prompt_id] = PromptTally(first_judgment=first_id)
        prompt.pairs += count
        prompt.labelled_pairs += int(labelled_count)
        prompt.judgments += count
        if prompt.first_labelled_judgment is None and prompt_id in first_labelled:
            prompt.first_labelled_judgment = first_labelled[prompt_id]
