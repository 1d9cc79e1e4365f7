"""The membership services the API and the members page share."""

import pytest

from annotate.models import Membership
from annotate.services.campaigns import membership_set
from annotate.services.members import LAST_ADMIN, members_set
from pickwise.errors import ApplicationError
from tests.factories import CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db


def roles(campaign) -> dict[str, str]:
    return dict(Membership.objects.filter(campaign=campaign).values_list("user__username", "role"))


def test_a_list_can_hand_the_admin_role_over_in_any_order():
    campaign = CampaignFactory()
    old = UserFactory(username="old")
    UserFactory(username="new")
    membership_set(campaign=campaign, user=old, role=Membership.Role.ADMIN)
    result = members_set(
        campaign=campaign,
        members=[{"username": "old", "role": "annotator"}, {"username": "new", "role": "admin"}],
    )
    assert [m.user.username for m in result] == ["old", "new"]
    assert roles(campaign) == {"old": "annotator", "new": "admin"}


def test_the_last_admin_is_kept_and_nothing_else_changes(api_client):
    campaign = CampaignFactory()
    boss = UserFactory(username="boss")
    UserFactory(username="someone")
    membership_set(campaign=campaign, user=boss, role=Membership.Role.ADMIN)
    api_client.force_authenticate(boss)
    response = api_client.post(
        f"/api/campaigns/{campaign.pk}/members/",
        {
            "members": [
                {"username": "someone", "role": "annotator"},
                {"username": "boss", "role": "researcher"},
            ]
        },
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["detail"] == LAST_ADMIN.format(username="boss")
    assert roles(campaign) == {"boss": "admin"}


def test_unknown_users_are_named_and_nobody_is_added():
    campaign = CampaignFactory()
    UserFactory(username="anna")
    with pytest.raises(ApplicationError) as error:
        members_set(
            campaign=campaign,
            members=[
                {"username": "anna", "role": "annotator"},
                {"username": "ghost", "role": "annotator"},
            ],
        )
    assert error.value.message == "Unknown users: ghost."
    assert roles(campaign) == {}
