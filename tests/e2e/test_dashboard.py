"""The admin dashboard in a real browser: progress that moves, quality panels, gate actions."""

import random

import pytest

from annotate.models import Membership
from annotate.services.assignments import assignment_next
from annotate.services.judgments import judgment_submit
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.helpers import log_in, make_campaign, member, wait_for_task

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

# Small windows so a few dozen judgments draw an agreement curve.
SMALL_POLICY = {"alpha_min_units": 10, "alpha_window_units": 8, "bootstrap_replicates": 50}


def _crowd_judges(campaign, users, *, seed: int = 7) -> int:
    """Simulated raters who agree on each pair 90% of the time, through the real services.

    Which model wins depends on the prompt, so agreement (not just a majority) is visible.
    """
    rng = random.Random(seed)
    count = 0
    for user in users:
        while (assignment := assignment_next(campaign=campaign, annotator=user)) is not None:
            images = {str(i.uid): i.model_name for i in assignment.comparison.images.all()}
            favourite = "model-a" if assignment.comparison.prompt_id % 3 else "model-b"
            preferred = next(uid for uid, model in images.items() if model == favourite)
            other = next(uid for uid in images if uid != preferred)
            answer = preferred if rng.random() < 0.9 else other
            judgment_submit(assignment=assignment, answers={"overall": answer}, duration_ms=1500)
            count += 1
    return count


def _figure(page) -> int:
    return int(page.inner_text("[data-figure=judgments_done]"))


def test_the_dashboard_shows_progress_moving_and_quality(live_server, new_page):
    campaign = make_campaign(prompts=24, overlap=4, title="Sunset styles", qc_policy=SMALL_POLICY)
    crowd = [member(campaign, f"rater{i}") for i in range(3)]
    done = _crowd_judges(campaign, crowd[:2]) + _crowd_judges(campaign, crowd[2:], seed=3)
    member(campaign, "live")
    member(campaign, "boss", role=Membership.Role.ADMIN)

    admin = new_page(width=1280, height=1100)
    log_in(admin, live_server.url, "boss", next_path=f"/campaigns/{campaign.pk}/dashboard/")
    assert _figure(admin) == done
    assert admin.locator("#raters tbody tr").count() == 4
    assert admin.locator("text=model-a").count() >= 1
    admin.wait_for_selector("[data-plot] .uplot")

    annotator = new_page()
    log_in(annotator, live_server.url, "live", next_path=f"/campaigns/{campaign.pk}/annotate/")
    task_id = wait_for_task(annotator)
    for _ in range(2):
        annotator.keyboard.press("ArrowLeft")
        task_id = wait_for_task(annotator, after=task_id)
    # htmx polls the progress panel; the count moves without a reload.
    admin.wait_for_function(
        "(before) => Number(document.querySelector('[data-figure=judgments_done]')"
        ".textContent) >= before + 2",
        arg=done,
        timeout=15_000,
    )
    admin.screenshot(path=str(SCREENSHOTS / "dashboard.png"))

    # Block a rater with a reason, from the keyboard.
    row = admin.locator("#raters tbody tr", has_text="rater0")
    row.locator("input[name=reason]").fill("Checked by hand: random clicks.")
    row.locator("input[name=reason]").press("Enter")
    admin.wait_for_selector("text=rater0 is now blocked.")
    assert Membership.objects.get(user__username="rater0").gate_state == "blocked"

    # On a phone the page does not scroll sideways; wide tables scroll inside their box.
    admin.set_viewport_size({"width": 360, "height": 800})
    admin.reload()
    admin.wait_for_selector("[data-plot] .uplot")
    width = admin.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"the dashboard scrolls sideways at 360 px ({width} px wide)"
