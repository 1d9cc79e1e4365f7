"""Procedural "models" that draw a prompt's scene with Pillow: a demo that needs no download.

A generator whose source is ``procedural:faithful``, ``procedural:sloppy`` or
``procedural:careless`` is made here instead of by diffusers (see
``generation.backends.backend_for``). Each parses the prompt (``scenes.parse_prompt``), makes
its own kind of mistakes (``scenes.scene_as_drawn``) and draws the result. The image depends
only on (faithfulness, prompt, seed, size): a retried task redraws the same pixels.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence

import PIL

from . import scenes
from .images import GeneratedImage
from .options import BackendOptions
from .spec import GeneratorSpec, procedural_faithfulness, validate_spec

ERROR_NOT_PROCEDURAL = "{source} is not a procedural source (procedural:faithful, ...)."
ERROR_BAD_PROMPT = "Prompts must be text, got {value!r}."
ERROR_BAD_SEED = "Seeds must be whole numbers from 0 up, got {value!r}."


def draw(*, prompt: str, faithfulness: str, seed: int, width: int, height: int):
    """(image, the scene asked for, the scene drawn) for one prompt and seed.

    Raises scenes.SceneError when the prompt names nothing these models can draw.
    """
    asked = scenes.parse_prompt(prompt)
    return _draw(asked, prompt=prompt, faithfulness=faithfulness, seed=seed, size=(width, height))


def _draw(asked: scenes.Scene, *, prompt: str, faithfulness: str, seed: int, size):
    # Separate streams: how a model errs does not shift where things land, and the other way.
    drawn = scenes.scene_as_drawn(
        asked, faithfulness=faithfulness, rng=random.Random(f"slip:{faithfulness}:{seed}:{prompt}")
    )
    image = scenes.draw_scene(
        drawn,
        width=size[0],
        height=size[1],
        rng=random.Random(f"layout:{faithfulness}:{seed}:{prompt}"),
    )
    return image, asked, drawn


def _draw_item(prompt: str, *, faithfulness: str, seed: int, spec: GeneratorSpec):
    """(image, metadata) for one item. A prompt outside the vocabulary gets an empty canvas,
    as a real model returns some picture for any prompt; the metadata says why."""
    try:
        asked = scenes.parse_prompt(prompt)
    except scenes.SceneError as error:
        empty = scenes.Scene(groups=())
        image = scenes.draw_scene(empty, width=spec.width, height=spec.height, rng=random.Random(0))
        return image, {"asked": "", "drawn": "", "mistakes": [], "unreadable": str(error)}
    image, asked, drawn = _draw(
        asked, prompt=prompt, faithfulness=faithfulness, seed=seed, size=(spec.width, spec.height)
    )
    described = {
        "asked": asked.describe(),
        "drawn": drawn.describe(),
        "mistakes": scenes.obvious_mistakes(asked, drawn),
    }
    return image, described


def generate_batch(
    spec: GeneratorSpec,
    items: Iterable[Sequence],
    *,
    options: BackendOptions | None = None,
    cache=None,
) -> list[GeneratedImage]:
    """Images for (prompt, negative_prompt, seed) items, in order; the diffusers backend's
    signature, so a worker runs either the same way. Negative prompts are ignored.

    Raises SpecError for a bad spec and ValueError for a malformed item.
    """
    del options, cache  # nothing to load, nothing to batch
    validate_spec(spec)
    faithfulness = procedural_faithfulness(spec.source)
    if faithfulness is None:
        raise ValueError(ERROR_NOT_PROCEDURAL.format(source=spec.source))
    items = list(items)
    for prompt, _, seed in items:
        if not isinstance(prompt, str):
            raise ValueError(ERROR_BAD_PROMPT.format(value=prompt))
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(ERROR_BAD_SEED.format(value=seed))
    made = []
    for prompt, negative_prompt, seed in items:
        started = time.perf_counter()
        image, described = _draw_item(prompt, faithfulness=faithfulness, seed=seed, spec=spec)
        made.append(
            GeneratedImage(
                image=image,
                prompt=prompt,
                negative_prompt=negative_prompt or "",
                seed=seed,
                metadata={
                    "generator": spec.name,
                    "source": spec.source,
                    "pipeline": "procedural",
                    "faithfulness": faithfulness,
                    "prompt": prompt,
                    "negative_prompt": negative_prompt or "",
                    "seed": seed,
                    "width": spec.width,
                    "height": spec.height,
                    **described,
                    "seconds_per_image": time.perf_counter() - started,
                    "pillow_version": PIL.__version__,
                },
            )
        )
    return made
