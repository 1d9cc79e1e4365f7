from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.models import Assignment, Comparison, Membership
from annotate.services.assignments import (
    assignment_next,
    assignment_skip,
    assignments_expire_overdue,
)
from annotate.services.judgments import judgment_submit
from pickwise.errors import ApplicationError
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _answer_left(assignment):
    return {"overall": assignment.presented[0]}


def test_it_never_hands_a_comparison_past_its_overlap():
    campaign = campaign_with_comparisons(prompts=1, overlap=2)  # one comparison
    users = [annotator(campaign) for _ in range(3)]
    first = assignment_next(campaign=campaign, annotator=users[0])
    second = assignment_next(campaign=campaign, annotator=users[1])
    assert first.comparison_id == second.comparison_id
    assert assignment_next(campaign=campaign, annotator=users[2]) is None
    comparison = Comparison.objects.get()
    assert (comparison.done, comparison.in_flight, comparison.status) == (0, 2, "full")


def test_it_reuses_the_open_assignment_on_reload():
    campaign = campaign_with_comparisons(prompts=2)
    user = annotator(campaign)
    first = assignment_next(campaign=campaign, annotator=user)
    again = assignment_next(campaign=campaign, annotator=user)
    assert again.pk == first.pk
    ahead = assignment_next(campaign=campaign, annotator=user, exclude_ids=(first.pk,))
    assert ahead.pk != first.pk and ahead.comparison_id != first.comparison_id


def test_it_refuses_a_third_open_assignment():
    campaign = campaign_with_comparisons(prompts=4)
    user = annotator(campaign)
    a = assignment_next(campaign=campaign, annotator=user)
    b = assignment_next(campaign=campaign, annotator=user, exclude_ids=(a.pk,))
    with pytest.raises(ApplicationError) as error:
        assignment_next(campaign=campaign, annotator=user, exclude_ids=(a.pk, b.pk))
    assert error.value.code == "too_many_open"


def test_it_never_offers_an_annotator_the_same_comparison_twice():
    campaign = campaign_with_comparisons(prompts=3, overlap=3)
    user = annotator(campaign)
    seen = []
    while (assignment := assignment_next(campaign=campaign, annotator=user)) is not None:
        seen.append(assignment.comparison_id)
        judgment_submit(assignment=assignment, answers=_answer_left(assignment))
    assert len(seen) == 3 and len(set(seen)) == 3


def test_a_skipped_comparison_goes_back_to_others_but_not_to_the_skipper():
    campaign = campaign_with_comparisons(prompts=1, overlap=1)
    skipper, other = annotator(campaign), annotator(campaign)
    assignment = assignment_next(campaign=campaign, annotator=skipper)
    assignment_skip(assignment=assignment)
    assert assignment_next(campaign=campaign, annotator=skipper) is None
    assert assignment_next(campaign=campaign, annotator=other) is not None


def test_expired_leases_give_their_slot_back():
    campaign = campaign_with_comparisons(prompts=1, overlap=1)
    slow, other = annotator(campaign), annotator(campaign)
    assignment = assignment_next(campaign=campaign, annotator=slow)
    assert assignment_next(campaign=campaign, annotator=other) is None
    later = timezone.now() + timedelta(seconds=campaign.lease_seconds + 1)
    assert assignments_expire_overdue(now=later) == 1
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.EXPIRED
    assert assignment_next(campaign=campaign, annotator=other, now=later) is not None


def test_a_blocked_annotator_gets_403_with_the_reason():
    campaign = campaign_with_comparisons(prompts=1)
    user = annotator(campaign)
    Membership.objects.filter(user=user).update(gate_state="blocked", gate_reason="always left")
    with pytest.raises(ApplicationError) as error:
        assignment_next(campaign=campaign, annotator=user)
    assert error.value.status == 403 and "always left" in error.value.message


def test_presented_order_is_randomised_per_assignment():
    campaign = campaign_with_comparisons(prompts=1, overlap=60)
    orders = set()
    for _ in range(30):
        assignment = assignment_next(campaign=campaign, annotator=annotator(campaign))
        orders.add(tuple(assignment.presented))
    assert len(orders) == 2


def test_next_expires_overdue_leases_itself_when_nothing_else_is_open():
    campaign = campaign_with_comparisons(prompts=1, overlap=1)
    slow, other = annotator(campaign), annotator(campaign)
    assignment_next(campaign=campaign, annotator=slow)
    later = timezone.now() + timedelta(seconds=campaign.lease_seconds + 1)
    taken = assignment_next(campaign=campaign, annotator=other, now=later)
    assert taken is not None
    assert Assignment.objects.get(annotator=slow).state == Assignment.State.EXPIRED
    comparison = Comparison.objects.get()
    assert (comparison.in_flight, comparison.status) == (1, "full")
