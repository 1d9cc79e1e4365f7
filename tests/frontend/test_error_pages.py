"""Error pages in the app's style, quiet 403s, and API docs that need no internet."""

import logging
import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from annotate.models import Membership
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def test_a_403_is_a_page_with_a_way_back_and_logs_no_traceback(client, caplog):
    campaign = campaign_with_comparisons(prompts=1)
    client.force_login(annotator(campaign))

    with caplog.at_level(logging.WARNING):
        response = client.get(reverse("frontend:dashboard", args=[campaign.pk]))

    assert response.status_code == 403
    html = response.content.decode()
    assert "Your account cannot open this page" in html
    assert f'href="{reverse("frontend:home")}"' in html
    assert "pickwise.css" in html
    forbidden = [r for r in caplog.records if getattr(r, "status_code", None) == 403]
    assert forbidden, "the refusal is still logged, as one line"
    assert all(r.exc_info is None for r in forbidden)
    assert "Traceback" not in caplog.text


def test_a_404_is_a_page_with_a_way_back(client):
    client.force_login(UserFactory())
    response = client.get("/campaigns/999999/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "There is nothing here" in html
    assert "Back to your campaigns" in html


def test_an_unknown_address_is_the_same_404_page_for_visitors(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"There is nothing here" in response.content


def test_the_500_page_renders_without_a_request_context():
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert 'href="/"' in html


def test_pages_carry_a_content_security_policy_without_inline_script(client):
    campaign = campaign_with_comparisons(prompts=1)
    user = UserFactory()
    from annotate.services.campaigns import membership_set

    membership_set(campaign=campaign, user=user, role=Membership.Role.ADMIN)
    client.force_login(user)
    response = client.get(reverse("frontend:dashboard", args=[campaign.pk]))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_the_api_docs_page_references_only_local_pinned_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    for source in sources:
        assert not re.match(r"^(https?:)?//", source), source
    assets = [s for s in sources if s.startswith(settings.STATIC_URL)]
    assert f"{settings.STATIC_URL}vendor/swagger-ui/5.35.0/swagger-ui-bundle.js" in assets
    assert f"{settings.STATIC_URL}frontend/js/api_docs.js" in assets
    for asset in assets:
        assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset
    assert "<script>" not in html
    assert 'data-schema-url="/api/schema/"' in html


def test_the_schema_the_docs_read_is_served(client):
    assert client.get("/api/schema/").status_code == 200


def test_pages_name_their_icon_so_browsers_do_not_ask_for_a_missing_favicon(client):
    html = client.get(reverse("frontend:login")).content.decode()
    (icon,) = re.findall(r'<link rel="icon" href="([^"]+)"', html)
    assert icon.startswith(settings.STATIC_URL)
    assert finders.find(icon.removeprefix(settings.STATIC_URL)), icon
