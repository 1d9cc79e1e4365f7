"""The home page: one selector, the same figures as the per-campaign selectors, and a query
count that does not grow with the number of campaigns."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from annotate.models import Membership
from annotate.selectors import annotator_progress, campaign_progress
from annotate.services.assignments import assignment_next
from annotate.services.campaigns import membership_set
from annotate.services.judgments import judgment_submit
from tests.factories import UserFactory, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _judge(campaign, user, count: int) -> None:
    for _ in range(count):
        assignment = assignment_next(campaign=campaign, annotator=user)
        judgment_submit(assignment=assignment, answers={"overall": "tie"}, duration_ms=1500)


def _campaigns_of(user, *, annotating: int, reading: int) -> list:
    campaigns = []
    for number in range(annotating + reading):
        campaign = campaign_with_comparisons(
            prompts=3, title=f"Campaign {number}", qualification_size=0, gold_rate=0
        )
        role = Membership.Role.ANNOTATOR if number < annotating else Membership.Role.RESEARCHER
        membership_set(campaign=campaign, user=user, role=role)
        campaigns.append(campaign)
    return campaigns


def _home_queries(client, django_assert_num_queries, user, expected: int):
    client.force_login(user)
    with django_assert_num_queries(expected):
        response = client.get(reverse("frontend:home"))
    assert response.status_code == 200
    return response


# Session, user, groups (site researcher), campaigns, memberships, the annotator's answers,
# judgments wanted, judgments done, and the "New campaign" check.
HOME_QUERIES = 9


def test_the_home_page_query_count_does_not_grow_with_campaigns(client, django_assert_num_queries):
    few = UserFactory()
    _campaigns_of(few, annotating=1, reading=1)
    many = UserFactory()
    _campaigns_of(many, annotating=4, reading=3)

    _home_queries(client, django_assert_num_queries, few, HOME_QUERIES)
    response = _home_queries(client, django_assert_num_queries, many, HOME_QUERIES)

    assert len(response.context["rows"]) == 7


def test_the_home_figures_match_the_campaign_pages(client, django_assert_num_queries):
    user = UserFactory()
    campaigns = _campaigns_of(user, annotating=2, reading=1)
    _judge(campaigns[0], user, 2)
    other = UserFactory()
    membership_set(campaign=campaigns[2], user=other, role=Membership.Role.ANNOTATOR)
    _judge(campaigns[2], other, 3)

    rows = _home_queries(client, django_assert_num_queries, user, HOME_QUERIES).context["rows"]

    by_campaign = {row["campaign"].pk: row for row in rows}
    for campaign in campaigns[:2]:
        mine = annotator_progress(campaign=campaign, user=user)
        row = by_campaign[campaign.pk]
        assert row["role"] == Membership.Role.ANNOTATOR
        assert row["mine"] == {"judged": mine["judged"], "gate_state": mine["gate_state"]}
    assert by_campaign[campaigns[0].pk]["mine"]["judged"] == 2
    progress = campaign_progress(campaign=campaigns[2])
    row = by_campaign[campaigns[2].pk]
    assert row["role"] == Membership.Role.RESEARCHER
    assert row["progress"] == {
        "judgments_done": 3,
        "judgments_wanted": progress["judgments_wanted"],
    }
    assert progress["judgments_done"] == 3
    assert row["percent"] == round(100 * 3 / progress["judgments_wanted"])


def test_site_researchers_read_every_campaign_and_site_admins_administer_it(client):
    campaign = campaign_with_comparisons(prompts=1, title="Everyone's")
    researcher = UserFactory()
    researcher.groups.add(Group.objects.get_or_create(name="researchers")[0])
    client.force_login(researcher)
    [row] = client.get(reverse("frontend:home")).context["rows"]
    assert (row["campaign"], row["role"]) == (campaign, Membership.Role.RESEARCHER)

    client.force_login(UserFactory(is_superuser=True))
    [row] = client.get(reverse("frontend:home")).context["rows"]
    assert row["role"] == Membership.Role.ADMIN
    assert b"Settings, prompts and members" in client.get(reverse("frontend:home")).content
