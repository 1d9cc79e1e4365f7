"""The demo campaign's content: prompts from the procedural vocabulary, three procedural models
of different faithfulness, and gold a careful person answers by looking.

Images go through a real generation job (the same batch service a generate worker runs), so
the demo shows the whole loop with no download and no GPU. Gold items pair the faithful
model's image with a careless redraw of the same prompt that visibly gets it wrong: a wrong
kind of thing, colour, count or side. The right answer is whatever shows the prompt.
"""

import os
import random
import socket

from django.db import transaction

from annotate.models import Campaign, Comparison, Image
from annotate.services.comparisons import comparisons_create
from annotate.services.images import image_create
from generation.backends import encode_png, scenes
from generation.backends.procedural import draw
from generation.backends.spec import PROCEDURAL_PREFIX
from generation.models import Generator
from generation.services.jobs import generation_job_create
from generation.services.sync import generation_job_run_sync

DEMO_SIZE = 320
# Model name -> faithfulness. The names say nothing about which is best.
DEMO_MODELS = {"sketch-a": "faithful", "sketch-b": "sloppy", "sketch-c": "careless"}
DEMO_PROMPTS = 48
DEMO_GOLD = 24
GOLD_KIND = "unfaithful"
GOLD_SEED = 1_000_000  # redraws for gold use seeds from here, far from the job's
GOLD_TRIES = 64
# Colours that are hard to see on a background are not asked for on it.
HARD_TO_SEE = {("yellow", "cream"), ("yellow", "white"), ("blue", "night"), ("purple", "night")}
# Suns and trees in their own colours, so the prompts read naturally; the rest in any.
NATURAL_COLOURS = {"sun": ("yellow", "orange", "red"), "tree": ("green", "orange")}
COUNT_WEIGHTS = {1: 3, 2: 3, 3: 3, 4: 2, 5: 1}
LAYOUTS = (
    (None,),
    (None,),
    ("centre",),
    ("left", "right"),
    ("left", "right"),
    ("top", "bottom"),
)


def _demo_scene(rng: random.Random) -> scenes.Scene:
    layout = rng.choice(LAYOUTS)
    background = rng.choice(list(scenes.BACKGROUNDS))
    kinds = rng.sample(scenes.KINDS, len(layout))
    groups: list[scenes.Group] = []
    for kind, position in zip(kinds, layout, strict=True):
        colours = [
            colour
            for colour in NATURAL_COLOURS.get(kind, scenes.COLOURS)
            if (colour, background) not in HARD_TO_SEE
            and colour not in {group.colour for group in groups}
        ]
        counts = [1, 2] if position == "centre" else list(COUNT_WEIGHTS)
        weights = [COUNT_WEIGHTS[count] for count in counts]
        groups.append(
            scenes.Group(
                kind=kind,
                colour=rng.choice(colours),
                count=rng.choices(counts, weights)[0],
                position=position,
            )
        )
    return scenes.Scene(groups=tuple(groups), background=background)


def demo_prompts(count: int = DEMO_PROMPTS, *, seed: int = 0) -> list[str]:
    """`count` distinct prompts in the procedural models' vocabulary, the same every time.

    Kinds and colours differ within a prompt, so each thing asked for is told apart by its
    look alone.
    """
    rng = random.Random(f"demo-prompts:{seed}")
    prompts: list[str] = []
    while len(prompts) < count:
        text = _demo_scene(rng).describe()
        if text not in prompts:
            prompts.append(text)
    return prompts


@transaction.atomic
def demo_generators() -> list[Generator]:
    """The three procedural models, created once."""
    generators = []
    for name, faithfulness in DEMO_MODELS.items():
        generator = Generator.objects.filter(name=name).first()
        if generator is None:
            generator = Generator(
                name=name,
                source=PROCEDURAL_PREFIX + faithfulness,
                steps=1,
                guidance=0.0,
                width=DEMO_SIZE,
                height=DEMO_SIZE,
            )
            generator.full_clean()
            generator.save()
        generators.append(generator)
    return generators


def demo_generate(*, campaign: Campaign) -> None:
    """Draw every prompt once per demo model with a real generation job, run here.

    The job makes regular comparisons (every pair of models per prompt) and no automatic
    gold: demo_gold_build adds gold that fits these images.
    """
    job = generation_job_create(
        campaign=campaign, generators=demo_generators(), seeds_per_prompt=1, gold_count=0
    )
    generation_job_run_sync(job=job, worker=f"demo-{os.getpid()}@{socket.gethostname()}")


def _wrong_redraw(prompt: str, *, first_seed: int) -> tuple[int, bytes, dict] | None:
    """The careless model's first redraw from `first_seed` on that visibly misses the prompt."""
    for seed in range(first_seed, first_seed + GOLD_TRIES):
        image, asked, drawn = draw(
            prompt=prompt, faithfulness="careless", seed=seed, width=DEMO_SIZE, height=DEMO_SIZE
        )
        mistakes = scenes.obvious_mistakes(asked, drawn)
        if mistakes:
            params = {"drawn": drawn.describe(), "mistakes": mistakes, "seed": seed}
            return seed, encode_png(image), params
    return None


def _generated_by(campaign: Campaign, faithfulness: str) -> dict[int, Image]:
    """Prompt id -> the image the procedural model of this faithfulness made for it."""
    images = Image.objects.filter(
        prompt__campaign=campaign,
        source=Image.Source.GENERATED,
        generator__source=PROCEDURAL_PREFIX + faithfulness,
    ).select_related("prompt")
    return {image.prompt_id: image for image in images}


@transaction.atomic
def demo_gold_build(*, campaign: Campaign, count: int = DEMO_GOLD) -> list[Comparison]:
    """Up to `count` gold items: a prompt's faithful image against a careless redraw of the
    same prompt that visibly gets it wrong. The faithful image is the right answer."""
    faithful = _generated_by(campaign, "faithful")
    careless = _generated_by(campaign, "careless")
    prompt_ids = sorted(set(faithful) & set(careless))
    random.Random(f"demo-gold:{campaign.pk}").shuffle(prompt_ids)
    key = campaign.criteria[0]["key"]
    created: list[Comparison] = []
    for prompt_id in prompt_ids[:count]:
        right = faithful[prompt_id]
        redraw = _wrong_redraw(right.prompt.text, first_seed=GOLD_SEED + prompt_id * GOLD_TRIES)
        if redraw is None:
            continue
        seed, data, params = redraw
        wrong, _ = image_create(
            prompt=right.prompt,
            data=data,
            source=Image.Source.DERIVED,
            model_name=careless[prompt_id].model_name,
            seed=seed,
            params=params,
            derived_from=careless[prompt_id],
        )
        created += comparisons_create(
            campaign=campaign,
            prompt=right.prompt,
            groups=[[right, wrong]],
            role=Comparison.Role.GOLD,
            gold_answers=[{key: str(right.uid)}],
            gold_kind=GOLD_KIND,
        )
    return created
