"""Prompts to scenes, and scenes drawn so that what was asked can be counted in the pixels."""

import random
from collections import Counter

import numpy as np
import pytest
from scipy import ndimage

from generation.backends.scenes import (
    COLOURS,
    FAITHFULNESS,
    KINDS,
    Group,
    Scene,
    SceneError,
    draw_scene,
    layout_boxes,
    obvious_mistakes,
    parse_prompt,
    scene_as_drawn,
)
from generation.demo import demo_prompts
from tests.generation.scene_reading import see, shows


def _patches(image, colour: str) -> list[tuple[float, float]]:
    """Centres (as shares of width and height) of the connected patches of one colour."""
    pixels = np.asarray(image)
    mask = np.all(pixels == COLOURS[colour], axis=-1)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    centres = ndimage.center_of_mass(mask, labels, range(1, count + 1))
    height, width = mask.shape
    return [(x / width, y / height) for y, x in centres]


def test_it_parses_counts_colours_kinds_positions_and_the_background():
    scene = parse_prompt("Three red circles on the left and a blue star on the right, at night")
    assert scene == Scene(
        groups=(Group("circle", "red", 3, "left"), Group("star", "blue", 1, "right")),
        background="night",
    )
    assert parse_prompt(
        "five fish at the bottom with an orange sun at the top, on a grey background"
    ) == Scene(
        groups=(Group("fish", "orange", 5, "bottom"), Group("sun", "orange", 1, "top")),
        background="grey",
    )
    assert parse_prompt("2 green houses in the center under a clear sky") == Scene(
        groups=(Group("house", "green", 2, "centre"),), background="sky"
    )


def test_unnamed_colours_and_counts_take_the_defaults():
    assert parse_prompt("a sun").groups == (Group("sun", "yellow", 1, None),)
    assert parse_prompt("trees").groups == (Group("tree", "green", 3, None),)
    assert parse_prompt("an orange fish").groups == (Group("fish", "orange", 1, None),)
    # A position in its own clause belongs to the thing before it.
    assert parse_prompt("four pink hearts, on the right").groups == (
        Group("heart", "pink", 4, "right"),
    )


def test_it_refuses_prompts_it_cannot_draw_with_a_sentence_that_says_what_it_can():
    with pytest.raises(SceneError, match="names nothing these models can draw.*circle"):
        parse_prompt("an astronaut riding a horse on the moon")
    with pytest.raises(SceneError, match="4 groups of things; at most 3"):
        parse_prompt("a circle, a square, a star and a heart")


def test_descriptions_read_back_as_the_same_scene():
    for prompt in demo_prompts():
        scene = parse_prompt(prompt)
        assert scene.describe() == prompt
        assert parse_prompt(scene.describe()) == scene


def test_counts_colours_and_sides_are_really_drawn():
    scene = parse_prompt("three red circles on the left and two blue stars on the right")
    for seed in range(5):
        image = draw_scene(scene, width=320, height=320, rng=random.Random(seed))
        red, blue = _patches(image, "red"), _patches(image, "blue")
        assert len(red) == 3 and all(x < 0.5 for x, _ in red)
        assert len(blue) == 2 and all(x > 0.5 for x, _ in blue)
        assert all(
            not _patches(image, colour) for colour in COLOURS if colour not in ("red", "blue")
        )
    top_bottom = parse_prompt("a yellow sun at the top and four green trees at the bottom")
    image = draw_scene(top_bottom, width=256, height=256, rng=random.Random(7))
    assert [y < 0.5 for _, y in _patches(image, "yellow")] == [True]
    assert len(_patches(image, "green")) == 4
    assert all(y > 0.5 for _, y in _patches(image, "green"))


@pytest.mark.parametrize("faithfulness", FAITHFULNESS)
def test_every_demo_prompt_is_drawn_as_the_model_meant_to_draw_it(faithfulness):
    for index, prompt in enumerate(demo_prompts()):
        asked = parse_prompt(prompt)
        drawn = scene_as_drawn(asked, faithfulness=faithfulness, rng=random.Random(index))
        image = draw_scene(drawn, width=320, height=320, rng=random.Random(index))
        assert shows(drawn, see(image)), (prompt, drawn.describe(), see(image))


def test_things_of_every_kind_are_told_apart_at_every_size():
    for count in (1, 3, 5):
        for kind in KINDS:
            scene = Scene(groups=(Group(kind, "purple", count, "left"),), background="grey")
            image = draw_scene(scene, width=256, height=256, rng=random.Random(count))
            assert Counter((t.kind, t.colour) for t in see(image)) == {(kind, "purple"): count}


def test_the_same_seed_draws_the_same_pixels():
    scene = parse_prompt("two red cars on the left and a green tree on the right")
    first = draw_scene(scene, width=128, height=128, rng=random.Random(3))
    again = draw_scene(scene, width=128, height=128, rng=random.Random(3))
    other = draw_scene(scene, width=128, height=128, rng=random.Random(4))
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_group_boxes_stay_in_their_halves_and_never_overlap():
    groups = (
        Group("circle", "red", 2, "left"),
        Group("star", "blue", 1, "top"),
        Group("fish", "pink", 1, None),
    )
    left, top, anywhere = layout_boxes(groups)
    assert left[2] <= 0.5 and top[3] <= 0.5
    boxes = [left, top, anywhere]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    # Two groups on one side share it.
    first, second = layout_boxes(
        (Group("circle", "red", 1, "left"), Group("star", "blue", 1, "left"))
    )
    assert first[2] <= 0.5 and second[2] <= 0.5 and first != second


def _mistake_rates(faithfulness: str) -> Counter:
    rates = Counter()
    for index, prompt in enumerate(demo_prompts() * 8):
        asked = parse_prompt(prompt)
        drawn = scene_as_drawn(asked, faithfulness=faithfulness, rng=random.Random(index))
        for want, got in zip(asked.groups, drawn.groups, strict=True):
            for field in ("kind", "colour", "count", "position"):
                rates[field] += getattr(want, field) != getattr(got, field)
        rates["wrong"] += bool(obvious_mistakes(asked, drawn))
        rates["all"] += 1
    return rates


def test_faithful_never_errs_sloppy_slips_on_colour_or_count_careless_draws_other_things():
    faithful, sloppy, careless = (_mistake_rates(f) for f in FAITHFULNESS)
    assert faithful["wrong"] == 0
    assert sloppy["kind"] == sloppy["position"] == 0
    assert sloppy["colour"] > 0 and sloppy["count"] > 0
    assert 0.35 < sloppy["wrong"] / sloppy["all"] < 0.65
    assert careless["kind"] / careless["all"] > 0.6
    assert careless["wrong"] / careless["all"] > 0.7


def test_an_unknown_faithfulness_is_refused():
    with pytest.raises(ValueError, match="Unknown faithfulness 'perfect'"):
        scene_as_drawn(parse_prompt("a sun"), faithfulness="perfect", rng=random.Random(0))
