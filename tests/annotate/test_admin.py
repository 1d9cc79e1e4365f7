"""The Django admin's membership form: adding a member there works like the services do."""

import pytest

from annotate.models import Membership
from annotate.services.campaigns import membership_set
from tests.factories import CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/annotate/membership/add/"


def _form(campaign, user, **extra) -> dict:
    return {
        "user": user.pk,
        "campaign": campaign.pk,
        "role": Membership.Role.ANNOTATOR,
        "gate_state": Membership.Gate.ACTIVE,
        "gate_reason": "",
        **extra,
    }


def test_adding_a_member_in_the_admin_draws_a_rater_key(client):
    campaign = CampaignFactory()
    people = [UserFactory(), UserFactory()]
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    for person in people:
        response = client.post(ADD, _form(campaign, person, gate_reason="added by hand"))
        assert response.status_code == 302, response.content.decode()[:2000]

    memberships = list(Membership.objects.filter(campaign=campaign).order_by("id"))
    assert [m.user for m in memberships] == people
    keys = {m.rater_key for m in memberships}
    assert len(keys) == 2 and all(0 <= key < 2**53 for key in keys)
    assert memberships[0].gate_state == Membership.Gate.ACTIVE
    assert memberships[0].gate_reason == "added by hand"
    assert memberships[0].gate_changed_at is not None


def test_adding_the_same_member_twice_is_a_form_error_not_a_500(client):
    campaign = CampaignFactory()
    person = UserFactory()
    membership_set(campaign=campaign, user=person, role=Membership.Role.ANNOTATOR)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.post(ADD, _form(campaign, person, role=Membership.Role.ADMIN))

    assert response.status_code == 200
    assert b"already exists" in response.content
    assert Membership.objects.get(campaign=campaign, user=person).role == "annotator"


def test_changing_a_member_in_the_admin_keeps_the_rater_key(client):
    campaign = CampaignFactory()
    person = UserFactory()
    membership = membership_set(campaign=campaign, user=person, role=Membership.Role.ANNOTATOR)
    key = membership.rater_key
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.post(
        f"/admin/annotate/membership/{membership.pk}/change/",
        _form(campaign, person, role=Membership.Role.RESEARCHER),
    )

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Membership.Role.RESEARCHER
    assert membership.rater_key == key


def test_the_gold_action_tops_up_to_the_campaigns_share_and_no_further(client):
    from annotate.models import Comparison
    from tests.factories import campaign_with_comparisons

    campaign = campaign_with_comparisons(prompts=8)  # 8 regular: a quarter is 2
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    form = {"action": "build_gold", "_selected_action": [campaign.pk]}

    for _ in range(2):
        assert client.post("/admin/annotate/campaign/", form).status_code == 302

    assert Comparison.objects.filter(campaign=campaign, role="gold").count() == 2
