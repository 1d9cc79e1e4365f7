"""Undoing a pairwise answer in the browser: by key and by button, counters put back."""

import pytest

from annotate.models import Assignment, Comparison, Judgment
from tests.e2e.helpers import (
    key_for,
    log_in,
    make_campaign,
    member,
    wait_for_task,
    wait_until_sent,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def _answer(page, task_id: int, side: int) -> str:
    assignment = Assignment.objects.get(pk=task_id)
    value = assignment.presented[side]
    page.keyboard.press(key_for(value, assignment))
    return value


def test_u_takes_back_the_last_answer_and_shows_its_task_again(live_server, new_page):
    campaign = make_campaign(prompts=6)
    user = member(campaign, "undoer")
    page = new_page()
    log_in(page, live_server.url, "undoer", next_path=f"/campaigns/{campaign.pk}/annotate/")
    first = wait_for_task(page)
    page.wait_for_function("() => window.pickwise.aheadReady()")
    assert page.locator("#undo").is_hidden()
    _answer(page, first, 0)
    second = wait_for_task(page, after=first)
    wait_until_sent(page)
    assert Judgment.objects.filter(annotator=user).count() == 1
    assert page.locator("#undo").is_visible()

    page.keyboard.press("u")
    assert wait_for_task(page, after=second) == first
    assert "undone" in page.locator("#notice").inner_text()
    assert Judgment.objects.filter(annotator=user).count() == 0
    assert Assignment.objects.get(pk=first).state == Assignment.State.OPEN
    comparison = Comparison.objects.get(pk=Assignment.objects.get(pk=first).comparison_id)
    assert (comparison.done, comparison.in_flight) == (0, 1)
    assert page.locator("#undo").is_hidden()  # nothing answered since

    chosen = _answer(page, first, 1)  # answered afresh, the other way
    assert wait_for_task(page, after=first) == second  # then on where it was
    wait_until_sent(page)
    judgment = Judgment.objects.get(annotator=user)
    assert (judgment.assignment_id, judgment.answers) == (first, {"overall": chosen})
    comparison.refresh_from_db()
    assert (comparison.done, comparison.in_flight) == (1, 0)


def test_the_undo_button_works_on_a_phone(live_server, new_page):
    campaign = make_campaign(prompts=6)
    user = member(campaign, "thumb")
    page = new_page(width=390, height=844, has_touch=True, is_mobile=True)
    log_in(page, live_server.url, "thumb", next_path=f"/campaigns/{campaign.pk}/annotate/")
    first = wait_for_task(page)
    page.wait_for_function("() => window.pickwise.aheadReady()")
    page.locator("#criteria .choice >> nth=0").tap()
    wait_for_task(page, after=first)
    wait_until_sent(page)
    undo = page.locator("#undo")
    box = undo.bounding_box()
    assert box["y"] + box["height"] <= 844  # reachable without scrolling
    undo.tap()
    page.wait_for_function(
        "(id) => document.getElementById('task').dataset.taskId === String(id)"
        " && document.getElementById('task').dataset.ready === '1'",
        arg=first,
    )
    assert Judgment.objects.filter(annotator=user).count() == 0
