"""GET and POST /api/campaigns/: which view of each campaign a user gets, and who may create."""

import pytest
from django.contrib.auth.models import Group

from annotate.access import MAY_NOT_CREATE_CAMPAIGNS
from annotate.apis import ANNOTATOR_CAMPAIGN_FIELDS
from annotate.models import Campaign, Membership
from annotate.services.campaigns import membership_set
from tests.factories import CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db


def _listed(api_client, user) -> dict[str, dict]:
    api_client.force_authenticate(user)
    response = api_client.get("/api/campaigns/")
    assert response.status_code == 200
    return {row["slug"]: row for row in response.json()}


def test_annotators_get_the_annotator_view_and_readers_the_full_one(api_client):
    user = UserFactory()
    judged, read = CampaignFactory(slug="judged"), CampaignFactory(slug="read")
    CampaignFactory(slug="not-mine")
    membership_set(campaign=judged, user=user, role=Membership.Role.ANNOTATOR)
    membership_set(campaign=read, user=user, role=Membership.Role.RESEARCHER)

    listed = _listed(api_client, user)

    assert set(listed) == {"judged", "read"}
    assert set(listed["judged"]) == set(ANNOTATOR_CAMPAIGN_FIELDS)
    assert "qc_policy" in listed["read"] and "gold_rate" in listed["read"]


def test_site_admins_get_the_full_view_even_where_they_annotate(api_client):
    admin = UserFactory(is_superuser=True)
    campaign = CampaignFactory(slug="both")
    membership_set(campaign=campaign, user=admin, role=Membership.Role.ANNOTATOR)

    assert "qc_policy" in _listed(api_client, admin)["both"]


def test_the_list_is_newest_first_in_a_fixed_number_of_queries(
    api_client, django_assert_num_queries
):
    user = UserFactory()
    for number in range(6):
        role = Membership.Role.ANNOTATOR if number % 2 else Membership.Role.RESEARCHER
        membership_set(campaign=CampaignFactory(slug=f"c{number}"), user=user, role=role)
    api_client.force_authenticate(user)

    # The researchers group, then the campaigns with the annotator flag.
    with django_assert_num_queries(2):
        rows = api_client.get("/api/campaigns/").json()

    assert [row["slug"] for row in rows] == [f"c{number}" for number in reversed(range(6))]


@pytest.mark.parametrize("body", [{}, {"slug": "x" * 500}, "not json"])
def test_people_who_may_not_create_get_403_whatever_they_send(api_client, body):
    api_client.force_authenticate(UserFactory())
    response = api_client.post("/api/campaigns/", body, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": MAY_NOT_CREATE_CAMPAIGNS, "code": "permission_denied"}


def test_campaign_admins_create_and_become_its_admin(api_client):
    user = UserFactory()
    user.groups.add(Group.objects.get_or_create(name="campaign-admins")[0])
    api_client.force_authenticate(user)
    response = api_client.post(
        "/api/campaigns/", {"slug": "fresh", "title": "Fresh", "kind": "pairwise"}, format="json"
    )
    assert response.status_code == 201
    assert Membership.objects.get(user=user, campaign_id=response.json()["id"]).role == "admin"


def _campaign_admin(api_client):
    user = UserFactory()
    user.groups.add(Group.objects.get_or_create(name="campaign-admins")[0])
    api_client.force_authenticate(user)


def test_active_sampling_is_off_unless_asked_for_and_on_when_asked(api_client):
    _campaign_admin(api_client)
    plain = api_client.post("/api/campaigns/", {"slug": "plain", "title": "Plain"}, format="json")
    board = api_client.post(
        "/api/campaigns/",
        {"slug": "board", "title": "Board", "active_sampling": True},
        format="json",
    )
    assert (plain.status_code, board.status_code) == (201, 201)
    assert plain.json()["active_sampling"] is False and board.json()["active_sampling"] is True
    assert Campaign.objects.get(slug="board").active_sampling is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"active_sampling": "sometimes"}, "active_sampling"),
        ({"active_sampling": None}, "active_sampling"),
        ({"active_sampling": True, "kind": "ranking", "k": 4}, "active_sampling"),
    ],
)
def test_a_bad_active_sampling_setting_is_refused_and_creates_nothing(api_client, body, field):
    _campaign_admin(api_client)
    response = api_client.post(
        "/api/campaigns/", {"slug": "refused", "title": "Refused", **body}, format="json"
    )
    assert response.status_code == 400
    assert field in str(response.json())
    assert not Campaign.objects.filter(slug="refused").exists()
