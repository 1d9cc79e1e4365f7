"""Blocking and unblocking raters from the dashboard: POST forms, CSRF, admins only."""

import pytest
from django.test import Client
from django.urls import reverse

from annotate.models import Membership
from annotate.quality.models import GateEvent
from annotate.services.campaigns import membership_set
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting():
    campaign = campaign_with_comparisons(prompts=2)
    rater = annotator(campaign)
    admin = UserFactory()
    membership_set(campaign=campaign, user=admin, role=Membership.Role.ADMIN)
    url = reverse("frontend:rater-gate", args=[campaign.pk, rater.pk])
    return campaign, rater, admin, url


def _state(rater) -> str:
    return Membership.objects.get(user=rater).gate_state


def test_an_admin_blocks_and_unblocks_a_rater_with_a_reason(client, setting):
    campaign, rater, admin, url = setting
    client.force_login(admin)
    response = client.post(url, {"action": "block", "reason": "Clicks left every time."})
    assert response.status_code == 302
    assert _state(rater) == "blocked"
    event = GateEvent.objects.get(annotator=rater)
    assert (event.to_state, event.reason, event.by_id) == (
        "blocked",
        "Clicks left every time.",
        admin.pk,
    )
    client.post(url, {"action": "unblock", "reason": "Talked it through."})
    assert _state(rater) == "active"
    page = client.get(reverse("frontend:dashboard", args=[campaign.pk]))
    assert rater.username.encode() in page.content
    assert b"is now active" in page.content


def test_a_block_without_a_reason_changes_nothing(client, setting):
    _, rater, admin, url = setting
    client.force_login(admin)
    client.post(url, {"action": "block", "reason": "  "})
    assert _state(rater) == "active"
    assert not GateEvent.objects.exists()


def test_the_gate_form_needs_the_csrf_token(setting):
    _, rater, admin, url = setting
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    response = client.post(url, {"action": "block", "reason": "No token here."})
    assert response.status_code == 403
    assert _state(rater) == "active"


@pytest.mark.parametrize("role", [Membership.Role.RESEARCHER, Membership.Role.ANNOTATOR])
def test_only_campaign_admins_may_change_a_gate(client, setting, role):
    campaign, rater, _, url = setting
    user = UserFactory()
    membership_set(campaign=campaign, user=user, role=role)
    client.force_login(user)
    assert client.post(url, {"action": "block", "reason": "Not mine to do."}).status_code == 403
    assert _state(rater) == "active"


def test_outsiders_get_404_and_anonymous_visitors_a_login_redirect(client, setting):
    _, rater, _, url = setting
    assert client.post(url, {"action": "block", "reason": "x" * 5}).status_code == 302
    client.force_login(UserFactory())
    assert client.post(url, {"action": "block", "reason": "x" * 5}).status_code == 404
    assert _state(rater) == "active"


def test_the_gate_endpoint_refuses_get_and_unknown_raters(client, setting):
    campaign, _, admin, url = setting
    client.force_login(admin)
    assert client.get(url).status_code == 405
    missing = reverse("frontend:rater-gate", args=[campaign.pk, admin.pk])  # not an annotator
    assert client.post(missing, {"action": "block", "reason": "Nobody."}).status_code == 404
