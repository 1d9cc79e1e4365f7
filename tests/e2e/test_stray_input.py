"""An answer applies only to the task that was on screen: stray clicks and held keys."""

import pytest

from annotate.models import Judgment
from tests.e2e.helpers import log_in, make_campaign, member, wait_for_task, wait_until_sent

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def _open(page, live_server, campaign, username) -> int:
    log_in(page, live_server.url, username, next_path=f"/campaigns/{campaign.pk}/annotate/")
    task_id = wait_for_task(page)
    # The next task is reserved and its images loaded, so it is painted at once after the
    # first click: the case where a second click used to land on it.
    page.wait_for_function("() => window.pickwise.aheadReady()")
    return task_id


def test_a_double_click_answers_only_the_task_on_screen(live_server, new_page):
    campaign = make_campaign(prompts=6)
    user = member(campaign, "doubleclicker")
    page = new_page()
    first = _open(page, live_server, campaign, "doubleclicker")

    page.locator("#criteria .choice").first.dblclick()
    second = wait_for_task(page, after=first)
    wait_until_sent(page)
    page.wait_for_timeout(500)  # room for a stray second answer to arrive, if one was sent

    judgments = list(Judgment.objects.filter(annotator=user))
    assert [j.assignment_id for j in judgments] == [first]
    assert judgments[0].never_shown is False
    assert page.get_attribute("#task", "data-task-id") == str(second)
    assert page.evaluate("() => window.pickwise.queueLength()") == 0


def test_a_held_key_answers_once(live_server, new_page):
    campaign = make_campaign(prompts=6)
    user = member(campaign, "keyholder")
    page = new_page()
    first = _open(page, live_server, campaign, "keyholder")

    for _ in range(4):  # the first keydown and three auto-repeats
        page.keyboard.down("ArrowLeft")
    page.keyboard.up("ArrowLeft")
    wait_for_task(page, after=first)
    wait_until_sent(page)
    page.wait_for_timeout(500)

    assert list(Judgment.objects.filter(annotator=user).values_list("assignment", flat=True)) == [
        first
    ]
