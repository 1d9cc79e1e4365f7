"""A very long prompt is clamped to a few lines, in normal type, and can be read whole."""

import pytest

from annotate.prompt_length import MAX_PROMPT_CHARS
from tests.e2e.helpers import log_in, make_campaign, member, wait_for_task

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

# As long as a prompt may be, with the " #1" the helper adds.
LONG = ("a lighthouse keeper's diary, page after page of weather " * 200)[: MAX_PROMPT_CHARS - 3]


def _box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def test_a_prompt_of_the_longest_length_is_clamped_with_a_show_all_toggle(live_server, new_page):
    campaign = make_campaign(prompts=1, texts=[LONG])
    member(campaign, "reader")
    page = new_page(width=1280, height=860)
    log_in(page, live_server.url, "reader", next_path=f"/campaigns/{campaign.pk}/annotate/")
    wait_for_task(page)
    full_text = page.locator("#prompt").text_content()
    assert len(full_text) == MAX_PROMPT_CHARS

    assert _box(page, "#prompt")["height"] < 120  # three lines
    weight = page.evaluate("() => getComputedStyle(document.getElementById('prompt')).fontWeight")
    assert weight in ("400", "normal")
    # The images and the answer buttons are in view without scrolling.
    assert _box(page, "#criteria .choice >> nth=-1")["y"] + 40 < 860
    assert page.evaluate("() => document.documentElement.scrollHeight") < 1_300

    toggle = page.locator("#prompt-toggle")
    assert toggle.is_visible() and toggle.inner_text() == "Show all"
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert toggle.inner_text() == "Show less"
    assert _box(page, "#prompt")["height"] > 240  # the whole prompt, wrapped
    toggle.click()
    assert _box(page, "#prompt")["height"] < 120


def test_a_short_prompt_has_no_toggle(live_server, new_page):
    campaign = make_campaign(prompts=1)
    member(campaign, "brief")
    page = new_page()
    log_in(page, live_server.url, "brief", next_path=f"/campaigns/{campaign.pk}/annotate/")
    wait_for_task(page)
    assert page.locator("#prompt-toggle").is_hidden()
