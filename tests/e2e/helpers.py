"""Set-up and page steps shared by the browser tests."""

import io
import random
import statistics

from PIL import Image as PILImage
from PIL import ImageDraw

from annotate.models import Assignment, Campaign, Comparison, Membership
from annotate.services.campaigns import membership_set
from annotate.services.comparisons import comparisons_build_for_campaign
from annotate.services.gold import gold_build
from annotate.services.images import image_create
from tests.factories import CampaignFactory, PromptFactory, UserFactory

PASSWORD = "pw-for-tests-1"
SCENES = [
    "a red fox in fresh snow at dawn",
    "a lighthouse on a cliff in a storm",
    "a bowl of ramen, studio lighting",
    "a watercolour map of an imaginary island",
    "an astronaut reading in a library",
    "a tiny robot watering a cactus",
    "a neon city street in the rain",
    "a paper boat on a puddle",
    "a cat wearing a knitted hat",
    "mountains reflected in a still lake",
    "a steam train crossing a viaduct",
    "a hot air balloon over a desert",
]


def picture(seed: int, *, size: int = 96) -> bytes:
    """A small, distinct picture (sky, ground, sun, shapes) so screens look like real work."""
    rng = random.Random(seed)
    sky = tuple(rng.randint(60, 200) for _ in range(3))
    ground = tuple(rng.randint(20, 140) for _ in range(3))
    image = PILImage.new("RGB", (size, size), sky)
    draw = ImageDraw.Draw(image)
    horizon = rng.randint(size // 2, size * 3 // 4)
    draw.rectangle([0, horizon, size, size], fill=ground)
    r = rng.randint(size // 10, size // 5)
    cx, cy = rng.randint(r, size - r), rng.randint(r, horizon - r // 2)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, rng.randint(180, 240), 90))
    for _ in range(3):
        x, w, h = rng.randint(0, size), rng.randint(6, size // 4), rng.randint(8, size // 3)
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        draw.polygon([(x, horizon), (x + w, horizon), (x + w // 2, horizon - h)], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def make_campaign(
    *,
    prompts: int,
    models: tuple[str, ...] = ("model-a", "model-b"),
    gold: int = 0,
    texts: list[str] | None = None,
    **fields,
) -> Campaign:
    campaign = CampaignFactory(**fields)
    texts = texts or SCENES
    for index in range(prompts):
        prompt = PromptFactory(campaign=campaign, text=f"{texts[index % len(texts)]} #{index + 1}")
        for model_index, model in enumerate(models):
            image_create(
                prompt=prompt,
                data=picture(campaign.pk * 1000 + index * 10 + model_index),
                model_name=model,
            )
    comparisons_build_for_campaign(campaign=campaign)
    if gold:
        gold_build(campaign=campaign, count=gold)
    return campaign


def member(campaign: Campaign, username: str, role: str = Membership.Role.ANNOTATOR):
    user = UserFactory(username=username)
    membership_set(campaign=campaign, user=user, role=role)
    return user


def log_in(page, base_url: str, username: str, *, next_path: str = "") -> None:
    url = f"{base_url}/accounts/login/" + (f"?next={next_path}" if next_path else "")
    page.goto(url)
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("domcontentloaded")


def wait_for_task(page, *, after: int | None = None) -> int:
    """Wait until a task other than `after` is fully shown; return its assignment id."""
    page.wait_for_function(
        """(previous) => {
            const task = document.getElementById("task");
            return task && !task.hidden && task.dataset.ready === "1"
                && String(task.dataset.taskId) !== String(previous);
        }""",
        arg=after,
    )
    return int(page.get_attribute("#task", "data-task-id"))


def shown_uids(page) -> list[str]:
    return page.eval_on_selector_all("#images img", "imgs => imgs.map(i => i.dataset.uid)")


def wait_until_sent(page) -> None:
    page.wait_for_function("() => window.pickwise && window.pickwise.queueLength() === 0")


def key_for(value: str, assignment: Assignment, *, digits: bool = False) -> str:
    """The key that gives `value` (a uid or 'tie') on this assignment's screen."""
    if value == "tie":
        return "3" if digits else "ArrowDown"
    side = assignment.presented.index(value)
    return ("1" if side == 0 else "2") if digits else ("ArrowLeft" if side == 0 else "ArrowRight")


def gold_answer(assignment: Assignment) -> str | None:
    comparison = Comparison.objects.get(pk=assignment.comparison_id)
    return comparison.gold_answer["overall"] if comparison.gold_answer else None


def wrong_answer(assignment: Assignment) -> str:
    right = gold_answer(assignment)
    if right == assignment.presented[0]:
        return assignment.presented[1]
    return assignment.presented[0]


def key_to_next_median(page) -> float | None:
    times = page.evaluate("() => window.pickwise.metrics.keyToNext")
    return statistics.median(times) if times else None
