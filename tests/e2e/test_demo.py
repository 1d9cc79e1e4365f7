"""The seeded demo in a real browser: a careful annotator who answers what the images show
passes qualification and keeps going; one who always presses Left is blocked.

The careful annotator decides from the page alone: the prompt's text and the pixels of the
images shown, read with tests.generation.scene_reading. Nothing here reads a gold answer.
"""

import io

import pytest
from django.core.management import call_command

from annotate.models import Campaign, Judgment, Membership
from annotate.quality.services import rater_evaluate
from generation.management.commands.seed_demo import DEFAULT_PASSWORD
from tests.e2e.conftest import SCREENSHOTS
from tests.generation.scene_reading import judge, see_bytes

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

ANSWERS = 50
KEYS = {"first": "ArrowLeft", "second": "ArrowRight", "tie": "ArrowDown", "both_bad": "b"}
IS_BLOCKED = """(() => {
    const blocked = document.getElementById("state-blocked");
    return Boolean(blocked && !blocked.hidden);
})()"""
NEXT_OR_BLOCKED = f"""(previous) => {{
    if ({IS_BLOCKED}) return "blocked";
    const task = document.getElementById("task");
    if (task && !task.hidden && task.dataset.ready === "1"
        && String(task.dataset.taskId) !== String(previous)) return "task";
    return false;
}}"""
# At a person's pace: the next task is reserved while this one is looked at.
AHEAD_OR_BLOCKED = f"""() => {{
    if ({IS_BLOCKED}) return "blocked";
    return window.pickwise.aheadReady() ? "ready" : false;
}}"""


def _open_demo(new_page, base_url: str, username: str, campaign: Campaign):
    page = new_page()
    page.goto(f"{base_url}/accounts/login/?next=/campaigns/{campaign.pk}/annotate/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    return page


def _careful_key(page) -> str:
    """Look at the prompt and at each image shown, and press for the one that shows it."""
    prompt = page.text_content("#prompt").strip()
    sources = page.eval_on_selector_all("#images img", "imgs => imgs.map(i => i.src)")
    seen = [see_bytes(page.request.get(source).body()) for source in sources]
    return KEYS[judge(prompt, *seen)]


def _answer(page, *, decide, most: int, screenshot: str | None = None) -> tuple[int, bool]:
    """Answer up to `most` tasks; (answers sent, whether the annotator got blocked)."""
    state = page.wait_for_function(NEXT_OR_BLOCKED, arg=None).json_value()
    for answered in range(most):
        if state == "blocked":
            return answered, True
        task_id = page.get_attribute("#task", "data-task-id")
        if page.wait_for_function(AHEAD_OR_BLOCKED).json_value() == "blocked":
            return answered, True
        # The screen with a two-part prompt, once qualifying is behind.
        if screenshot and answered >= 10 and " and " in page.text_content("#prompt"):
            page.screenshot(path=screenshot)
            screenshot = None
        page.keyboard.press(decide(page))
        state = page.wait_for_function(NEXT_OR_BLOCKED, arg=task_id).json_value()
    page.wait_for_function("() => window.pickwise.queueLength() === 0")
    return most, state == "blocked"


def _figures(campaign: Campaign, username: str) -> dict:
    judgments = Judgment.objects.filter(campaign=campaign, annotator__username=username)
    gold = judgments.filter(is_gold=True)
    return {
        "answers": judgments.count(),
        "gold": gold.count(),
        "gold_right": gold.filter(gold_correct=True).count(),
        "ties": judgments.filter(answers__overall="tie").count(),
        "state": Membership.objects.get(campaign=campaign, user__username=username).gate_state,
    }


def test_a_careful_annotator_passes_and_stays_and_an_always_left_one_is_blocked(
    live_server, new_page
):
    call_command("seed_demo", stdout=io.StringIO())
    campaign = Campaign.objects.get(slug="demo")

    careful = _open_demo(new_page, live_server.url, "annotator2", campaign)
    answered, blocked = _answer(
        careful,
        decide=_careful_key,
        most=ANSWERS,
        screenshot=str(SCREENSHOTS / "demo.png"),
    )
    assert (answered, blocked) == (ANSWERS, False)
    membership = Membership.objects.get(campaign=campaign, user__username="annotator2")
    # The rules a worker runs every few answers (agreement, position bias, tie spam, repeats).
    rater_evaluate(campaign=campaign, user=membership.user)
    figures = _figures(campaign, "annotator2")
    print(f"\ncareful annotator: {figures}")
    assert figures["state"] == "active"
    assert figures["answers"] == ANSWERS
    assert figures["gold"] >= 8
    assert figures["gold_right"] == figures["gold"]

    always_left = _open_demo(new_page, live_server.url, "annotator1", campaign)
    answered, blocked = _answer(always_left, decide=lambda page: "ArrowLeft", most=ANSWERS)
    if blocked:
        assert "Too many wrong answers" in always_left.inner_text("#state-blocked")
    else:
        # Gold alone lets about one always-left annotator in a hundred through 50 answers; the
        # rules a worker runs every few answers catch that one by its position bias.
        user = Membership.objects.get(campaign=campaign, user__username="annotator1").user
        rater_evaluate(campaign=campaign, user=user)
    figures = _figures(campaign, "annotator1")
    print(f"always-left annotator: {figures}, blocked in the browser after {answered} answers")
    assert figures["state"] == "blocked"
