"""An answered task never shows again as open: history navigation, second tabs, late answers."""

import pytest

from annotate.models import Assignment, Judgment
from annotate.services.judgments import judgment_submit
from tests.e2e.helpers import log_in, make_campaign, member, wait_for_task, wait_until_sent

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def _annotate_url(live_server, campaign) -> str:
    return f"{live_server.url}/campaigns/{campaign.pk}/annotate/"


def _open_task(page) -> int:
    task_id = wait_for_task(page)
    assert Assignment.objects.get(pk=task_id).state == Assignment.State.OPEN
    return task_id


def test_back_and_forward_never_bring_back_an_answered_task(live_server, new_page):
    campaign = make_campaign(prompts=8)
    user = member(campaign, "historian")
    page = new_page()
    log_in(page, live_server.url, "historian")
    page.goto(_annotate_url(live_server, campaign))
    first = _open_task(page)
    page.wait_for_function("() => window.pickwise.aheadReady()")
    page.keyboard.press("ArrowLeft")
    second = wait_for_task(page, after=first)
    wait_until_sent(page)

    page.locator(".crumbs a").last.click()  # to the campaign page
    page.wait_for_load_state("domcontentloaded")
    page.go_back()
    shown = _open_task(page)
    assert shown != first
    page.keyboard.press("ArrowRight")
    wait_for_task(page, after=shown)
    wait_until_sent(page)

    page.go_forward()
    page.wait_for_load_state("domcontentloaded")
    page.go_back()
    again = _open_task(page)
    assert again not in (first, shown)
    answered = set(Judgment.objects.filter(annotator=user).values_list("assignment", flat=True))
    assert answered == {first, shown} and second in (shown, again)


def test_a_task_answered_in_another_tab_leaves_this_one(live_server, new_page):
    campaign = make_campaign(prompts=8)
    member(campaign, "twotabs")
    page = new_page()
    log_in(page, live_server.url, "twotabs")
    page.goto(_annotate_url(live_server, campaign))
    other = page.context.new_page()
    other.goto(_annotate_url(live_server, campaign))
    task = _open_task(page)
    assert wait_for_task(other) == task  # the server hands the open task to both tabs

    page.wait_for_function("() => window.pickwise.aheadReady()")
    page.keyboard.press("ArrowLeft")
    wait_for_task(page, after=task)
    moved_to = wait_for_task(other, after=task)
    assert Assignment.objects.get(pk=moved_to).state == Assignment.State.OPEN
    assert "another tab" in other.locator("#notice").inner_text()


def test_a_late_second_answer_is_told_that_the_first_one_stands(live_server, new_page):
    campaign = make_campaign(prompts=8)
    user = member(campaign, "late")
    page = new_page()
    log_in(page, live_server.url, "late")
    page.goto(_annotate_url(live_server, campaign))
    task = _open_task(page)
    assignment = Assignment.objects.select_related("campaign").get(pk=task)
    # Answered elsewhere (another device, a script) while this screen still shows it.
    first, _ = judgment_submit(
        assignment=assignment, answers={"overall": assignment.presented[1]}, duration_ms=900
    )

    page.keyboard.press("ArrowLeft")
    wait_for_task(page, after=task)
    wait_until_sent(page)
    page.wait_for_function(
        "() => document.getElementById('notice').textContent.includes('first answer stands')"
    )
    assert list(Judgment.objects.filter(annotator=user)) == [first]
    assert first.answers == {"overall": assignment.presented[1]}
