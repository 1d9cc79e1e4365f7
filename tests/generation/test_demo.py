"""seed_demo: a campaign whose images show their prompts, and gold a careful person answers."""

import io
import random

import pytest
from django.core.management import call_command

from annotate.models import Campaign, Comparison, Image, Membership, Prompt
from generation.backends.scenes import parse_prompt
from generation.demo import DEMO_GOLD, DEMO_MODELS, DEMO_PROMPTS, demo_prompts
from generation.models import GenerationJob, Generator
from tests.generation.scene_reading import judge, see_bytes, shows

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def _read(image: Image) -> list:
    with image.file.open("rb") as handle:
        return see_bytes(handle.read())


def test_seed_demo_draws_the_prompts_with_three_models_through_a_generation_job():
    printed = _seed()

    campaign = Campaign.objects.get(slug="demo")
    assert campaign.status == Campaign.Status.ACTIVE
    assert f"{DEMO_PROMPTS} prompts, 144 comparisons, {DEMO_GOLD} gold items" in printed
    assert "password: pickwise-demo" in printed
    assert sorted(Generator.objects.values_list("source", flat=True)) == [
        "procedural:careless",
        "procedural:faithful",
        "procedural:sloppy",
    ]
    job = GenerationJob.objects.get(campaign=campaign)
    assert (job.status, job.comparisons_created, job.gold_created) == ("done", 144, 0)
    assert list(campaign.prompts.order_by("id").values_list("text", flat=True)) == demo_prompts()
    generated = Image.objects.filter(prompt__campaign=campaign, source=Image.Source.GENERATED)
    assert generated.count() == 3 * DEMO_PROMPTS
    assert set(generated.values_list("model_name", flat=True)) == set(DEMO_MODELS)
    assert campaign.comparisons.filter(role="regular").count() == 3 * DEMO_PROMPTS
    # The faithful model's images show exactly their prompts, read from the pixels.
    for image in generated.filter(generator__source="procedural:faithful").select_related("prompt"):
        assert shows(parse_prompt(image.prompt.text), _read(image)), image.prompt.text
    states = dict(
        Membership.objects.filter(campaign=campaign).values_list("user__username", "gate_state")
    )
    assert states["annotator1"] == states["annotator2"] == states["annotator3"] == "qualifying"
    assert Membership.objects.get(campaign=campaign, user__username="researcher").role == (
        "researcher"
    )


def test_every_gold_item_is_answerable_by_looking_and_its_answer_is_the_faithful_image():
    _seed()
    campaign = Campaign.objects.get(slug="demo")
    gold = list(campaign.comparisons.filter(role=Comparison.Role.GOLD).select_related("prompt"))
    assert len(gold) == DEMO_GOLD
    # About a fifth of a careful annotator's share of the regular work at most.
    assert 0.2 * 3 * campaign.comparisons.filter(role="regular").count() >= DEMO_GOLD
    for comparison in gold:
        assert comparison.gold_kind == "unfaithful"
        right, wrong = sorted(
            comparison.images.all(),
            key=lambda image: image.source != Image.Source.GENERATED,
        )
        assert comparison.gold_answer == {"overall": str(right.uid)}
        assert right.generator.source == "procedural:faithful"
        assert wrong.source == Image.Source.DERIVED and wrong.params["mistakes"]
        # A careful look (pixels and prompt only) picks the right side, in either order.
        seen_right, seen_wrong = _read(right), _read(wrong)
        assert judge(comparison.prompt.text, seen_right, seen_wrong) == "first"
        assert judge(comparison.prompt.text, seen_wrong, seen_right) == "second"


def test_running_seed_demo_again_changes_nothing():
    _seed()
    counts = (Prompt.objects.count(), Image.objects.count(), Comparison.objects.count())
    again = _seed()
    assert (Prompt.objects.count(), Image.objects.count(), Comparison.objects.count()) == counts
    assert "48 prompts, 144 comparisons, 24 gold items" in again
    assert GenerationJob.objects.count() == 1


def test_a_random_clicker_on_the_demo_is_blocked_within_fifty_answers():
    from annotate.quality.services import rater_evaluate
    from annotate.services.assignments import assignment_next
    from annotate.services.judgments import judgment_submit

    _seed()
    campaign = Campaign.objects.get(slug="demo")
    membership = Membership.objects.get(campaign=campaign, user__username="annotator3")
    rng = random.Random(11)
    answered = 0
    while answered < 50 and membership.gate_state != Membership.Gate.BLOCKED:
        assignment = assignment_next(campaign=campaign, annotator=membership.user)
        answer = rng.choice([*assignment.presented, "tie", "both_bad"])
        judgment_submit(assignment=assignment, answers={"overall": answer}, duration_ms=2500)
        answered += 1
        if answered % 5 == 0:  # the rules a worker runs every few answers
            rater_evaluate(campaign=campaign, user=membership.user)
        membership.refresh_from_db()
    assert membership.gate_state == Membership.Gate.BLOCKED, answered
