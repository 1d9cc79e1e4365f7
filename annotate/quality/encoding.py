"""Canonical encoding of judgments into rating units (specs/quality.md, "Encoding").

Pure functions, no database. A pairwise unit is the unordered image pair in canonical
order (lower image id = lo): value 0 lo better, 1 tie, 2 hi better, 3 both_bad (kept out
of alpha). Never code raw left/right clicks: with random sides and perfect agreement that
gives alpha about 0, the canonical code gives 1.

A ranking yields one rank unit per image (value = 2 x mid-rank, an integer) and its
k(k-1)/2 derived canonical pairs.
"""

from dataclasses import dataclass
from itertools import combinations
from typing import Any

from annotate.criteria import BOTH_BAD, TIE

LO, TIE_VALUE, HI, BOTH_BAD_VALUE = 0, 1, 2, 3
PAIR, RANK, DERIVED = 0, 1, 2

# Judgment durations are counted in buckets a quarter-octave wide from 100 ms up.
SPEED_EDGES_MS = [round(100 * 2 ** (i / 4)) for i in range(1, 48)]


@dataclass(frozen=True)
class Unit:
    kind: int
    lo: int  # image id (the image itself for a rank unit)
    hi: int | None
    value: int
    side: int  # +1 lo shown before hi, -1 after, 0 for rank units


def pair_value(*, answer: str, lo_uid: str, hi_uid: str) -> int:
    """0 lo better, 1 tie, 2 hi better, 3 both bad."""
    if answer == TIE:
        return TIE_VALUE
    if answer == BOTH_BAD:
        return BOTH_BAD_VALUE
    if answer == lo_uid:
        return LO
    if answer == hi_uid:
        return HI
    raise ValueError(f"answer {answer!r} names neither image")


def mid_ranks(tiers: list[list[str]]) -> dict[str, float]:
    """Rank 1 = best; tied images share the mean of the ranks they span."""
    ranks: dict[str, float] = {}
    position = 1
    for tier in tiers:
        shared = position + (len(tier) - 1) / 2
        for uid in tier:
            ranks[uid] = shared
        position += len(tier)
    return ranks


def encode_answer(
    *, answer: Any, images: list[tuple[int, str]], presented: list[str]
) -> list[Unit]:
    """Units for one criterion's answer. `images` = (id, uid) pairs in canonical order."""
    screen = {uid: index for index, uid in enumerate(presented)}
    if len(images) == 2 and isinstance(answer, str):
        (lo_id, lo_uid), (hi_id, hi_uid) = images
        side = 1 if screen[lo_uid] < screen[hi_uid] else -1
        value = pair_value(answer=answer, lo_uid=lo_uid, hi_uid=hi_uid)
        return [Unit(PAIR, lo_id, hi_id, value, side)]
    ranks = mid_ranks(answer)
    units = [Unit(RANK, image_id, None, round(2 * ranks[uid]), 0) for image_id, uid in images]
    for (lo_id, lo_uid), (hi_id, hi_uid) in combinations(images, 2):
        if ranks[lo_uid] < ranks[hi_uid]:
            value = LO
        elif ranks[lo_uid] > ranks[hi_uid]:
            value = HI
        else:
            value = TIE_VALUE
        side = 1 if screen[lo_uid] < screen[hi_uid] else -1
        units.append(Unit(DERIVED, lo_id, hi_id, value, side))
    return units


def position_score(units: list[Unit]) -> int:
    """Earlier-shown preferred minus later-shown preferred, over the judgment's pairs.

    For a pair it is +1 (left chosen), -1 (right) or 0 (tie, both bad). Sides are random, so
    its mean is 0 for any rater who looks at the images.
    """
    return sum(
        u.side * (1 - u.value) for u in units if u.kind != RANK and u.value != BOTH_BAD_VALUE
    )


def speed_bucket(milliseconds: int) -> int:
    """Index of the duration bucket; edges in SPEED_EDGES_MS."""
    low, high = 0, len(SPEED_EDGES_MS)
    while low < high:
        middle = (low + high) // 2
        if milliseconds < SPEED_EDGES_MS[middle]:
            high = middle
        else:
            low = middle + 1
    return low


def speed_median_ms(hist: list[int]) -> float | None:
    """The median duration read off a bucket histogram (geometric bucket middle)."""
    total = sum(hist)
    if total == 0:
        return None
    seen = 0
    for index, count in enumerate(hist):
        seen += count
        if 2 * seen >= total:
            low = SPEED_EDGES_MS[index - 1] if index > 0 else 70
            high = SPEED_EDGES_MS[index] if index < len(SPEED_EDGES_MS) else low * 1.19
            return (low * high) ** 0.5
    return None


def judgment_ms(*, duration_ms: int | None, server_ms: int) -> int:
    """The client's time when it is plausible; it may not claim more than the server saw."""
    if duration_ms is None:
        return server_ms
    return min(duration_ms, server_ms)
