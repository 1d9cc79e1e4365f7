"""The pages' access rules and what each shows, through Django's test client."""

import json

import pytest
from django.db import connection
from django.urls import reverse

from annotate.models import Assignment, Membership
from annotate.services.campaigns import membership_set
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _member(campaign, role):
    user = UserFactory()
    membership_set(campaign=campaign, user=user, role=role)
    return user


def _config(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="annotate-config" type="application/json">') + len(
        '<script id="annotate-config" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


PAGES = ["frontend:campaign", "frontend:annotate", "frontend:dashboard"]


@pytest.mark.parametrize("name", ["frontend:home", *PAGES])
def test_anonymous_visitors_are_sent_to_log_in(client, name):
    campaign = campaign_with_comparisons(prompts=1)
    args = [] if name == "frontend:home" else [campaign.pk]
    url = reverse(name, args=args)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('frontend:login')}?next={url}"


@pytest.mark.parametrize("name", PAGES)
def test_non_members_get_404(client, name):
    campaign = campaign_with_comparisons(prompts=1)
    client.force_login(UserFactory())
    assert client.get(reverse(name, args=[campaign.pk])).status_code == 404


def test_a_missing_campaign_is_404(client):
    client.force_login(UserFactory(is_superuser=True))
    assert client.get(reverse("frontend:dashboard", args=[999999])).status_code == 404


def test_annotators_may_not_open_the_dashboard(client):
    campaign = campaign_with_comparisons(prompts=1)
    client.force_login(annotator(campaign))
    assert client.get(reverse("frontend:dashboard", args=[campaign.pk])).status_code == 403
    assert client.get(reverse("frontend:dashboard-progress", args=[campaign.pk])).status_code == 403


@pytest.mark.parametrize("role", [Membership.Role.ADMIN, Membership.Role.RESEARCHER])
def test_admins_and_researchers_see_the_dashboard_with_progress(client, role):
    campaign = campaign_with_comparisons(prompts=2, overlap=3)
    client.force_login(_member(campaign, role))
    response = client.get(reverse("frontend:dashboard", args=[campaign.pk]))
    assert response.status_code == 200
    assert response.context["progress"]["judgments_wanted"] == 6
    assert b'data-figure="judgments_done">0<' in response.content


def test_researchers_may_not_open_the_annotate_screen(client):
    campaign = campaign_with_comparisons(prompts=1)
    client.force_login(_member(campaign, Membership.Role.RESEARCHER))
    assert client.get(reverse("frontend:annotate", args=[campaign.pk])).status_code == 403


def test_opening_the_annotate_page_reserves_nothing(client):
    # A GET changes no state: prefetching or reloading the page takes no task.
    campaign = campaign_with_comparisons(prompts=2, models=("secret-model-a", "secret-model-b"))
    client.force_login(annotator(campaign))
    url = reverse("frontend:annotate", args=[campaign.pk])
    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200
        assert response.context["state"] == "loading"
        assert "task" not in _config(response)
        assert _config(response)["state"] == "loading"
    assert not Assignment.objects.exists()
    assert b"secret-model" not in response.content


def test_the_page_script_takes_its_task_by_post_without_gold_or_model_names(client):
    campaign = campaign_with_comparisons(prompts=2, models=("secret-model-a", "secret-model-b"))
    user = annotator(campaign)
    client.force_login(user)
    config = _config(client.get(reverse("frontend:annotate", args=[campaign.pk])))
    assert client.get(config["nextUrl"]).status_code == 405
    task = client.post(config["nextUrl"], {}, content_type="application/json").json()
    assignment = Assignment.objects.get(annotator=user)
    assert task["id"] == assignment.pk
    assert [image["uid"] for image in task["images"]] == assignment.presented
    assert b"secret-model" not in json.dumps(task).encode()
    assert b"gold" not in json.dumps(task).encode()


def test_a_blocked_annotator_sees_the_reason_and_no_task(client):
    campaign = campaign_with_comparisons(prompts=1)
    user = annotator(campaign)
    Membership.objects.filter(user=user).update(
        gate_state=Membership.Gate.BLOCKED, gate_reason="Too many wrong answers."
    )
    client.force_login(user)
    response = client.get(reverse("frontend:annotate", args=[campaign.pk]))
    assert response.context["state"] == "blocked"
    assert _config(response)["state"] == "blocked"
    assert b"Too many wrong answers." in response.content
    assert not Assignment.objects.exists()


def test_an_annotator_with_nothing_left_gets_a_204_from_next(client):
    campaign = campaign_with_comparisons(prompts=1, overlap=1)
    next_url = reverse("annotate:next", args=[campaign.pk])
    client.force_login(annotator(campaign))
    assert client.post(next_url, {}, content_type="application/json").status_code == 200
    client.force_login(annotator(campaign))
    assert client.post(next_url, {}, content_type="application/json").status_code == 204


def test_a_paused_campaign_says_it_is_not_open(client):
    campaign = campaign_with_comparisons(prompts=1, status="paused")
    client.force_login(annotator(campaign))
    response = client.get(reverse("frontend:annotate", args=[campaign.pk]))
    assert response.context["state"] == "closed"
    assert b"not open for annotation" in response.content


def test_the_qualifying_banner_counts_items_against_the_size_only(client):
    campaign = campaign_with_comparisons(prompts=2, qualification_size=15)
    client.force_login(annotator(campaign, gate_state=Membership.Gate.QUALIFYING))
    response = client.get(reverse("frontend:annotate-status", args=[campaign.pk]))
    assert response.status_code == 200
    assert b"0 of 15 practice items done" in response.content
    assert b"gold" not in response.content.lower()


def test_home_lists_my_campaigns_with_my_progress(client):
    campaign = campaign_with_comparisons(prompts=3, title="Sunsets")
    campaign_with_comparisons(prompts=1, title="Not mine")
    client.force_login(annotator(campaign))
    response = client.get(reverse("frontend:home"))
    assert b"Sunsets" in response.content
    assert b"Not mine" not in response.content
    assert response.context["rows"][0]["mine"]["judged"] == 0
    assert b"You judged 0" in response.content


def test_instructions_render_markdown_without_script(client):
    campaign = campaign_with_comparisons(
        prompts=1,
        instructions=(
            "**Look closely.**\n\n<script>window.pwned = 1</script>\n\n"
            '<img src=x onerror="window.pwned = 2">\n\n[link](javascript:alert(1))'
        ),
    )
    client.force_login(annotator(campaign))
    for name in ("frontend:campaign", "frontend:annotate"):
        html = client.get(reverse(name, args=[campaign.pk])).content.decode()
        assert "<strong>Look closely.</strong>" in html
        assert "window.pwned" not in html
        assert "onerror" not in html
        assert "javascript:alert" not in html


def test_login_page_logs_in_and_goes_home(client):
    UserFactory(username="ada")
    page = client.get(reverse("frontend:login"))
    assert page.status_code == 200
    response = client.post(
        reverse("frontend:login"), {"username": "ada", "password": "pw-for-tests-1"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("frontend:home")


def test_logout_needs_a_post(client):
    client.force_login(UserFactory())
    assert client.get(reverse("frontend:logout")).status_code == 405
    assert client.post(reverse("frontend:logout")).status_code == 302


def test_the_pages_polled_while_people_work_stay_cheap(client, django_assert_max_num_queries):
    campaign = campaign_with_comparisons(prompts=5)
    client.force_login(annotator(campaign))
    # The first task comes from the assignment engine, whose PostgreSQL path is leaner.
    with django_assert_max_num_queries(11 if connection.vendor == "postgresql" else 14):
        client.get(reverse("frontend:annotate", args=[campaign.pk]))
    with django_assert_max_num_queries(8):
        client.get(reverse("frontend:annotate-status", args=[campaign.pk]))
    client.force_login(_member(campaign, Membership.Role.ADMIN))
    with django_assert_max_num_queries(10):
        client.get(reverse("frontend:dashboard-progress", args=[campaign.pk]))


def test_the_dashboard_query_count_does_not_grow_with_raters(client, django_assert_max_num_queries):
    campaign = campaign_with_comparisons(prompts=3)
    for _ in range(12):
        annotator(campaign)
    client.force_login(_member(campaign, Membership.Role.ADMIN))
    with django_assert_max_num_queries(22):
        response = client.get(reverse("frontend:dashboard", args=[campaign.pk]))
    assert len(response.context["raters"]["rows"]) == 12
