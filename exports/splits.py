"""Splitting by prompt: no caption is in two of train, validation and test.

Deterministic from the seed: captions are sorted, shuffled with a generator seeded from the
export seed, and the first ones go to validation, then test, the rest to train.
"""

import math
import random
from collections.abc import Iterable
from typing import Any

from pickwise.errors import ApplicationError

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS_NOT_AN_OBJECT = "splits must be an object with validation, test and max_prompts."
SPLITS_UNKNOWN_KEYS = "splits has unknown keys: {keys}."
SPLITS_BAD_FRACTION = "splits.{key} must be a fraction of prompts between 0 and 0.5."
SPLITS_BAD_CAP = "splits.max_prompts must be a whole number from 0 to 1000000."
DEFAULTS = {"validation": 0.05, "test": 0.05, "max_prompts": 500}


def splits_from_dict(data: Any) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ApplicationError(SPLITS_NOT_AN_OBJECT, code="invalid")
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise ApplicationError(SPLITS_UNKNOWN_KEYS.format(keys=", ".join(unknown)), code="invalid")
    settings = {**DEFAULTS, **data}
    for key in ("validation", "test"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 0.5:
            raise ApplicationError(SPLITS_BAD_FRACTION.format(key=key), code="invalid")
        settings[key] = float(value)
    cap = settings["max_prompts"]
    if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= 1_000_000:
        raise ApplicationError(SPLITS_BAD_CAP, code="invalid")
    return settings


def caption_splits(*, captions: Iterable[str], seed: int, settings: dict) -> dict[str, str]:
    """Split per caption. Validation and test take ceil(fraction * prompts), capped, and never
    the last prompt: train keeps at least one while there is one."""
    ordered = sorted(set(captions))
    random.Random(f"pickwise-splits:{seed}").shuffle(ordered)
    n = len(ordered)
    cap = settings["max_prompts"]
    n_validation = min(cap, math.ceil(settings["validation"] * n), max(0, n - 1))
    n_test = min(cap, math.ceil(settings["test"] * n), max(0, n - 1 - n_validation))
    split = {}
    for position, caption in enumerate(ordered):
        if position < n_validation:
            split[caption] = VALIDATION
        elif position < n_validation + n_test:
            split[caption] = TEST
        else:
            split[caption] = TRAIN
    return split
