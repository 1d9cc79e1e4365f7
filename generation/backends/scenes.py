"""Prompts from a small closed vocabulary, the scenes they describe, and drawing them.

    scene = parse_prompt("three red circles on the left and a blue star on the right, at night")
    drawn = scene_as_drawn(scene, faithfulness="sloppy", rng=random.Random(seed))
    image = draw_scene(drawn, width=256, height=256, rng=random.Random(seed))

The vocabulary: counts one to five (or a/an), seven colours, five shapes (circle, square,
triangle, star, heart) and five objects (house, tree, sun, car, fish), the positions left,
right, top, bottom and centre, and a few backgrounds. Each item of a group is drawn inside its
own cell of the group's part of the canvas, so items never touch and every coloured item is one
connected patch of its exact colour (no anti-aliasing): what is asked can be checked by counting.

Pure Python and Pillow: no Django, no torch.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw

COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
NUMBER_NAMES = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
MAX_COUNT = 5
# Saturated colours that stand out from every background below.
COLOURS = {
    "red": (214, 39, 40),
    "orange": (245, 133, 24),
    "yellow": (240, 201, 25),
    "green": (44, 150, 62),
    "blue": (36, 86, 214),
    "purple": (132, 56, 186),
    "pink": (238, 110, 178),
}
COLOUR_ALIASES = {"violet": "purple"}
BACKGROUNDS = {
    "white": (250, 250, 248),
    "grey": (206, 206, 210),
    "cream": (246, 236, 212),
    "sky": (176, 214, 244),
    "night": (24, 28, 60),
}
BACKGROUND_ALIASES = {"gray": "grey"}
DEFAULT_BACKGROUND = "white"
# The parts of objects that are not in the object's colour (roof, trunk, wheels...): fixed
# colours outside COLOURS, so the coloured part of an object is still one patch of its colour.
ROOF = (96, 64, 52)
DOOR = (70, 46, 30)
TRUNK = (124, 82, 44)
WHEEL = (38, 38, 42)
GLASS = (222, 236, 248)
EYE = (252, 252, 252)
PUPIL = (16, 16, 16)

SHAPES = ("circle", "square", "triangle", "star", "heart")
OBJECTS = ("house", "tree", "sun", "car", "fish")
KINDS = SHAPES + OBJECTS
PLURALS = {kind: kind + "s" for kind in KINDS} | {"fish": "fish"}
KIND_WORDS = {word: kind for kind, word in PLURALS.items()} | {kind: kind for kind in KINDS}
KIND_WORDS["fishes"] = "fish"
# What "a sun" is when no colour is named.
DEFAULT_COLOURS = {
    "circle": "red",
    "square": "blue",
    "triangle": "green",
    "star": "yellow",
    "heart": "pink",
    "house": "red",
    "tree": "green",
    "sun": "yellow",
    "car": "blue",
    "fish": "orange",
}
POSITIONS = ("left", "right", "top", "bottom", "centre")
POSITION_WORDS = {
    "left": "left",
    "right": "right",
    "top": "top",
    "bottom": "bottom",
    "centre": "centre",
    "center": "centre",
    "middle": "centre",
}
POSITION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}
OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top", "centre": "centre"}
FAITHFULNESS = ("faithful", "sloppy", "careless")
# How often a model slips: sloppy gets one colour or count wrong; careless draws the wrong
# kind of thing (and sometimes the wrong number or side as well).
SLOPPY_SLIP = 0.5
CARELESS_MISS = 0.75

ERROR_NOTHING_TO_DRAW = (
    "The prompt names nothing these models can draw; use shapes ({shapes}) or objects "
    "({objects}), e.g. 'two red circles on the left'."
)
ERROR_TOO_MANY_GROUPS = "The prompt asks for {count} groups of things; at most {most} fit."
ERROR_FAITHFULNESS = "Unknown faithfulness {value!r}; one of " + ", ".join(FAITHFULNESS) + "."
MAX_GROUPS = 3

_BACKGROUND_PATTERNS = (
    (re.compile(r"\bon an? (\w+) background\b"), None),
    (re.compile(r"\b(?:at|by) night\b"), "night"),
    (re.compile(r"\b(?:in|under) (?:a|the) (?:clear |blue )?sky\b"), "sky"),
)
_CLAUSE_SPLIT = re.compile(r",|;|\band\b|\bwith\b|\bnext to\b|\bbeside\b")


class SceneError(ValueError):
    """A prompt that these models cannot draw; the message says what they can."""


@dataclass(frozen=True)
class Group:
    """`count` things of one kind and colour, at a position (None: anywhere)."""

    kind: str
    colour: str
    count: int = 1
    position: str | None = None

    def describe(self) -> str:
        number = "a" if self.count == 1 else NUMBER_NAMES[self.count]
        if self.count == 1 and self.colour[0] in "aeiou":
            number = "an"
        noun = self.kind if self.count == 1 else PLURALS[self.kind]
        words = [number, self.colour, noun]
        if self.position:
            words.append(POSITION_PHRASES[self.position])
        return " ".join(words)


@dataclass(frozen=True)
class Scene:
    groups: tuple[Group, ...]
    background: str = DEFAULT_BACKGROUND

    def describe(self) -> str:
        text = " and ".join(group.describe() for group in self.groups)
        if self.background == "night":
            return f"{text}, at night"
        if self.background == "sky":
            return f"{text}, under a clear sky"
        if self.background != DEFAULT_BACKGROUND:
            return f"{text}, on a {self.background} background"
        return text


def _background(text: str) -> tuple[str, str]:
    """(background name, the text without its background phrase)."""
    for pattern, name in _BACKGROUND_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        if name is None:
            word = BACKGROUND_ALIASES.get(match.group(1), match.group(1))
            if word not in BACKGROUNDS:
                continue
            name = word
        return name, text[: match.start()] + text[match.end() :]
    return DEFAULT_BACKGROUND, text


def _clause_group(words: list[str]) -> tuple[Group | None, str | None]:
    """The group a clause names, or (None, position) for a clause with only a position."""
    count = colour = kind = position = None
    plural = False
    for word in words:
        if count is None and word in COUNT_WORDS:
            count = COUNT_WORDS[word]
        elif count is None and word.isdigit() and 1 <= int(word) <= MAX_COUNT:
            count = int(word)
        elif colour is None and COLOUR_ALIASES.get(word, word) in COLOURS:
            colour = COLOUR_ALIASES.get(word, word)
        elif kind is None and word in KIND_WORDS:
            kind = KIND_WORDS[word]
            plural = word != kind or word == "fish" and count not in (None, 1)
        elif position is None and word in POSITION_WORDS:
            position = POSITION_WORDS[word]
    if kind is None:
        return None, position
    if count is None:
        count = 3 if plural else 1
    return Group(kind, colour or DEFAULT_COLOURS[kind], count, position), None


def parse_prompt(prompt: str) -> Scene:
    """The scene a prompt describes. Raises SceneError when it names nothing drawable."""
    text = prompt.lower()
    background, text = _background(text)
    groups: list[Group] = []
    for clause in _CLAUSE_SPLIT.split(text):
        group, position = _clause_group(re.findall(r"[a-z]+|\d+", clause))
        if group is not None:
            groups.append(group)
        elif position and groups and groups[-1].position is None:
            # "three red circles, on the left": the position belongs to the clause before.
            groups[-1] = replace(groups[-1], position=position)
    if not groups:
        raise SceneError(
            ERROR_NOTHING_TO_DRAW.format(shapes=", ".join(SHAPES), objects=", ".join(OBJECTS))
        )
    if len(groups) > MAX_GROUPS:
        raise SceneError(ERROR_TOO_MANY_GROUPS.format(count=len(groups), most=MAX_GROUPS))
    return Scene(groups=tuple(groups), background=background)


# --- what a model of each faithfulness draws -----------------------------------------------


def _other(options, current, rng: random.Random):
    return rng.choice([option for option in options if option != current])


def _slip_count(count: int, rng: random.Random) -> int:
    if count == 1:
        return 2
    if count == MAX_COUNT:
        return MAX_COUNT - 1
    return count + rng.choice((-1, 1))


def scene_as_drawn(scene: Scene, *, faithfulness: str, rng: random.Random) -> Scene:
    """The scene a model of this faithfulness draws for a prompt's scene.

    faithful: exactly the scene. sloppy: half the time one group gets a wrong colour or a count
    off by one. careless: three times in four one group becomes another kind of thing, half of
    those with another count as well; and a positioned group lands on the other side at times.
    """
    if faithfulness not in FAITHFULNESS:
        raise ValueError(ERROR_FAITHFULNESS.format(value=faithfulness))
    groups = list(scene.groups)
    if faithfulness == "sloppy" and rng.random() < SLOPPY_SLIP:
        index = rng.randrange(len(groups))
        group = groups[index]
        if rng.random() < 0.5:
            groups[index] = replace(group, colour=_other(COLOURS, group.colour, rng))
        else:
            groups[index] = replace(group, count=_slip_count(group.count, rng))
    elif faithfulness == "careless":
        if rng.random() < CARELESS_MISS:
            index = rng.randrange(len(groups))
            group = groups[index]
            group = replace(group, kind=_other(KINDS, group.kind, rng))
            if rng.random() < 0.5:
                group = replace(group, count=_other(range(1, MAX_COUNT + 1), group.count, rng))
            groups[index] = group
        index = rng.randrange(len(groups))
        position = groups[index].position
        if position and position != "centre" and rng.random() < 0.3:
            groups[index] = replace(groups[index], position=OPPOSITE[position])
    return replace(scene, groups=tuple(groups))


def obvious_mistakes(asked: Scene, drawn: Scene) -> list[str]:
    """What a careful look shows is wrong in `drawn`: wrong things, colours, counts or sides."""
    mistakes = []
    for want, got in zip(asked.groups, drawn.groups, strict=True):
        if want.kind != got.kind:
            mistakes.append(f"{PLURALS[got.kind]} instead of {PLURALS[want.kind]}")
        if want.colour != got.colour:
            mistakes.append(f"{got.colour} instead of {want.colour} {PLURALS[want.kind]}")
        if want.count != got.count:
            mistakes.append(f"{got.count} instead of {want.count} {PLURALS[want.kind]}")
        if want.position != got.position:
            mistakes.append(f"{PLURALS[want.kind]} {got.position} instead of {want.position}")
    return mistakes


# --- layout ----------------------------------------------------------------------------------

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the canvas

NOMINAL_BOXES: dict[str | None, Box] = {
    "left": (0.0, 0.0, 0.5, 1.0),
    "right": (0.5, 0.0, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5),
    "bottom": (0.0, 0.5, 1.0, 1.0),
    "centre": (0.2, 0.2, 0.8, 0.8),
    None: (0.0, 0.0, 1.0, 1.0),
}
MIN_BOX_AREA = 0.12


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _outside(box: Box, other: Box) -> Box:
    """The largest part of `box` beside `other` (left, right, above or below it)."""
    x0, y0, x1, y1 = box
    parts = [
        (x0, y0, min(x1, other[0]), y1),
        (max(x0, other[2]), y0, x1, y1),
        (x0, y0, x1, min(y1, other[1])),
        (x0, max(y0, other[3]), x1, y1),
    ]
    return max(parts, key=_area)


def _halves(box: Box) -> tuple[Box, Box]:
    x0, y0, x1, y1 = box
    if x1 - x0 >= y1 - y0:
        middle = (x0 + x1) / 2
        return (x0, y0, middle, y1), (middle, y0, x1, y1)
    middle = (y0 + y1) / 2
    return (x0, y0, x1, middle), (x0, middle, x1, y1)


def layout_boxes(groups: tuple[Group, ...]) -> list[Box]:
    """One box per group, inside its position's half of the canvas, no two overlapping.

    Positioned groups are placed first; a box that would overlap an earlier one keeps the
    largest part beside it, or, when too little is left, the two share the earlier box.
    """
    boxes: dict[int, Box] = {}
    order = sorted(range(len(groups)), key=lambda index: groups[index].position is None)
    for index in order:
        box = NOMINAL_BOXES[groups[index].position]
        for other_index, other in list(boxes.items()):
            if not _overlaps(box, other):
                continue
            beside = _outside(box, other)
            if _area(beside) >= MIN_BOX_AREA:
                box = beside
            else:
                boxes[other_index], box = _halves(other)
        boxes[index] = box
    return [boxes[index] for index in range(len(groups))]


def _grid(count: int, width: float, height: float) -> tuple[int, int]:
    """(columns, rows) whose square cells are largest for `count` items in width x height."""
    best = (1, count)
    best_side = 0.0
    for columns in range(1, count + 1):
        rows = math.ceil(count / columns)
        side = min(width / columns, height / rows)
        if side > best_side + 1e-9:
            best, best_side = (columns, rows), side
    return best


def item_cells(box_px: Box, count: int) -> list[tuple[float, float, float]]:
    """(centre x, centre y, cell side) for each item, rows filled left to right, the last
    row centred."""
    x0, y0, x1, y1 = box_px
    columns, rows = _grid(count, x1 - x0, y1 - y0)
    side = min((x1 - x0) / columns, (y1 - y0) / rows)
    top = y0 + ((y1 - y0) - rows * side) / 2
    cells = []
    for row in range(rows):
        in_row = min(columns, count - row * columns)
        left = x0 + ((x1 - x0) - in_row * side) / 2
        for column in range(in_row):
            cells.append((left + (column + 0.5) * side, top + (row + 0.5) * side, side))
    return cells


# --- drawing ---------------------------------------------------------------------------------

ITEM_SHARE = 0.74  # an item's size as a share of its cell
MAX_ITEM_SHARE = 0.46  # and at most this share of the canvas, so one thing is not all of it
MARGIN = 0.03


def _regular_polygon(cx, cy, radius, points, *, inner=None, rotation=-math.pi / 2):
    vertices = []
    steps = points * 2 if inner else points
    for step in range(steps):
        r = inner if inner and step % 2 else radius
        angle = rotation + step * 2 * math.pi / steps
        vertices.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return vertices


def _circle(draw, cx, cy, s, colour):
    r = s / 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)


def _square(draw, cx, cy, s, colour):
    r = s * 0.44
    draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)


def _triangle(draw, cx, cy, s, colour):
    r = s / 2
    draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)


def _star(draw, cx, cy, s, colour):
    draw.polygon(_regular_polygon(cx, cy + s * 0.05, s / 2, 5, inner=s * 0.2), fill=colour)


def _heart(draw, cx, cy, s, colour):
    r = s * 0.25
    top = cy - s * 0.22
    draw.ellipse((cx - 2 * r, top - r, cx, top + r), fill=colour)
    draw.ellipse((cx, top - r, cx + 2 * r, top + r), fill=colour)
    # The lower point: tangent-ish lines from the lobes' outer sides down to the tip.
    draw.polygon(
        [(cx - 2 * r + 1, top + r * 0.15), (cx + 2 * r - 1, top + r * 0.15), (cx, cy + s / 2)],
        fill=colour,
    )


def _house(draw, cx, cy, s, colour):
    w, wall = s * 0.8, s * 0.5
    left, right, bottom = cx - w / 2, cx + w / 2, cy + s / 2
    top = bottom - wall
    draw.polygon([(left - s * 0.08, top), (right + s * 0.08, top), (cx, cy - s / 2)], fill=ROOF)
    draw.rectangle((left, top, right, bottom), fill=colour)
    door = s * 0.14
    draw.rectangle((cx - door / 2, bottom - wall * 0.55, cx + door / 2, bottom), fill=DOOR)
    pane = s * 0.12
    for wx in (left + w * 0.2, right - w * 0.2):
        draw.rectangle(
            (wx - pane / 2, top + wall * 0.2, wx + pane / 2, top + wall * 0.2 + pane), fill=GLASS
        )


def _tree(draw, cx, cy, s, colour):
    trunk = s * 0.12
    draw.rectangle((cx - trunk / 2, cy + s * 0.2, cx + trunk / 2, cy + s / 2), fill=TRUNK)
    # A pine: three stacked triangles, wider towards the ground.
    for width, tip, base in ((0.5, -0.5, -0.1), (0.7, -0.3, 0.08), (0.9, -0.1, 0.24)):
        half = width * s / 2
        draw.polygon(
            [(cx, cy + tip * s), (cx + half, cy + base * s), (cx - half, cy + base * s)],
            fill=colour,
        )


def _sun(draw, cx, cy, s, colour):
    r = s * 0.27
    for step in range(8):
        angle = step * math.pi / 4
        end = (cx + s / 2 * math.cos(angle), cy + s / 2 * math.sin(angle))
        draw.line([(cx, cy), end], fill=colour, width=max(2, round(s * 0.07)))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)


def _car(draw, cx, cy, s, colour):
    w = s
    body_top, body_bottom = cy - s * 0.05, cy + s * 0.17
    draw.polygon(
        [
            (cx - w * 0.28, body_top),
            (cx - w * 0.16, cy - s * 0.24),
            (cx + w * 0.18, cy - s * 0.24),
            (cx + w * 0.3, body_top),
        ],
        fill=colour,
    )
    draw.rectangle((cx - w / 2, body_top, cx + w / 2, body_bottom), fill=colour)
    draw.rectangle((cx - w * 0.13, cy - s * 0.19, cx + w * 0.13, body_top - 1), fill=GLASS)
    wheel = s * 0.11
    for wx in (cx - w * 0.3, cx + w * 0.3):
        draw.ellipse((wx - wheel, body_bottom - wheel, wx + wheel, body_bottom + wheel), fill=WHEEL)


def _fish(draw, cx, cy, s, colour):
    body_w, body_h = s * 0.66, s * 0.4
    left = cx - s / 2
    draw.ellipse((left, cy - body_h / 2, left + body_w, cy + body_h / 2), fill=colour)
    tail_x = left + body_w - s * 0.04
    draw.polygon(
        [(tail_x, cy), (cx + s / 2, cy - s * 0.2), (cx + s / 2, cy + s * 0.2)], fill=colour
    )
    eye = s * 0.05
    ex, ey = left + body_w * 0.25, cy - body_h * 0.12
    draw.ellipse((ex - eye, ey - eye, ex + eye, ey + eye), fill=EYE)
    draw.ellipse((ex - eye / 2, ey - eye / 2, ex + eye / 2, ey + eye / 2), fill=PUPIL)


DRAWERS = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "star": _star,
    "heart": _heart,
    "house": _house,
    "tree": _tree,
    "sun": _sun,
    "car": _car,
    "fish": _fish,
}


def draw_scene(scene: Scene, *, width: int, height: int, rng: random.Random) -> Image.Image:
    """The scene as an RGB image; item sizes and places within their cells vary with `rng`."""
    image = Image.new("RGB", (width, height), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    margin = MARGIN * min(width, height)
    largest = MAX_ITEM_SHARE * min(width, height)
    for group, box in zip(scene.groups, layout_boxes(scene.groups), strict=True):
        box_px = (
            box[0] * width + margin,
            box[1] * height + margin,
            box[2] * width - margin,
            box[3] * height - margin,
        )
        for cx, cy, side in item_cells(box_px, group.count):
            size = min(side * ITEM_SHARE, largest) * rng.uniform(0.85, 1.0)
            slack = (side - size) / 2 * 0.8
            x = cx + rng.uniform(-slack, slack)
            y = cy + rng.uniform(-slack, slack)
            DRAWERS[group.kind](draw, x, y, size, COLOURS[group.colour])
    return image
