from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.answers import (
    BOTH_BAD_NOT_ALLOWED,
    MISSING_CRITERION,
    RANKING_NOT_COVERING,
    TIE_NOT_ALLOWED,
    UNKNOWN_PAIRWISE_VALUE,
)
from annotate.models import Assignment, Comparison, Judgment, Membership
from annotate.services.assignments import assignment_next, assignment_skip
from annotate.services.gold import gold_build
from annotate.services.judgments import ASSIGNMENT_EXPIRED, judgment_submit
from pickwise.errors import ApplicationError
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db

STRICT = [{"key": "overall", "question": "Better?", "allow_tie": False, "allow_both_bad": False}]


def _next(campaign, user):
    return assignment_next(campaign=campaign, annotator=user)


def test_it_stores_the_winner_and_presented_order_and_moves_the_counters():
    campaign = campaign_with_comparisons(prompts=1)
    assignment = _next(campaign, annotator(campaign))
    winner = assignment.presented[1]
    judgment, created = judgment_submit(
        assignment=assignment, answers={"overall": winner.upper()}, duration_ms=1234
    )
    assert created
    assert judgment.answers == {"overall": winner}
    assert judgment.presented == assignment.presented
    assert judgment.duration_ms == 1234 and judgment.server_ms >= 0
    comparison = Comparison.objects.get()
    assert (comparison.done, comparison.in_flight) == (1, 0)


def test_a_second_submit_returns_the_same_judgment_and_counts_once():
    campaign = campaign_with_comparisons(prompts=1)
    assignment = _next(campaign, annotator(campaign))
    first, _ = judgment_submit(assignment=assignment, answers={"overall": "tie"})
    again, created = judgment_submit(assignment=assignment, answers={"overall": "tie"})
    assert again.pk == first.pk and not created
    assert Judgment.objects.count() == 1
    assert Comparison.objects.get().done == 1


def test_an_answer_without_a_client_duration_is_kept_but_flagged_never_shown():
    campaign = campaign_with_comparisons(prompts=2)
    user = annotator(campaign)
    seen = _next(campaign, user)
    unseen = assignment_next(campaign=campaign, annotator=user, exclude_ids=(seen.pk,))
    shown, _ = judgment_submit(assignment=seen, answers={"overall": "tie"}, duration_ms=0)
    stray, _ = judgment_submit(assignment=unseen, answers={"overall": "tie"})
    assert shown.never_shown is False
    assert stray.never_shown is True
    assert Judgment.objects.filter(never_shown=True).get() == stray


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({}, MISSING_CRITERION.format(key="overall")),
        ({"overall": "tie"}, TIE_NOT_ALLOWED.format(key="overall")),
        ({"overall": "both_bad"}, BOTH_BAD_NOT_ALLOWED.format(key="overall")),
        ({"overall": "not-a-uid"}, UNKNOWN_PAIRWISE_VALUE.format(key="overall")),
        ({"overall": 3}, UNKNOWN_PAIRWISE_VALUE.format(key="overall")),
    ],
)
def test_it_rejects_answers_the_criterion_does_not_allow(answers, message):
    campaign = campaign_with_comparisons(prompts=1, criteria=STRICT)
    assignment = _next(campaign, annotator(campaign))
    with pytest.raises(ApplicationError) as error:
        judgment_submit(assignment=assignment, answers=answers)
    assert error.value.message == message
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get().state == Assignment.State.OPEN


def test_it_rejects_an_image_from_another_comparison():
    campaign = campaign_with_comparisons(prompts=2)
    user = annotator(campaign)
    first = _next(campaign, user)
    second = assignment_next(campaign=campaign, annotator=user, exclude_ids=(first.pk,))
    with pytest.raises(ApplicationError):
        judgment_submit(assignment=first, answers={"overall": second.presented[0]})


def test_it_refuses_a_submit_after_the_lease_and_gives_the_slot_back():
    campaign = campaign_with_comparisons(prompts=1, overlap=1)
    assignment = _next(campaign, annotator(campaign))
    later = timezone.now() + timedelta(seconds=campaign.lease_seconds + 5)
    with pytest.raises(ApplicationError) as error:
        judgment_submit(assignment=assignment, answers={"overall": "tie"}, now=later)
    assert error.value.message == ASSIGNMENT_EXPIRED and error.value.status == 409
    comparison = Comparison.objects.get()
    assert (comparison.in_flight, comparison.status) == (0, "open")
    assert Assignment.objects.get().state == Assignment.State.EXPIRED


def test_it_refuses_a_skipped_assignment():
    campaign = campaign_with_comparisons(prompts=1)
    assignment = _next(campaign, annotator(campaign))
    assignment_skip(assignment=assignment)
    with pytest.raises(ApplicationError) as error:
        judgment_submit(assignment=assignment, answers={"overall": "tie"})
    assert error.value.code == "assignment_skipped"


def test_a_blocked_annotator_cannot_submit():
    campaign = campaign_with_comparisons(prompts=1)
    user = annotator(campaign)
    assignment = _next(campaign, user)
    Membership.objects.filter(user=user).update(gate_state="blocked")
    with pytest.raises(ApplicationError) as error:
        judgment_submit(assignment=assignment, answers={"overall": "tie"})
    assert error.value.status == 403
    assert Judgment.objects.count() == 0


@pytest.mark.parametrize("duration", [-1, 10**9, "fast", 1.5, True])
def test_it_rejects_a_malformed_duration(duration):
    campaign = campaign_with_comparisons(prompts=1)
    assignment = _next(campaign, annotator(campaign))
    with pytest.raises(ApplicationError):
        judgment_submit(assignment=assignment, answers={"overall": "tie"}, duration_ms=duration)


def test_rankings_take_tiers_that_cover_every_image_once():
    campaign = campaign_with_comparisons(prompts=1, models=("a", "b", "c"), kind="ranking", k=3)
    assignment = _next(campaign, annotator(campaign))
    a, b, c = assignment.presented
    with pytest.raises(ApplicationError) as error:
        judgment_submit(assignment=assignment, answers={"overall": [[a], [b]]})
    assert error.value.message == RANKING_NOT_COVERING.format(key="overall")
    with pytest.raises(ApplicationError):
        judgment_submit(assignment=assignment, answers={"overall": [[a], [b], [b], [c]]})
    judgment, _ = judgment_submit(assignment=assignment, answers={"overall": [[b], [a, c]]})
    assert judgment.answers == {"overall": [[b], [a, c]]}


def test_gold_answers_are_scored_and_qualify_an_annotator():
    campaign = campaign_with_comparisons(prompts=12, qualification_size=10)
    gold = gold_build(campaign=campaign, count=12)
    assert gold
    user = annotator(campaign)
    membership = Membership.objects.get(user=user)
    assert membership.gate_state == Membership.Gate.QUALIFYING
    for _ in range(8):
        assignment = _next(campaign, user)
        assert assignment.is_gold
        expected = assignment.comparison.gold_answer["overall"]
        judgment, _ = judgment_submit(assignment=assignment, answers={"overall": expected})
        assert judgment.gold_correct is True
    membership.refresh_from_db()
    assert membership.gate_state == Membership.Gate.ACTIVE


def test_wrong_gold_answers_block_during_qualification():
    campaign = campaign_with_comparisons(prompts=6, qualification_size=10)
    gold_build(campaign=campaign, count=6)
    user = annotator(campaign)
    for _ in range(3):
        assignment = _next(campaign, user)
        expected = assignment.comparison.gold_answer["overall"]
        wrong = next(uid for uid in assignment.presented if uid != expected)
        if expected != "tie":
            judgment_submit(assignment=assignment, answers={"overall": wrong})
        else:
            judgment_submit(assignment=assignment, answers={"overall": assignment.presented[0]})
    assert Membership.objects.get(user=user).gate_state == Membership.Gate.BLOCKED
