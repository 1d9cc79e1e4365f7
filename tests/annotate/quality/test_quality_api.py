import pytest
from django.core.management import call_command

from annotate.models import Membership
from annotate.quality.models import GateEvent
from annotate.services.campaigns import membership_set
from tests.annotate.quality.crowd import prefers, run_crowd
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _quality_url(campaign) -> str:
    return f"/api/campaigns/{campaign.pk}/quality/"


def _gate_url(campaign, user) -> str:
    return f"/api/campaigns/{campaign.pk}/raters/{user.pk}/gate/"


def _member(campaign, role: str):
    user = UserFactory()
    membership_set(campaign=campaign, user=user, role=role)
    return user


@pytest.fixture
def judged_campaign():
    campaign = campaign_with_comparisons(prompts=4, overlap=2)
    raters = [annotator(campaign) for _ in range(2)]
    run_crowd(campaign, [(user, prefers("model-a")) for user in raters])
    return campaign


@pytest.mark.parametrize("role", ["admin", "researcher"])
def test_admins_and_researchers_read_the_quality_report(api_client, judged_campaign, role):
    api_client.force_authenticate(_member(judged_campaign, role))
    response = api_client.get(_quality_url(judged_campaign))
    assert response.status_code == 200
    body = response.json()
    assert body["agreement"][0]["criterion"] == "overall"
    assert len(body["raters"]) == 2 and body["raters"][0]["judgments"] == 4
    assert body["leaderboard"][0]["model"] == "model-a"
    assert set(body) == {"agreement", "raters", "gate_events", "leaderboard", "alerts", "policy"}


def test_the_report_is_refused_to_anonymous_annotators_and_strangers(api_client, judged_campaign):
    assert api_client.get(_quality_url(judged_campaign)).status_code == 401
    api_client.force_authenticate(Membership.objects.filter(campaign=judged_campaign).first().user)
    assert api_client.get(_quality_url(judged_campaign)).status_code == 403
    api_client.force_authenticate(UserFactory())
    response = api_client.get(_quality_url(judged_campaign))
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert api_client.get("/api/campaigns/999999/quality/").status_code == 404


def test_an_admin_blocks_and_unblocks_a_rater_with_a_reason(api_client, judged_campaign):
    rater = Membership.objects.filter(campaign=judged_campaign).first().user
    api_client.force_authenticate(_member(judged_campaign, "admin"))
    response = api_client.post(
        _gate_url(judged_campaign, rater),
        {"state": "blocked", "reason": "copy-paste answers"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["to_state"] == "blocked" and response.json()["rule"] == "admin"
    assert Membership.objects.get(user=rater).gate_state == "blocked"
    response = api_client.post(
        _gate_url(judged_campaign, rater),
        {"state": "active", "reason": "appeal upheld"},
        format="json",
    )
    assert response.status_code == 200
    assert GateEvent.objects.filter(annotator=rater).count() == 2
    report = api_client.get(_quality_url(judged_campaign)).json()
    assert [e["to_state"] for e in report["gate_events"]] == ["active", "blocked"]


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"state": "blocked"}, 400),
        ({"state": "blocked", "reason": ""}, 400),
        ({"state": "nonsense", "reason": "x"}, 400),
        ({"state": "blocked", "reason": "x" * 501}, 400),
        ("not an object", 400),
    ],
)
def test_a_malformed_override_is_refused(api_client, judged_campaign, payload, status):
    rater = Membership.objects.filter(campaign=judged_campaign).first().user
    api_client.force_authenticate(_member(judged_campaign, "admin"))
    response = api_client.post(_gate_url(judged_campaign, rater), payload, format="json")
    assert response.status_code == status
    assert not GateEvent.objects.exists()


def test_overrides_are_for_campaign_admins_only(api_client, judged_campaign):
    rater = Membership.objects.filter(campaign=judged_campaign).first().user
    url = _gate_url(judged_campaign, rater)
    body = {"state": "blocked", "reason": "x"}
    assert api_client.post(url, body, format="json").status_code == 401
    api_client.force_authenticate(_member(judged_campaign, "researcher"))
    assert api_client.post(url, body, format="json").status_code == 403
    api_client.force_authenticate(rater)
    assert api_client.post(url, body, format="json").status_code == 403
    api_client.force_authenticate(_member(judged_campaign, "admin"))
    assert api_client.get(url).status_code == 405
    stranger = UserFactory()
    assert (
        api_client.post(_gate_url(judged_campaign, stranger), body, format="json").status_code
        == 404
    )
    assert not GateEvent.objects.exists()


def test_qc_report_prints_the_tables(judged_campaign, capsys):
    call_command("qc_recompute", campaign=judged_campaign.slug)
    call_command("qc_report", campaign=judged_campaign.slug)
    out = capsys.readouterr().out
    assert "Agreement (Krippendorff's alpha" in out
    assert "model-a" in out and "Raters" in out and "too_few_units" in out


def test_qc_report_names_an_unknown_campaign():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No campaign with slug 'nope'"):
        call_command("qc_report", campaign="nope")
