"""Every control of the annotate screen by keyboard: criteria, Enter, skip, zoom, help, leases."""

import pytest

from annotate.models import Assignment, Judgment
from tests.e2e.helpers import log_in, make_campaign, member, wait_for_task, wait_until_sent

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

TWO_QUESTIONS = [
    {
        "key": "overall",
        "question": "Which is better overall?",
        "allow_tie": True,
        "allow_both_bad": True,
    },
    {
        "key": "alignment",
        "question": "Which matches the prompt?",
        "allow_tie": False,
        "allow_both_bad": False,
    },
]


def test_two_questions_are_answered_by_keys_and_sent_with_enter(live_server, new_page):
    campaign = make_campaign(prompts=4, criteria=TWO_QUESTIONS)
    user = member(campaign, "keys")
    page = new_page()
    log_in(page, live_server.url, "keys", next_path=f"/campaigns/{campaign.pk}/annotate/")
    task_id = wait_for_task(page)
    assignment = Assignment.objects.get(pk=task_id)

    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")
    assert page.locator("#help").is_hidden()
    page.keyboard.press("z")
    assert page.locator("#zoom").is_visible()
    assert page.locator("#zoom img").count() == 2
    page.keyboard.press("Escape")
    assert page.locator("#zoom").is_hidden()
    page.keyboard.down("Space")
    assert page.locator("#zoom").is_visible()
    page.keyboard.up("Space")
    assert page.locator("#zoom").is_hidden()

    page.keyboard.press("b")  # both bad, allowed on the first question
    assert page.locator("fieldset[data-key=alignment]").get_attribute("class").endswith("active")
    page.keyboard.press("ArrowDown")  # tie: not allowed on the second question, ignored
    page.keyboard.press("Enter")  # not every question answered yet: nothing is sent
    assert page.get_attribute("#task", "data-task-id") == str(task_id)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    task_id = wait_for_task(page, after=task_id)

    page.keyboard.press("s")  # skip the next one
    wait_for_task(page, after=task_id)
    wait_until_sent(page)
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.answers == {"overall": "both_bad", "alignment": assignment.presented[1]}
    assert Assignment.objects.get(pk=task_id).state == "skipped"


def test_tab_and_enter_reach_every_choice(live_server, new_page):
    campaign = make_campaign(prompts=3)
    user = member(campaign, "tabber")
    page = new_page()
    log_in(page, live_server.url, "tabber", next_path=f"/campaigns/{campaign.pk}/annotate/")
    task_id = wait_for_task(page)
    assignment = Assignment.objects.get(pk=task_id)
    labels = []
    for _ in range(30):
        page.keyboard.press("Tab")
        labels.append(page.evaluate("() => document.activeElement.textContent.trim()"))
        if labels[-1].startswith("Right"):
            break
    assert any(label.startswith("Left") for label in labels)
    assert any(label.startswith("Tie") for label in labels)
    page.keyboard.press("Enter")
    wait_for_task(page, after=task_id)
    # Focus stays in the task, so Tab goes on from there rather than from the page's top.
    assert page.evaluate("() => document.getElementById('task').contains(document.activeElement)")
    wait_until_sent(page)
    assert Judgment.objects.get(annotator=user).answers == {"overall": assignment.presented[1]}


def test_a_lease_running_out_on_screen_brings_a_fresh_task(live_server, new_page):
    campaign = make_campaign(prompts=6, lease_seconds=10)
    user = member(campaign, "slow")
    page = new_page()
    log_in(page, live_server.url, "slow", next_path=f"/campaigns/{campaign.pk}/annotate/")
    first = wait_for_task(page)
    page.wait_for_function(
        "() => document.getElementById('notice').textContent.includes('Time ran out')",
        timeout=20_000,
    )
    fresh = wait_for_task(page, after=first)
    page.keyboard.press("ArrowLeft")
    wait_until_sent(page)
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.assignment_id == fresh != first
