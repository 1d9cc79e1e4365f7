"""The label-quality simulator (bench/simulate_crowd.py) replays from its seed and its raters
answer gold and repeats through their own perception, not from the database."""

import numpy as np
import pytest

from bench.crowd_model import vote
from bench.simulate_crowd import (
    GOLD_GAP,
    NOT_SEEDABLE,
    SIMULATION_CACHES,
    Rater,
    Unit,
    answer,
    simulate,
)
from exports.consensus_model import FIRST, SECOND, TIE

# A small crowd (every behaviour present at 20 raters, mostly honest), with repeats frequent
# enough to occur within 30 tasks: under a minute a run on SQLite.
SMALL = {
    "raters": 20,
    "budget": 30,
    "models": 4,
    "gold": 20,
    "campaign_settings": {"repeat_rate": 0.2, "qualification_size": 8},
}


@pytest.fixture
def eager_simulation(settings):
    """What bench/simulate_crowd.py's main sets: seedable draws, tasks run on commit."""
    from pickwise.celery import app

    settings.PICKWISE_SIMULATION = True
    settings.CACHES = SIMULATION_CACHES
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = eager


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_same_seed_replays_the_same_judgments_and_another_seed_does_not(eager_simulation):
    first = simulate(seed=11, mixture="mostly honest", **SMALL)
    again = simulate(seed=11, mixture="mostly honest", **SMALL)
    other = simulate(seed=12, mixture="mostly honest", **SMALL)

    assert len(first.judgments) > 300  # the crowd did its work: 20 raters, up to 30 tasks
    assert any(j[3] for j in first.judgments) and any(j[4] for j in first.judgments)
    assert again.judgments == first.judgments
    assert again.raters == first.raters
    assert other.judgments != first.judgments
    for method, scores in first.accuracy.items():
        np.testing.assert_array_equal(again.accuracy[method], scores)


@pytest.mark.django_db
def test_simulate_refuses_without_the_simulation_setting():
    with pytest.raises(RuntimeError, match="PICKWISE_SIMULATION"):
        simulate(seed=1, **SMALL)
    assert "PICKWISE_SIMULATION" in NOT_SEEDABLE


class _Task:
    def __init__(self, comparison_id: int, presented: list[str]):
        self.comparison_id = comparison_id
        self.presented = presented


def _rater(group: str, *, noise: float, index: int = 0, lapse: float = 0.0) -> Rater:
    return Rater(
        index=index,
        user=None,
        group=group,
        noise=noise,
        tie_threshold=0.1,
        lapse=lapse,
        median_s=3.0,
        rng=np.random.default_rng(index),
        seen_regular=1,
    )


def _gold_accuracy(noise: float, looks: int = 4000) -> float:
    gold = Unit(
        first="right", second="wrong", gap=GOLD_GAP, on_style=False, prompt=-1, rank=0, gold=True
    )
    right = 0
    for comparison_id in range(looks):
        rater = _rater("honest", noise=noise, index=comparison_id)
        task = _Task(comparison_id, ["wrong", "right"])
        right += answer(rater, assignment=task, unit=gold, seed=1) == "right"
    return right / looks


def test_gold_is_answered_through_the_raters_perception():
    # No lapses here: P(wrong) = P(N(0, noise) < -GOLD_GAP) = Phi(-2.5 / noise).
    # noise 0.5: Phi(-5) ~ 3e-7, so all 4000 right; noise 2.0: Phi(-1.25) = 0.106 wrong, plus
    # perceived gaps within the tie threshold 0.1 (about 0.02); 4000 looks give a standard
    # error of 0.005, so 0.80 to 0.92 holds with a wide margin.
    assert _gold_accuracy(0.5) == 1.0
    assert 0.80 < _gold_accuracy(2.0) < 0.92


def test_an_identical_gold_pair_is_a_tie_for_an_honest_rater_and_a_lapse_can_miss_it():
    identical = Unit(
        first="a", second="b", gap=0.0, on_style=False, prompt=-1, rank=0, identical=True
    )
    careful = _rater("honest", noise=0.9)
    assert {
        answer(careful, assignment=_Task(i, ["a", "b"]), unit=identical, seed=1) for i in range(200)
    } == {"tie"}
    lapsing = _rater("honest", noise=0.9, lapse=0.5)
    answers = [
        answer(lapsing, assignment=_Task(i, ["a", "b"]), unit=identical, seed=1) for i in range(200)
    ]
    assert {"a", "b", "tie"} == set(answers)


def test_a_repeat_sees_mostly_the_same_perception_noise():
    """Same rater and pair: 64% of the noise variance is shared, so two looks at a pair with
    no gap agree far more often than two independent looks (1/2 for first against second)."""

    def looks(key_of_second_look):
        agree = 0
        for pair in range(3000):
            rng = np.random.default_rng(pair)
            kwargs = {
                "group": "honest",
                "gap": 0.0,
                "on_style": False,
                "noise": 1.0,
                "lapse": 0.0,
                "tie_threshold": 0.0,
            }
            one = vote(rng, offset_key=[1, pair], **kwargs)
            two = vote(rng, offset_key=key_of_second_look(pair), **kwargs)
            agree += one == two
        return agree / 3000

    # Correlation of the two perceptions 0.64: P(same sign) = 1/2 + arcsin(0.64)/pi = 0.72;
    # independent: 0.5. With 3000 pairs the standard error is about 0.009.
    assert looks(lambda pair: [1, pair]) > 0.67
    assert abs(looks(lambda pair: [2, pair]) - 0.5) < 0.04
    assert {FIRST, SECOND} >= {
        vote(
            np.random.default_rng(0),
            group="contrarian",
            gap=5.0,
            on_style=False,
            noise=0.1,
            lapse=0.0,
            tie_threshold=0.1,
            offset_key=[0],
        )
    }
    assert (
        vote(
            np.random.default_rng(0),
            group="always_tie",
            gap=5.0,
            on_style=False,
            noise=0.1,
            lapse=0.0,
            tie_threshold=0.1,
            offset_key=[0],
        )
        == TIE
    )
