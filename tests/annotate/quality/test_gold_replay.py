"""gold_replay, the recompute's loop over a rater's gold answers, lands on exactly the
counters that applying gold_step answer by answer does (the submit's and the undo's path)."""

import random

import pytest

from annotate.quality.rules import DEFAULT_POLICY, GOLD_COUNTERS, gold_replay, gold_step


def _stepped(counters: dict[str, int], answers: list[bool | None], policy: dict) -> dict:
    counters = dict(counters)
    for correct in answers:
        if correct is None:
            continue
        for name, step in gold_step(counters, correct=correct, policy=policy).items():
            counters[name] += step
    return counters


POLICIES = [
    DEFAULT_POLICY,
    {**DEFAULT_POLICY, "gold_window": 4},
    {**DEFAULT_POLICY, "gold_window": 30, "sprt_bound": 0.0},  # qualifies on the first right
    {**DEFAULT_POLICY, "sprt_p0": 0.5, "sprt_p1": 0.95, "sprt_bound": 9.0},
    {**DEFAULT_POLICY, "gold_window": 1},
]


@pytest.mark.parametrize("policy", POLICIES)
def test_replay_equals_the_steps_on_random_answer_sequences(policy):
    draw = random.Random(20261202)
    for _ in range(300):
        length = draw.randrange(0, 60)
        accuracy = draw.random()
        answers = [
            None if draw.random() < 0.05 else draw.random() < accuracy for _ in range(length)
        ]
        # From zero, and on top of counters a first batch left (the replay continues them).
        start = dict.fromkeys(GOLD_COUNTERS, 0)
        head = draw.randrange(0, length + 1)
        for begin in (start, _stepped(start, answers[:head], policy)):
            rest = answers if begin is start else answers[head:]
            expected = _stepped(begin, rest, policy)
            replayed = {**begin, "kappa": None}  # other keys are left alone
            gold_replay(replayed, answers=rest, policy=policy)
            assert replayed == {**expected, "kappa": None}


def test_the_qualifying_answer_is_the_same_one_at_the_bound():
    # ln(19) is crossed at the 8th straight right answer (8 * 0.405 = 3.24 > 2.94, 7 * 0.405
    # = 2.84 < 2.94): gold_passed_at records the answer count where the SPRT passed.
    counters = dict.fromkeys(GOLD_COUNTERS, 0)
    gold_replay(counters, answers=[True] * 10, policy=DEFAULT_POLICY)
    assert counters["gold_passed_at"] == 8
    assert (counters["post_gold_correct"], counters["post_gold_wrong"]) == (2, 0)
    assert counters == _stepped(dict.fromkeys(GOLD_COUNTERS, 0), [True] * 10, DEFAULT_POLICY)
