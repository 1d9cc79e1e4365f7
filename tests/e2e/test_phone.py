"""The annotate screen on a phone (390 x 844, touch): one screen per task, named by position."""

import pytest

from annotate.models import Assignment, Judgment
from tests.e2e.helpers import log_in, make_campaign, member, wait_for_task, wait_until_sent

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

WIDTH, HEIGHT = 390, 844
LONG_SCENE = (
    "a cat wearing a knitted hat, sitting on a windowsill and watching the rain fall over a "
    "grey city at dusk, soft light, film grain"
)


def _phone(new_page):
    return new_page(width=WIDTH, height=HEIGHT, has_touch=True, is_mobile=True)


def _bottoms(page, selector: str) -> list[float]:
    return page.eval_on_selector_all(
        selector, "els => els.map(e => e.getBoundingClientRect().bottom)"
    )


def _scroll_y(page) -> float:
    return page.evaluate("() => window.scrollY")


def test_a_pair_fits_one_phone_screen_and_the_next_starts_at_the_top(live_server, new_page):
    campaign = make_campaign(prompts=4, texts=[LONG_SCENE])
    user = member(campaign, "phone")
    page = _phone(new_page)
    log_in(page, live_server.url, "phone", next_path=f"/campaigns/{campaign.pk}/annotate/")
    first = wait_for_task(page)

    assert _scroll_y(page) == 0
    assert page.locator("#prompt").is_visible()
    assert len(_bottoms(page, "#images img")) == 2
    assert len(_bottoms(page, "#criteria .choice")) == 4
    for selector in ("#prompt", "#images img", "#criteria .choice"):
        assert max(_bottoms(page, selector)) <= HEIGHT, selector

    # Stacked images are named by position, on the images and on the buttons.
    assert page.locator("#images figcaption").all_inner_texts() == ["Top", "Bottom"]
    buttons = [text.strip() for text in page.locator("#criteria .choice").all_inner_texts()]
    assert buttons[0] == "Top" and buttons[-1] == "Bottom"
    assert page.get_attribute("#images img >> nth=0", "alt").startswith("Top image")
    # A touch screen has no keyboard: no key hints, no key help.
    assert (
        page.locator("#task kbd").evaluate_all("ks => ks.filter(k => k.offsetParent).length") == 0
    )
    assert page.locator("#help-button").is_hidden()

    # Scrolled down (to look closer at the lower image), then a tap: the next task is at the top.
    page.evaluate("() => window.scrollTo(0, 400)")
    page.locator("#criteria .choice >> nth=-1").tap()
    wait_for_task(page, after=first)
    assert _scroll_y(page) == 0
    wait_until_sent(page)
    assignment = Assignment.objects.get(pk=first)
    assert Judgment.objects.get(annotator=user).answers == {"overall": assignment.presented[1]}


def test_a_pair_fits_with_the_qualification_banner_too(live_server, new_page):
    campaign = make_campaign(prompts=12, gold=10, qualification_size=8, texts=[LONG_SCENE])
    member(campaign, "newcomer")
    page = _phone(new_page)
    log_in(page, live_server.url, "newcomer", next_path=f"/campaigns/{campaign.pk}/annotate/")
    wait_for_task(page)
    assert page.locator("[data-qualifying]").is_visible()
    assert len(_bottoms(page, "#criteria .choice")) == 4
    for selector in ("#prompt", "#images img", "#criteria .choice"):
        assert max(_bottoms(page, selector)) <= HEIGHT, selector


def test_a_wide_screen_keeps_left_and_right(live_server, new_page):
    campaign = make_campaign(prompts=2)
    member(campaign, "desk")
    page = new_page()
    log_in(page, live_server.url, "desk", next_path=f"/campaigns/{campaign.pk}/annotate/")
    wait_for_task(page)
    assert page.locator("#images figcaption").all_inner_texts() == ["1 ← Left", "2 → Right"]
    assert page.locator("#help-button").is_visible()


def test_the_ranking_submit_is_reachable_on_a_phone(live_server, new_page):
    campaign = make_campaign(
        prompts=3, models=("model-a", "model-b", "model-c"), kind="ranking", k=3
    )
    user = member(campaign, "ranker")
    page = _phone(new_page)
    log_in(page, live_server.url, "ranker", next_path=f"/campaigns/{campaign.pk}/annotate/")
    first = wait_for_task(page)
    for _ in range(3):
        page.locator("#criteria .pool .chip-body").first.tap()
    submit = page.locator("#submit")
    assert submit.is_enabled()
    box = submit.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= HEIGHT
    submit.tap()
    wait_for_task(page, after=first)
    wait_until_sent(page)
    assert Judgment.objects.filter(annotator=user).count() == 1


def test_the_campaign_pages_fit_a_phone_without_sideways_scrolling(live_server, new_page):
    campaign = make_campaign(prompts=4)
    member(campaign, "boss", role="admin")
    page = _phone(new_page)
    log_in(page, live_server.url, "boss")
    for tab in ("settings", "prompts", "images", "members", "exports", "dashboard"):
        page.goto(f"{live_server.url}/campaigns/{campaign.pk}/{tab}/")
        # Wide tables scroll inside their own box; the page itself never does.
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH, tab
