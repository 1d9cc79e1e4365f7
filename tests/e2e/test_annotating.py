"""An annotator's whole journey in a real browser, and what survives a lost connection."""

import statistics

import pytest

from annotate.models import Assignment, Judgment, Membership
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.helpers import (
    gold_answer,
    key_for,
    key_to_next_median,
    log_in,
    make_campaign,
    member,
    shown_uids,
    wait_for_task,
    wait_until_sent,
    wrong_answer,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def _answer_pairwise(
    page, task_id: int, expected: dict, *, digits: bool, value=None, dwell: bool = False
) -> None:
    """Press the key for `value` (default: the gold answer, else alternate sides).

    With `dwell`, wait until the next task is reserved first, as at a person's pace (a
    person looks at the images far longer than the round trip that reserves the next one).
    """
    assignment = Assignment.objects.get(pk=task_id)
    if dwell:
        page.wait_for_function("() => window.pickwise.aheadReady()")
    assert shown_uids(page) == assignment.presented
    if value is None:
        value = gold_answer(assignment) or assignment.presented[task_id % 2]
    expected[task_id] = value
    page.keyboard.press(key_for(value, assignment, digits=digits))


def _drag(page, source, target) -> None:
    box = source.bounding_box()
    goal = target.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 8, box["y"] + box["height"] / 2 + 8, steps=3)
    page.mouse.move(goal["x"] + goal["width"] - 6, goal["y"] + goal["height"] / 2, steps=12)
    page.mouse.up()


def _chip(page, where: str, uid: str):
    return page.locator(f"#criteria .{where} .chip[data-uid='{uid}']")


def test_a_new_annotator_qualifies_then_judges_pairs_and_rankings(live_server, new_page):
    pairwise = make_campaign(
        prompts=14,
        gold=10,
        title="Which picture fits the prompt?",
        qualification_size=8,
        instructions="Pick the image that **matches the prompt** better.\n\n- Look at details",
    )
    ranking = make_campaign(
        prompts=4, models=("model-a", "model-b", "model-c"), kind="ranking", k=3, title="Rank three"
    )
    user = member(pairwise, "newcomer")
    member(ranking, "newcomer")
    assert Membership.objects.get(user=user, campaign=pairwise).gate_state == "qualifying"

    page = new_page()
    log_in(page, live_server.url, "newcomer")
    assert page.locator("h1").inner_text() == "Your campaigns"
    page.locator(f"a[href='/campaigns/{pairwise.pk}/annotate/']").click()

    expected: dict[int, str] = {}
    task_id = wait_for_task(page)
    assert page.locator("[data-qualifying]").is_visible()
    # Qualification: gold items, answered right, until the gate opens.
    answered = 0
    while Membership.objects.get(user=user, campaign=pairwise).gate_state == "qualifying":
        assert answered < 10, "still qualifying after every gold item"
        _answer_pairwise(page, task_id, expected, digits=answered % 2 == 0)
        answered += 1
        task_id = wait_for_task(page, after=task_id)
        wait_until_sent(page)
    # Then ten regular tasks by keyboard, arrows and digits mixed.
    regular = 0
    while regular < 10:
        is_gold = Assignment.objects.get(pk=task_id).is_gold
        if not is_gold:
            regular += 1
        if regular == 5:
            page.screenshot(path=str(SCREENSHOTS / "pairwise.png"))
        _answer_pairwise(page, task_id, expected, digits=regular % 3 == 0, dwell=True)
        task_id = wait_for_task(page, after=task_id)
    wait_until_sent(page)
    page.wait_for_selector("[data-qualifying]", state="detached")
    times = page.evaluate("() => window.pickwise.metrics.keyToNext")
    at_once, at_pace = times[:answered], times[answered:]

    judgments = {j.assignment_id: j for j in Judgment.objects.filter(campaign=pairwise)}
    assert set(judgments) == set(expected)
    for assignment_id, value in expected.items():
        judgment = judgments[assignment_id]
        assert judgment.answers == {"overall": value}
        assert judgment.presented == Assignment.objects.get(pk=assignment_id).presented
        assert judgment.duration_ms is not None
    assert sum(1 for j in judgments.values() if not j.is_gold) >= 10

    # Rankings: one by dragging, one by number keys, one with a tie (and an undo).
    page.goto(f"{live_server.url}/campaigns/{ranking.pk}/annotate/")
    ranked: dict[int, list] = {}
    task_id = wait_for_task(page)
    presented = Assignment.objects.get(pk=task_id).presented
    for uid in (presented[1], presented[2], presented[0]):
        _drag(page, _chip(page, "pool", uid), page.locator("#criteria .ranked"))
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    page.screenshot(path=str(SCREENSHOTS / "ranking.png"))
    ranked[task_id] = [[presented[1]], [presented[2]], [presented[0]]]
    page.click("#submit")

    task_id = wait_for_task(page, after=task_id)
    presented = Assignment.objects.get(pk=task_id).presented
    for key in ("3", "1", "2"):
        page.keyboard.press(key)
    ranked[task_id] = [[presented[2]], [presented[0]], [presented[1]]]
    page.keyboard.press("Enter")

    task_id = wait_for_task(page, after=task_id)
    presented = Assignment.objects.get(pk=task_id).presented
    for key in ("2", "u", "1", "=", "2", "3"):
        page.keyboard.press(key)
    assert page.locator("#criteria .ranked .chip.tied").count() == 1
    ranked[task_id] = [[presented[0], presented[1]], [presented[2]]]
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.pickwise.queueLength() === 0")
    page.wait_for_function(
        "(id) => document.getElementById('task').dataset.taskId !== String(id)", arg=task_id
    )

    for assignment_id, tiers in ranked.items():
        judgment = Judgment.objects.get(assignment_id=assignment_id)
        assert judgment.answers == {"overall": tiers}
        assert judgment.presented == Assignment.objects.get(pk=assignment_id).presented
    assert Judgment.objects.filter(campaign=ranking).count() == 3

    print(
        "\nkey press to next task shown, median: "
        f"{statistics.median(at_pace):.1f} ms over {len(at_pace)} tasks at a person's pace "
        f"(next task reserved), {statistics.median(at_once):.1f} ms over {len(at_once)} tasks "
        "answered the instant they appeared"
    )


def test_an_annotator_who_fails_the_gold_is_blocked(live_server, new_page):
    campaign = make_campaign(prompts=6, gold=6, qualification_size=6)
    user = member(campaign, "careless")
    page = new_page()
    log_in(page, live_server.url, "careless", next_path=f"/campaigns/{campaign.pk}/annotate/")
    task_id = wait_for_task(page)
    for _ in range(3):
        assignment = Assignment.objects.get(pk=task_id)
        page.keyboard.press(key_for(wrong_answer(assignment), assignment))
        if _ < 2:
            task_id = wait_for_task(page, after=task_id)
    blocked = page.locator("#state-blocked")
    blocked.wait_for(state="visible")
    assert "Too many wrong answers" in blocked.inner_text()
    assert page.locator("#task").is_hidden()
    assert Membership.objects.get(user=user).gate_state == "blocked"
    # A reload shows the same message and hands out nothing new.
    before = Assignment.objects.filter(annotator=user).count()
    page.reload()
    assert page.locator("#state-blocked").is_visible()
    assert Assignment.objects.filter(annotator=user).count() == before


def test_answers_survive_the_server_going_away(live_server, new_page):
    campaign = make_campaign(prompts=10)
    user = member(campaign, "commuter")
    page = new_page()
    log_in(page, live_server.url, "commuter", next_path=f"/campaigns/{campaign.pk}/annotate/")
    expected: dict[int, str] = {}
    task_id = wait_for_task(page)
    for _ in range(2):
        _answer_pairwise(page, task_id, expected, digits=False)
        task_id = wait_for_task(page, after=task_id)
    wait_until_sent(page)

    # The connection drops. The first submit reaches the server but its reply is lost, so the
    # browser must resend it; everything else fails outright.
    state = {"delivered_once": False}

    def outage(route):
        if "/submit/" in route.request.url and not state["delivered_once"]:
            state["delivered_once"] = True
            route.fetch()
        route.abort()

    page.route("**/api/**", outage)
    _answer_pairwise(page, task_id, expected, digits=False)
    task_id = wait_for_task(page, after=task_id)  # reserved ahead: no wait even offline
    _answer_pairwise(page, task_id, expected, digits=True)
    page.wait_for_function(
        "() => document.getElementById('notice').textContent.includes('Connection lost')"
    )
    assert page.evaluate("() => window.pickwise.queueLength()") == 2
    assert page.inner_text("#pending") == "2 answers waiting to be sent"
    # A reload while still offline keeps the unsent answers (they live in localStorage).
    page.reload()
    page.wait_for_function("() => window.pickwise && window.pickwise.queueLength() === 2")
    page.wait_for_function(
        "() => document.getElementById('notice').textContent.includes('Connection lost')"
    )
    assert Judgment.objects.filter(annotator=user).count() == 3  # two before, one delivered
    page.unroute("**/api/**")

    task_id = wait_for_task(page, after=task_id)
    wait_until_sent(page)
    for _ in range(2):
        _answer_pairwise(page, task_id, expected, digits=False)
        task_id = wait_for_task(page, after=task_id)
    wait_until_sent(page)

    judgments = Judgment.objects.filter(annotator=user)
    assert judgments.count() == len(expected) == 6
    assert {j.assignment_id: j.answers["overall"] for j in judgments} == expected
    assert sum(c.done for c in campaign.comparisons.all()) == 6


def test_a_lost_session_keeps_the_answer_and_continues_after_log_in(live_server, new_page):
    campaign = make_campaign(prompts=6)
    user = member(campaign, "sleepy")
    page = new_page()
    annotate_path = f"/campaigns/{campaign.pk}/annotate/"
    log_in(page, live_server.url, "sleepy", next_path=annotate_path)
    task_id = wait_for_task(page)
    page.context.clear_cookies()
    assignment = Assignment.objects.get(pk=task_id)
    page.keyboard.press("ArrowLeft")
    page.wait_for_url("**/accounts/login/?next=**")
    assert page.evaluate("() => localStorage.length") == 1
    page.fill("#id_username", "sleepy")
    page.fill("#id_password", "pw-for-tests-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"**{annotate_path}")
    wait_for_task(page, after=task_id)
    wait_until_sent(page)
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.assignment_id == assignment.pk
    assert judgment.answers == {"overall": assignment.presented[0]}


def test_the_screen_works_at_phone_width(live_server, new_page):
    campaign = make_campaign(prompts=4, title="Phone check")
    member(campaign, "phone")
    page = new_page(width=360, height=740)
    log_in(page, live_server.url, "phone", next_path=f"/campaigns/{campaign.pk}/annotate/")
    task_id = wait_for_task(page)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"page scrolls sideways at 360 px ({width} px wide)"
    # Nothing spills out of an answer button (its label and key hint fit inside it).
    spilled = page.eval_on_selector_all(
        "#criteria .choice, .actions button",
        "buttons => buttons.filter(b => !b.hidden && b.scrollWidth > b.clientWidth)"
        ".map(b => b.textContent.trim())",
    )
    assert not spilled, f"these buttons overflow at 360 px: {spilled}"
    page.screenshot(path=str(SCREENSHOTS / "phone.png"), full_page=True)
    assignment = Assignment.objects.get(pk=task_id)
    page.locator("#criteria .choice").last.click()
    wait_for_task(page, after=task_id)
    wait_until_sent(page)
    assert Judgment.objects.get(assignment=assignment).answers == {
        "overall": assignment.presented[1]
    }
    assert key_to_next_median(page) is not None
