"""The new-campaign and campaign settings pages: who may use them, what they write, and how
they answer malformed, oversized and duplicate input."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from annotate.criteria import PRESET_CRITERIA
from annotate.models import ACTIVE_SAMPLING_PAIRWISE_ONLY, Campaign, Membership
from annotate.services.campaigns import (
    BAD_TRANSITION,
    NOTHING_TO_JUDGE,
    ONLY_DRAFT_EDITABLE,
    SLUG_TAKEN,
    membership_set,
)
from frontend.campaign_forms import (
    CONFIDENCE_PERCENT,
    CRITERION_INCOMPLETE,
    MAX_BELOW_MIN,
    NO_CRITERION,
    RANKING_K,
)
from tests.factories import CampaignFactory, UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db

NEW = reverse("frontend:campaign-new")
PREVIEW = reverse("frontend:instructions-preview")


def settings_url(campaign) -> str:
    return reverse("frontend:campaign-settings", args=[campaign.pk])


def status_url(campaign) -> str:
    return reverse("frontend:campaign-status", args=[campaign.pk])


def form_data(**overrides) -> dict:
    """A filled-in form as the page posts it: the presets, overall ticked, 3 blank rows."""
    data = {
        "title": "Sharper portraits",
        "slug": "",
        "instructions": "Look at **faces** first.",
        "kind": "pairwise",
        "k": "4",
        "overlap": "3",
        "lease_minutes": "10",
        "qualification_size": "15",
        "gold_percent": "2",
        "repeat_percent": "5",
        "criteria-TOTAL_FORMS": "8",
        "criteria-INITIAL_FORMS": "8",
        "criteria-MIN_NUM_FORMS": "0",
        "criteria-MAX_NUM_FORMS": "13",
    }
    for index, preset in enumerate(PRESET_CRITERIA):
        data[f"criteria-{index}-key"] = preset["key"]
        data[f"criteria-{index}-question"] = preset["question"]
        if preset["allow_tie"]:
            data[f"criteria-{index}-allow_tie"] = "on"
    data["criteria-0-include"] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def campaign_admin(campaign):
    user = UserFactory()
    membership_set(campaign=campaign, user=user, role=Membership.Role.ADMIN)
    return user


def researcher(campaign):
    user = UserFactory()
    membership_set(campaign=campaign, user=user, role=Membership.Role.RESEARCHER)
    return user


# Who may create ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", [NEW, PREVIEW])
def test_anonymous_visitors_are_sent_to_log_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("frontend:login"))


def test_annotators_and_researchers_may_not_create_campaigns(client):
    campaign = campaign_with_comparisons(prompts=1)
    for user in (annotator(campaign), researcher(campaign)):
        client.force_login(user)
        assert client.get(NEW).status_code == 403
        assert client.post(NEW, form_data()).status_code == 403
    assert Campaign.objects.count() == 1


@pytest.mark.parametrize("who", ["staff", "superuser", "campaign-admins"])
def test_staff_superusers_and_the_campaign_admins_group_may_create(client, who):
    user = UserFactory(is_staff=who == "staff", is_superuser=who == "superuser")
    if who == "campaign-admins":
        user.groups.add(Group.objects.create(name="campaign-admins"))
    client.force_login(user)
    page = client.get(NEW)
    assert page.status_code == 200
    html = page.content.decode()
    for preset in PRESET_CRITERIA:
        assert preset["question"] in html
    assert "default 3" in html and "default 10" in html and "default 2%" in html


def test_creating_a_campaign_writes_a_draft_and_makes_the_creator_its_admin(client):
    user = UserFactory(is_staff=True)
    client.force_login(user)
    data = form_data(
        **{
            "criteria-2-include": "on",  # prompt_alignment
            "criteria-2-allow_both_bad": "on",
            "criteria-5-include": "on",
            "criteria-5-key": "hands",
            "criteria-5-question": "Which image draws hands better?",
        }
    )
    response = client.post(NEW, data)

    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert response["Location"] == settings_url(campaign)
    assert campaign.slug == "sharper-portraits"
    assert campaign.status == Campaign.Status.DRAFT
    assert (campaign.kind, campaign.k, campaign.overlap) == ("pairwise", 2, 3)
    assert campaign.lease_seconds == 600
    assert campaign.gold_rate == pytest.approx(0.02)
    assert campaign.repeat_rate == pytest.approx(0.05)
    assert [c["key"] for c in campaign.criteria] == ["overall", "prompt_alignment", "hands"]
    assert campaign.criteria[1]["allow_both_bad"] is True
    assert campaign.criteria[2] == {
        "key": "hands",
        "question": "Which image draws hands better?",
        "allow_tie": False,
        "allow_both_bad": False,
    }
    assert Membership.objects.get(campaign=campaign, user=user).role == "admin"


def test_a_ranking_campaign_takes_its_k_and_needs_one(client):
    client.force_login(UserFactory(is_staff=True))
    missing = client.post(NEW, form_data(kind="ranking", k=""))
    assert missing.status_code == 400
    assert RANKING_K in missing.content.decode()
    assert client.post(NEW, form_data(kind="ranking", k="5")).status_code == 302
    assert Campaign.objects.get().k == 5


@pytest.mark.parametrize(
    ("overrides", "sentence"),
    [
        ({"overlap": "abc"}, "Enter a whole number."),
        ({"overlap": "0"}, "greater than or equal to 1"),
        ({"gold_percent": "50"}, "less than or equal to 20"),
        ({"title": "x" * 201}, "at most 200 characters"),
        ({"title": ""}, "This field is required."),
        ({"instructions": "x" * 20_001}, "at most 20000 characters"),
        ({"kind": "tournament"}, "Select a valid choice."),
        ({"criteria-0-include": None}, NO_CRITERION),
        ({"criteria-5-include": "on"}, CRITERION_INCOMPLETE),
        (
            {"criteria-5-include": "on", "criteria-5-key": "Bad Key!", "criteria-5-question": "?"},
            "Lowercase letters",
        ),
        (
            {"criteria-5-include": "on", "criteria-5-key": "overall", "criteria-5-question": "?"},
            "is used twice",
        ),
        ({"criteria-TOTAL_FORMS": "5000"}, "Please submit at most 13 forms."),
        ({"slug": "not a slug!"}, "Enter a valid “slug”"),
    ],
)
def test_malformed_and_oversized_input_is_refused_with_a_sentence(client, overrides, sentence):
    client.force_login(UserFactory(is_staff=True))
    response = client.post(NEW, form_data(**overrides))
    assert response.status_code == 400
    assert sentence in response.content.decode()
    assert not Campaign.objects.exists()


def test_a_taken_short_name_is_refused_and_a_repeated_title_gets_a_free_one(client):
    CampaignFactory(slug="mine")
    client.force_login(UserFactory(is_staff=True))
    taken = client.post(NEW, form_data(slug="mine"))
    assert taken.status_code == 400
    assert SLUG_TAKEN.format(slug="mine") in taken.content.decode().replace("&#x27;", "'")
    assert client.post(NEW, form_data()).status_code == 302
    assert client.post(NEW, form_data()).status_code == 302
    slugs = set(Campaign.objects.values_list("slug", flat=True))
    assert slugs == {"mine", "sharper-portraits", "sharper-portraits-2"}


# Settings ---------------------------------------------------------------------------------


def test_settings_are_for_the_campaign_admins_only(client):
    campaign = CampaignFactory(status=Campaign.Status.DRAFT)
    url = settings_url(campaign)
    assert client.get(url).status_code == 302
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    for user in (annotator(campaign), researcher(campaign)):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert client.post(url, form_data()).status_code == 403
    client.force_login(UserFactory(is_superuser=True))
    assert client.get(url).status_code == 200
    client.force_login(campaign_admin(campaign))
    assert client.get(url).status_code == 200


def test_a_draft_can_be_edited(client):
    campaign = CampaignFactory(status=Campaign.Status.DRAFT)
    client.force_login(campaign_admin(campaign))
    response = client.post(settings_url(campaign), form_data(title="Renamed", overlap="5"))
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.title, campaign.overlap) == ("Renamed", 5)
    page = client.get(settings_url(campaign)).content.decode()
    assert 'value="Renamed"' in page


def test_an_open_campaign_cannot_be_edited(client):
    campaign = campaign_with_comparisons(prompts=1, title="Fixed")
    client.force_login(campaign_admin(campaign))
    page = client.get(settings_url(campaign)).content.decode()
    assert "Only a draft campaign can be edited" in page
    response = client.post(settings_url(campaign), form_data(title="Changed"))
    assert response.status_code == 409
    assert ONLY_DRAFT_EDITABLE.format(status="active") in response.content.decode().replace(
        "&#x27;", "'"
    )
    campaign.refresh_from_db()
    assert campaign.title == "Fixed"


def test_the_settings_page_warns_when_the_campaign_is_too_small(client):
    campaign = campaign_with_comparisons(prompts=4, status=Campaign.Status.DRAFT)
    campaign.qualification_size = 15
    campaign.save()
    client.force_login(campaign_admin(campaign))
    html = client.get(settings_url(campaign)).content.decode()
    assert "With 4 comparisons the campaign gets 1 gold item(s)" in html
    assert "has 0 annotator(s)" in html


# Status -----------------------------------------------------------------------------------


def _status(client, campaign, action):
    response = client.post(status_url(campaign), {"action": action}, follow=True)
    campaign.refresh_from_db()
    return response.content.decode().replace("&#x27;", "'")


def test_open_pause_and_close_follow_the_allowed_changes(client):
    campaign = campaign_with_comparisons(prompts=2, status=Campaign.Status.DRAFT)
    client.force_login(campaign_admin(campaign))
    _status(client, campaign, "open")
    assert campaign.status == Campaign.Status.ACTIVE
    assert "Pause" in _status(client, campaign, "pause")
    assert campaign.status == Campaign.Status.PAUSED
    _status(client, campaign, "open")
    assert campaign.status == Campaign.Status.ACTIVE
    _status(client, campaign, "close")
    assert campaign.status == Campaign.Status.CLOSED
    page = _status(client, campaign, "open")
    assert BAD_TRANSITION.format(status="closed", done="opened") in page
    assert campaign.status == Campaign.Status.CLOSED


def test_a_campaign_with_nothing_to_judge_cannot_open(client):
    campaign = CampaignFactory(status=Campaign.Status.DRAFT)
    client.force_login(campaign_admin(campaign))
    assert NOTHING_TO_JUDGE in _status(client, campaign, "open")
    assert campaign.status == Campaign.Status.DRAFT
    assert "Unknown status change" in _status(client, campaign, "explode")


def test_status_changes_need_a_post_by_a_campaign_admin(client):
    campaign = campaign_with_comparisons(prompts=1)
    url = status_url(campaign)
    assert client.post(url, {"action": "close"}).status_code == 302  # to log in
    client.force_login(annotator(campaign))
    assert client.post(url, {"action": "close"}).status_code == 403
    client.force_login(researcher(campaign))
    assert client.post(url, {"action": "close"}).status_code == 403
    client.force_login(campaign_admin(campaign))
    assert client.get(url).status_code == 405
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE


def test_status_changes_need_the_csrf_token(client):
    from django.test import Client

    campaign = campaign_with_comparisons(prompts=1)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(campaign_admin(campaign))
    assert strict.post(status_url(campaign), {"action": "close"}).status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE


# Instructions preview ---------------------------------------------------------------------


def test_the_preview_renders_markdown_safely_for_campaign_writers(client):
    client.force_login(UserFactory(is_staff=True))
    response = client.post(
        PREVIEW, {"instructions": "Look at **faces**.\n\n<script>alert(1)</script>"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>faces</strong>" in html
    assert "<script>" not in html


def test_the_preview_refuses_annotators_and_oversized_text(client):
    campaign = campaign_with_comparisons(prompts=1)
    client.force_login(annotator(campaign))
    assert client.post(PREVIEW, {"instructions": "hi"}).status_code == 403
    client.force_login(campaign_admin(campaign))
    assert client.post(PREVIEW, {"instructions": "hi"}).status_code == 200
    too_long = client.post(PREVIEW, {"instructions": "x" * 20_001})
    assert too_long.status_code == 413
    assert b"limited to 20000 characters" in too_long.content


# Links ------------------------------------------------------------------------------------


def test_home_offers_a_new_campaign_only_to_those_who_may_create_one(client):
    client.force_login(UserFactory())
    assert NEW not in client.get(reverse("frontend:home")).content.decode()
    client.force_login(UserFactory(is_staff=True))
    assert f'href="{NEW}"' in client.get(reverse("frontend:home")).content.decode()


def test_home_and_dashboard_link_campaign_admins_to_the_settings(client):
    campaign = campaign_with_comparisons(prompts=1)
    client.force_login(campaign_admin(campaign))
    link = f'href="{settings_url(campaign)}"'
    assert link in client.get(reverse("frontend:home")).content.decode()
    assert link in client.get(reverse("frontend:dashboard", args=[campaign.pk])).content.decode()
    client.force_login(researcher(campaign))
    assert link not in client.get(reverse("frontend:home")).content.decode()
    assert (
        link not in client.get(reverse("frontend:dashboard", args=[campaign.pk])).content.decode()
    )


# Dynamic overlap ---------------------------------------------------------------------------


def test_dynamic_overlap_is_off_unless_ticked_and_its_settings_are_saved(client):
    client.force_login(UserFactory(is_superuser=True))
    assert client.post(NEW, form_data(slug="plain")).status_code == 302
    plain = Campaign.objects.get(slug="plain")
    assert (plain.dynamic_overlap, plain.min_raters, plain.max_raters) == (False, 2, 5)
    dynamic = form_data(slug="dyn", dynamic_overlap="on", min_raters="3", max_raters="7")
    assert client.post(NEW, {**dynamic, "confidence_percent": "90"}).status_code == 302
    saved = Campaign.objects.get(slug="dyn")
    assert (saved.dynamic_overlap, saved.min_raters, saved.max_raters) == (True, 3, 7)
    assert saved.confidence == pytest.approx(0.9)
    page = client.get(settings_url(saved)).content.decode()
    assert 'name="dynamic_overlap"' in page and 'value="90"' in page


@pytest.mark.parametrize(
    ("overrides", "sentence"),
    [
        ({"min_raters": "4", "max_raters": "3"}, MAX_BELOW_MIN),
        ({"confidence_percent": "50"}, CONFIDENCE_PERCENT),
        ({"confidence_percent": "100"}, CONFIDENCE_PERCENT),
    ],
)
def test_dynamic_overlap_settings_out_of_range_are_refused(client, overrides, sentence):
    client.force_login(UserFactory(is_superuser=True))
    response = client.post(NEW, form_data(dynamic_overlap="on", **overrides))
    assert response.status_code == 400
    assert sentence in response.content.decode()
    assert not Campaign.objects.exists()


def test_active_sampling_is_a_setting_off_by_default_and_refused_for_ranking(client):
    client.force_login(UserFactory(is_staff=True))
    assert 'name="active_sampling"' in client.get(NEW).content.decode()
    client.post(NEW, form_data(title="Plain board"))
    client.post(NEW, form_data(title="Active board", active_sampling="on"))
    assert Campaign.objects.get(title="Plain board").active_sampling is False
    assert Campaign.objects.get(title="Active board").active_sampling is True

    refused = client.post(NEW, form_data(title="Ranked", kind="ranking", active_sampling="on"))
    assert refused.status_code == 400
    assert ACTIVE_SAMPLING_PAIRWISE_ONLY in refused.content.decode()
    assert not Campaign.objects.filter(title="Ranked").exists()
