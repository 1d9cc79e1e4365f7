"""Looking at a drawn scene as a careful person would: what things, of which colour, how
many and where, read from the pixels alone (never from how the image was made).

Each thing is one connected patch of a vocabulary colour; its kind is the reference outline
(drawn once per kind) it overlaps best. The browser test's careful annotator and the drawing
tests use the same eyes.
"""

from __future__ import annotations

import functools
import io
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from generation.backends.scenes import COLOURS, DRAWERS, KINDS, Group, Scene, parse_prompt

OUTLINE = 32  # outlines are compared on this grid
MIN_PIXELS = 20  # smaller patches are specks, not things


@dataclass(frozen=True)
class Thing:
    colour: str
    kind: str
    x: float  # centre, as a share of the width
    y: float


def _outline(mask: np.ndarray) -> np.ndarray:
    """The patch scaled so its longer side fills the grid, centred, aspect kept."""
    rows, columns = np.nonzero(mask)
    patch = mask[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    height, width = patch.shape
    scale = OUTLINE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(patch.astype(np.uint8) * 255).resize(size, Image.BILINEAR)
    grid = Image.new("L", (OUTLINE, OUTLINE), 0)
    grid.paste(small, ((OUTLINE - size[0]) // 2, (OUTLINE - size[1]) // 2))
    return np.asarray(grid) > 127


@functools.cache
def _references() -> dict[str, np.ndarray]:
    references = {}
    for kind in KINDS:
        image = Image.new("RGB", (160, 160), (255, 255, 255))
        DRAWERS[kind](ImageDraw.Draw(image), 80, 80, 120, (255, 0, 0))
        references[kind] = _outline(np.all(np.asarray(image) == (255, 0, 0), axis=-1))
    return references


def _kind_of(mask: np.ndarray) -> str:
    outline = _outline(mask)
    scores = {
        kind: (outline & reference).sum() / max(1, (outline | reference).sum())
        for kind, reference in _references().items()
    }
    return max(scores, key=scores.get)


def see(image: Image.Image) -> list[Thing]:
    pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    things = []
    for colour, rgb in COLOURS.items():
        mask = np.all(pixels == rgb, axis=-1)
        if not mask.any():
            continue
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        for label in range(1, count + 1):
            patch = labels == label
            if patch.sum() < MIN_PIXELS:
                continue
            rows, columns = np.nonzero(patch)
            things.append(
                Thing(
                    colour=colour,
                    kind=_kind_of(patch),
                    x=float(columns.mean()) / width,
                    y=float(rows.mean()) / height,
                )
            )
    return things


def see_bytes(data: bytes) -> list[Thing]:
    with Image.open(io.BytesIO(data)) as image:
        return see(image)


def in_place(thing: Thing, position: str | None) -> bool:
    if position == "left":
        return thing.x < 0.5
    if position == "right":
        return thing.x > 0.5
    if position == "top":
        return thing.y < 0.5
    if position == "bottom":
        return thing.y > 0.5
    if position == "centre":
        return 0.2 < thing.x < 0.8 and 0.2 < thing.y < 0.8
    return True


def group_shown(group: Group, things: list[Thing]) -> bool:
    """The group's things are there, as many as asked, where asked."""
    mine = [t for t in things if (t.colour, t.kind) == (group.colour, group.kind)]
    return len(mine) == group.count and all(in_place(t, group.position) for t in mine)


def shows(scene: Scene, things: list[Thing]) -> bool:
    """Exactly the scene: every group shown and nothing else drawn."""
    asked = Counter({(g.colour, g.kind): g.count for g in scene.groups})
    seen = Counter((t.colour, t.kind) for t in things)
    return seen == asked and all(group_shown(g, things) for g in scene.groups)


def fit(scene: Scene, things: list[Thing]) -> tuple[int, bool]:
    """(groups shown right, and whether the whole picture is exactly the scene)."""
    return sum(group_shown(g, things) for g in scene.groups), shows(scene, things)


def judge(prompt: str, first: list[Thing], second: list[Thing]) -> str:
    """'first', 'second', 'tie' (both show the prompt) or 'both_bad' (neither fits better)."""
    scene = parse_prompt(prompt)
    a, b = fit(scene, first), fit(scene, second)
    if a == b:
        return "tie" if a[1] else "both_bad"
    return "first" if a > b else "second"
