"""The assignment engine's draws: unpredictable in service, seedable for a simulation."""

import random

import pytest
from django.core.exceptions import ImproperlyConfigured

from annotate.models import Comparison
from annotate.services import assignments as engine
from annotate.services.assignments import SEED_REFUSED, assignment_draws_seed, assignment_next
from annotate.services.gold import gold_build
from annotate.services.judgments import judgment_submit
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _unseeded_afterwards():
    yield
    assignment_draws_seed(seed=None)


def test_the_draws_come_from_the_operating_system_unless_seeded():
    assert isinstance(engine._rng, random.SystemRandom)


def test_seeding_is_refused_outside_a_simulation(settings):
    settings.PICKWISE_SIMULATION = False
    with pytest.raises(ImproperlyConfigured) as refused:
        assignment_draws_seed(seed=7)
    assert str(refused.value) == SEED_REFUSED
    assert isinstance(engine._rng, random.SystemRandom)


def _tasks(campaign, user, count: int) -> list[tuple]:
    """Kind, comparison and screen order of `count` tasks; gold answered right, the rest
    alternately left and right (so no quality rule stops the annotator)."""
    seen = []
    for index in range(count):
        assignment = assignment_next(campaign=campaign, annotator=user)
        if assignment is None:
            break
        seen.append(
            (
                assignment.is_gold,
                assignment.is_repeat,
                assignment.comparison_id,
                assignment.presented,
            )
        )
        if assignment.is_gold:
            value = Comparison.objects.get(pk=assignment.comparison_id).gold_answer["overall"]
        else:
            value = assignment.presented[index % 2]
        judgment_submit(assignment=assignment, answers={"overall": value}, duration_ms=3000)
    return seen


def test_a_seed_replays_gold_repeats_and_screen_order(settings):
    settings.PICKWISE_SIMULATION = True
    campaign = campaign_with_comparisons(
        prompts=60, qualification_size=0, gold_rate=0.3, repeat_rate=0.3
    )
    gold_build(campaign=campaign, count=20)
    first_user, second_user, third_user = (annotator(campaign) for _ in range(3))

    assignment_draws_seed(seed=5)
    first = _tasks(campaign, first_user, 40)
    assignment_draws_seed(seed=5)
    second = _tasks(campaign, second_user, 40)
    assignment_draws_seed(seed=6)
    third = _tasks(campaign, third_user, 40)

    # Gold, repeats and regular tasks all occurred, so every kind of draw was exercised.
    assert {(gold, repeat) for gold, repeat, _, _ in first} == {
        (True, False),
        (False, True),
        (False, False),
    }

    # Regular picks differ between annotators (the first one filled slots), so compare
    # what the seed decides: the kinds, which gold item, and the screen order of gold.
    def decided(tasks):
        return [(g, r, c if g else None, p if g else None) for g, r, c, p in tasks]

    assert decided(second) == decided(first)
    assert decided(third) != decided(first)
