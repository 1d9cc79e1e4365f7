"""Pages under the Content-Security-Policy in Chromium: nothing refused, nothing fetched off-site."""

import pytest

from annotate.models import Membership
from tests.e2e.helpers import log_in, make_campaign, member

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def watch(page, base_url: str) -> dict:
    """Collect CSP refusals, script errors and requests that leave the server."""
    seen = {"csp": [], "errors": [], "offsite": []}
    page.on(
        "console",
        lambda m: seen["csp"].append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith((base_url, "data:", "blob:"))
            else seen["offsite"].append(r.url)
        ),
    )
    return seen


def test_the_api_docs_run_offline_under_the_policy(live_server, new_page):
    page = new_page()
    seen = watch(page, live_server.url)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert page.locator(".swagger-ui .opblock").count() > 10
    assert seen == {"csp": [], "errors": [], "offsite": []}


def test_the_existing_pages_load_without_csp_refusals(live_server, new_page):
    campaign = make_campaign(prompts=2)
    member(campaign, "boss", Membership.Role.ADMIN)
    page = new_page()
    seen = watch(page, live_server.url)
    log_in(page, live_server.url, "boss")
    pages = ["", "dashboard/", "images/", "exports/"]
    for path in ["/", *(f"/campaigns/{campaign.pk}/{page}" for page in pages)]:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    page.goto(f"{live_server.url}/campaigns/999999/")
    assert seen == {"csp": [], "errors": [], "offsite": []}


def test_login_annotate_and_training_pages_run_without_csp_refusals(
    live_server, new_page, settings, tmp_path
):
    from tests.e2e.helpers import wait_for_task, wait_until_sent
    from tests.exports.helpers import build, bulk_judge, prefer_models
    from training.models import TrainingJob

    settings.TRAINING_ROOT = tmp_path / "training"
    settings.EXPORT_ROOT = tmp_path / "exports"
    campaign = make_campaign(prompts=6)
    bulk_judge(
        campaign, [member(campaign, f"r{i}") for i in range(2)], prefer_models("model-a", "model-b")
    )
    export = build(campaign, format="pickapic")
    job = TrainingJob.objects.create(export=export, name="j", pretrained="/models/sd", max_steps=4)
    to_annotate = make_campaign(prompts=3)
    member(to_annotate, "worker")
    member(campaign, "scientist", Membership.Role.RESEARCHER)

    page = new_page()
    seen = watch(page, live_server.url)
    log_in(page, live_server.url, "worker")  # the login page, then home
    page.goto(f"{live_server.url}/campaigns/{to_annotate.pk}/annotate/")
    first = wait_for_task(page)
    page.keyboard.press("1")
    wait_for_task(page, after=first)
    wait_until_sent(page)
    assert seen == {"csp": [], "errors": [], "offsite": []}

    page = new_page()
    seen = watch(page, live_server.url)
    log_in(page, live_server.url, "scientist")
    for path in [
        f"/campaigns/{campaign.pk}/dashboard/",
        f"/exports/{export.pk}/train/",
        f"/training-jobs/{job.pk}/",
    ]:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
    assert seen == {"csp": [], "errors": [], "offsite": []}
