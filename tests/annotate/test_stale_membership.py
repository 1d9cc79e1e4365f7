"""A task outlives its membership: removed or changed roles get a clean 403, nothing counted."""

import pytest
from django.urls import reverse

from annotate.models import Assignment, Comparison, Judgment, Membership
from annotate.services.assignments import NOT_AN_ANNOTATOR, assignment_next
from annotate.services.campaigns import membership_set
from pickwise.errors import ApplicationError
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _change(campaign, user, change):
    if change == "deleted":
        Membership.objects.filter(campaign=campaign, user=user).delete()
    else:
        membership_set(campaign=campaign, user=user, role=Membership.Role.RESEARCHER)


def _refused(response):
    assert response.status_code == 403, response.content
    assert response.json() == {"detail": NOT_AN_ANNOTATOR, "code": "not_annotator"}


@pytest.mark.parametrize("change", ["deleted", "researcher"])
def test_a_submit_after_the_membership_changed_is_refused_and_not_counted(api_client, change):
    campaign = campaign_with_comparisons(prompts=1)
    user = annotator(campaign)
    assignment = assignment_next(campaign=campaign, annotator=user)
    _change(campaign, user, change)

    api_client.force_authenticate(user)
    response = api_client.post(
        reverse("annotate:submit", args=[assignment.pk]),
        {"answers": {"overall": assignment.presented[0]}},
        format="json",
    )

    _refused(response)
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get().state == Assignment.State.OPEN
    comparison = Comparison.objects.get()
    assert (comparison.done, comparison.in_flight) == (0, 1)


@pytest.mark.parametrize("change", ["deleted", "researcher"])
def test_a_skip_after_the_membership_changed_is_refused(api_client, change):
    campaign = campaign_with_comparisons(prompts=1)
    user = annotator(campaign)
    assignment = assignment_next(campaign=campaign, annotator=user)
    _change(campaign, user, change)

    api_client.force_authenticate(user)
    _refused(api_client.post(reverse("annotate:skip", args=[assignment.pk])))
    assert Assignment.objects.get().state == Assignment.State.OPEN


@pytest.mark.parametrize("change", ["deleted", "researcher"])
def test_next_refuses_a_membership_that_changed_under_it(change):
    # The view checked the role a moment earlier; the service re-reads it under its lock.
    campaign = campaign_with_comparisons(prompts=1)
    user = annotator(campaign)
    _change(campaign, user, change)
    with pytest.raises(ApplicationError) as error:
        assignment_next(campaign=campaign, annotator=user)
    assert (error.value.status, error.value.message) == (403, NOT_AN_ANNOTATOR)
    assert Assignment.objects.count() == 0


def test_a_researcher_asking_for_next_gets_403_not_a_task(api_client):
    campaign = campaign_with_comparisons(prompts=1)
    user = annotator(campaign)
    _change(campaign, user, "researcher")
    api_client.force_authenticate(user)
    response = api_client.post(reverse("annotate:next", args=[campaign.pk]), {}, format="json")
    assert response.status_code == 403
    assert Assignment.objects.count() == 0
