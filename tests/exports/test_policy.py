"""The export policy's one table of rules, and its renderings: the SQL CASE, numpy's
np.select and the per-row decision table, each checked against the same cases and against
each other on every combination of a judgment's facts; and the ORM filter of the check before
an export starts, against the decision table on stored judgments."""

import itertools
from collections import Counter

import numpy as np
import pytest
from django.db import connection

from annotate.models import Judgment, Membership
from exports.policy import (
    ANSWER_BOTH_BAD,
    ANSWER_MISSING,
    BLOCKED_RATER,
    BOTH_BAD,
    EXCLUDED_FLAG,
    FACTS,
    FLAGGED,
    GOLD,
    IS_GOLD,
    IS_REPEAT,
    KEPT_CODE,
    NO_ANSWER,
    RATER_BLOCKED,
    RATER_LEFT_OUT,
    REASONS,
    REPEAT,
    RULES,
    STATE_NOT_INCLUDED,
    Policy,
    policy_case_sql,
    policy_decision_table,
    policy_left_out_q,
    policy_reason_codes,
    rater_verdict,
)
from exports.scan import Tally, decide_batch
from exports.selectors import JudgmentRow, Rater, judgment_count_under_policy
from tests.exports.helpers import bulk_judge, prefer_models
from tests.factories import annotator, campaign_with_comparisons

UID = "6f1c2a4e-1111-4222-8333-444455556666"
DEFAULT = Policy()
EVERYONE = Policy(
    states=("qualifying", "active", "warned"), exclude_gold=False, exclude_repeats=False
)
POLICIES = [
    DEFAULT,
    EVERYONE,
    Policy(states=("active",), exclude_gold=False),
    Policy(states=("qualifying",), exclude_repeats=False),
]
GATE_STATES = [None, "qualifying", "active", "warned", "blocked"]
ANSWERS = [None, "both_bad", "tie", UID]

# (policy, gate state, excluded, gold, repeat, answer, the reason; None: kept)
CASES = [
    (DEFAULT, "active", False, False, False, UID, None),
    (DEFAULT, "warned", False, False, False, "tie", None),
    # A blocked rater's judgment counts under blocked_rater whatever else holds.
    (DEFAULT, "blocked", True, True, True, "both_bad", BLOCKED_RATER),
    (DEFAULT, "active", True, True, True, None, EXCLUDED_FLAG),
    (DEFAULT, "qualifying", False, True, False, UID, STATE_NOT_INCLUDED),
    (DEFAULT, None, False, False, False, UID, STATE_NOT_INCLUDED),  # no membership
    (DEFAULT, "active", False, True, True, UID, GOLD),
    (DEFAULT, "active", False, False, True, "both_bad", REPEAT),
    (DEFAULT, "active", False, False, False, "both_bad", BOTH_BAD),
    (DEFAULT, "active", False, False, False, None, NO_ANSWER),
    (EVERYONE, "qualifying", False, True, True, UID, None),
    (EVERYONE, "blocked", False, False, False, UID, BLOCKED_RATER),
    (Policy(states=("active",), exclude_gold=False), "active", False, True, True, UID, REPEAT),
]


def facts_of(*, policy, gate_state, excluded, gold, repeat, answer) -> dict[str, bool]:
    blocked, included = rater_verdict(gate_state=gate_state, policy=policy)
    return {
        RATER_BLOCKED: blocked,
        FLAGGED: excluded,
        RATER_LEFT_OUT: not included,
        IS_GOLD: gold,
        IS_REPEAT: repeat,
        ANSWER_BOTH_BAD: answer == "both_bad",
        ANSWER_MISSING: answer is None,
    }


def python_reason(policy, **row) -> str | None:
    facts = facts_of(policy=policy, **row)
    bits = sum(1 << position for position, fact in enumerate(FACTS) if facts[fact])
    return policy_decision_table(policy)[bits]


def numpy_reasons(policy, rows: list[dict]) -> list[str | None]:
    facts = [facts_of(policy=policy, **row) for row in rows]
    columns = {fact: np.array([f[fact] for f in facts], dtype=bool) for fact in FACTS}
    codes = policy_reason_codes(policy, columns)
    return [None if code == KEPT_CODE else REASONS[code] for code in codes.tolist()]


def sql_reasons(policy, rows: list[dict]) -> list[str | None]:
    """The CASE run by the database over the rows as a VALUES table: each row as the
    judgment (j) and as its rater's membership (m; gate_state null for no membership)."""
    case, params = policy_case_sql(policy, kept="")
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
    sql = f"""
        WITH t AS (
            SELECT column1 AS position, column2 AS excluded, column3 AS is_gold,
                column4 AS is_repeat, column5 AS answer, column6 AS gate_state
            FROM (VALUES {values}) AS v
        )
        SELECT {case} FROM t j JOIN t m ON m.position = j.position ORDER BY j.position
    """  # noqa: S608 (the CASE comes from code)
    table = [
        (i, r["excluded"], r["gold"], r["repeat"], r["answer"], r["gate_state"])
        for i, r in enumerate(rows)
    ]
    with connection.cursor() as cursor:
        # The CTE's values come first in the text, then the CASE's parameters.
        cursor.execute(sql, [*(value for row in table for value in row), *params])
        return [reason or None for (reason,) in cursor.fetchall()]


def case_row(case) -> tuple[Policy, dict, str | None]:
    policy, gate_state, excluded, gold, repeat, answer, reason = case
    row = {
        "gate_state": gate_state,
        "excluded": excluded,
        "gold": gold,
        "repeat": repeat,
        "answer": answer,
    }
    return policy, row, reason


def every_row() -> list[dict]:
    """Every combination of the facts a judgment can have."""
    return [
        {"gate_state": g, "excluded": e, "gold": o, "repeat": r, "answer": a}
        for g, e, o, r, a in itertools.product(
            GATE_STATES, [False, True], [False, True], [False, True], ANSWERS
        )
    ]


def test_the_rules_give_each_reason_once_in_the_order_reasons_are_listed():
    assert [rule.reason for rule in RULES] == list(REASONS)
    assert len(set(REASONS)) == len(REASONS)
    assert {rule.fact for rule in RULES} == set(FACTS)
    assert {rule.switch for rule in RULES} == {None, "exclude_gold", "exclude_repeats"}


@pytest.mark.parametrize("case", CASES)
def test_the_decision_table_gives_the_reason_of_the_first_rule_that_applies(case):
    policy, row, reason = case_row(case)
    assert python_reason(policy, **row) == reason


@pytest.mark.parametrize("case", CASES)
def test_the_numpy_rendering_gives_the_same_reason(case):
    policy, row, reason = case_row(case)
    assert numpy_reasons(policy, [row]) == [reason]


@pytest.mark.django_db
def test_the_sql_rendering_gives_the_same_reasons():
    for case in CASES:
        policy, row, reason = case_row(case)
        assert sql_reasons(policy, [row]) == [reason], case


@pytest.mark.django_db
@pytest.mark.parametrize("policy", POLICIES)
def test_the_three_renderings_agree_on_every_combination_of_facts(policy):
    rows = every_row()
    python = [python_reason(policy, **row) for row in rows]
    assert numpy_reasons(policy, rows) == python
    assert sql_reasons(policy, rows) == python
    # Each reason a policy turns on is reached by some combination; those it turns off never.
    reached = Counter(python)
    assert (GOLD in reached) == policy.exclude_gold
    assert (REPEAT in reached) == policy.exclude_repeats
    assert {BLOCKED_RATER, EXCLUDED_FLAG, STATE_NOT_INCLUDED, BOTH_BAD, NO_ANSWER} <= set(reached)
    assert None in reached


@pytest.mark.parametrize("policy", POLICIES)
def test_the_row_loop_applies_the_table_and_counts_pairs(policy):
    raters = {
        index: Rater(rater_key=100 + index, gate_state=state)
        for index, state in enumerate(GATE_STATES)
        if state is not None
    }
    user_of = {state: index for index, state in enumerate(GATE_STATES)}
    rows = every_row()
    judgments = [
        JudgmentRow(
            id=position + 1,
            comparison_id=1,
            prompt_id=position % 3,
            annotator_id=user_of[row["gate_state"]],
            answer=row["answer"],
            is_gold=row["gold"],
            is_repeat=row["repeat"],
            excluded=row["excluded"],
            created_at=None,
        )
        for position, row in enumerate(rows)
    ]
    tally = Tally()
    decided = decide_batch(rows=judgments, raters=raters, policy=policy, tally=tally)
    expected = [python_reason(policy, **row) for row in rows]
    assert [d.reason for d in decided] == expected
    assert tally.considered == len(rows)
    assert tally.included == expected.count(None)
    assert tally.excluded == Counter(r for r in expected if r is not None)
    kept = [(d, row) for d, row in zip(decided, rows, strict=True) if d.reason is None]
    assert all((d.pairs, d.labelled_pairs) == (1, int(row["answer"] != "tie")) for d, row in kept)


def test_the_row_loop_expands_rankings_and_leaves_out_a_malformed_one():
    raters = {1: Rater(rater_key=7, gate_state="active")}

    def judgment(id, answer):
        return JudgmentRow(id, 1, 1, 1, answer, False, False, False, None)

    tally = Tally()
    decided = decide_batch(
        rows=[
            judgment(1, [["a"], ["b", "c"]]),  # 3 pairs, one of them a tie
            judgment(2, [["a", "b", "c"]]),  # 3 pairs, all ties
            judgment(3, ["a", "b"]),  # not tiers: no preference
            judgment(4, 5),
        ],
        raters=raters,
        policy=DEFAULT,
        tally=tally,
    )
    assert [(d.reason, d.pairs, d.labelled_pairs) for d in decided] == [
        (None, 3, 2),
        (None, 3, 0),
        (NO_ANSWER, 0, 0),
        (NO_ANSWER, 0, 0),
    ]
    prompt = tally.prompts[1]
    assert (prompt.pairs, prompt.labelled_pairs, prompt.first_labelled_judgment) == (6, 2, 1)


@pytest.mark.django_db
@pytest.mark.parametrize("policy", POLICIES)
def test_the_check_before_an_export_keeps_what_the_decision_table_keeps(policy):
    """Raters in every gate state and one with no membership; flags, gold and repeats spread
    over their judgments. Every answer is a preference, so only the rules known before the
    answers decide, and the ORM filter must leave out exactly what the table leaves out."""
    campaign = campaign_with_comparisons(prompts=6)
    users = [annotator(campaign, gate_state=state) for state in GATE_STATES[1:]]
    users.append(annotator(campaign))  # judges, then leaves the campaign
    bulk_judge(campaign, users, prefer_models("model-a", "model-b"))
    Membership.objects.filter(campaign=campaign, user=users[-1]).delete()
    for position, judgment in enumerate(Judgment.objects.filter(campaign=campaign).order_by("id")):
        judgment.excluded = position % 5 == 0
        judgment.is_gold = position % 2 == 1
        judgment.is_repeat = position % 3 == 0
        judgment.save(update_fields=["excluded", "is_gold", "is_repeat"])
    states = dict(Membership.objects.filter(campaign=campaign).values_list("user_id", "gate_state"))
    kept = [
        judgment.pk
        for judgment in Judgment.objects.filter(campaign=campaign)
        if python_reason(
            policy,
            gate_state=states.get(judgment.annotator_id),
            excluded=judgment.excluded,
            gold=judgment.is_gold,
            repeat=judgment.is_repeat,
            answer=UID,
        )
        is None
    ]
    assert kept, "the case must keep something for the comparison to mean anything"
    left_out = policy_left_out_q(policy, campaign_id=campaign.pk)
    stored = Judgment.objects.filter(campaign=campaign).exclude(left_out)
    assert sorted(stored.values_list("pk", flat=True)) == sorted(kept)
    assert judgment_count_under_policy(campaign=campaign, policy=policy) == len(kept)
