"""From a judgment's answer to ranks per image and to pairwise preference rows.

Images are in the comparison's canonical order (ascending image id). A pairwise answer is a
winner uid, "tie" or "both_bad"; a ranking is tiers of uids, best first. Ranks are dense:
1 for the best tier, equal ranks are ties. A ranking of k images gives k(k-1)/2 pairs.
"""

from itertools import combinations

from annotate.criteria import BOTH_BAD, TIE

MASK64 = (1 << 64) - 1
# Rows per judgment never exceed 9*8/2 = 36, so judgment id * 64 + pair index is unique.
PAIR_ID_STRIDE = 64


def answer_ranks(*, answer: object, uids: list[str]) -> list[int] | None:
    """Rank per image (1 = best), or None when the answer is not a preference (both_bad,
    missing, or not about these images)."""
    if isinstance(answer, str):
        if answer == BOTH_BAD or len(uids) != 2:
            return None
        if answer == TIE:
            return [1, 1]
        if answer == uids[0]:
            return [1, 2]
        if answer == uids[1]:
            return [2, 1]
        return None
    if isinstance(answer, list):
        tier_of: dict[str, int] = {}
        for position, tier in enumerate(answer, start=1):
            if not isinstance(tier, list):
                return None
            for uid in tier:
                tier_of[uid] = position
        if len(tier_of) != len(uids) or any(uid not in tier_of for uid in uids):
            return None
        return [tier_of[uid] for uid in uids]
    return None


def answer_pair_counts(answer: object) -> tuple[int, int] | None:
    """(pairs, tied pairs) an answer gives, without knowing the images; None if no preference."""
    if isinstance(answer, str):
        if answer == BOTH_BAD:
            return None
        return 1, int(answer == TIE)
    if isinstance(answer, list) and answer and all(isinstance(t, list) for t in answer):
        k = sum(len(tier) for tier in answer)
        ties = sum(len(tier) * (len(tier) - 1) // 2 for tier in answer)
        return k * (k - 1) // 2, ties
    return None


_PAIRWISE = {
    (1, 2): [(0, 0, 1, 1.0)],
    (2, 1): [(0, 0, 1, 0.0)],
    (1, 1): [(0, 0, 1, 0.5)],
}


def rank_pairs(ranks: list[int]) -> list[tuple[int, int, int, float]]:
    """(pair index, image a, image b, label of a) for a < b; label 1.0 a wins, 0.0 b, 0.5 tie."""
    if len(ranks) == 2:
        return _PAIRWISE[ranks[0], ranks[1]]  # the common case, without building anything
    pairs = []
    for index, (a, b) in enumerate(combinations(range(len(ranks)), 2)):
        if ranks[a] < ranks[b]:
            label = 1.0
        elif ranks[a] > ranks[b]:
            label = 0.0
        else:
            label = 0.5
        pairs.append((index, a, b, label))
    return pairs


def mix64(seed: int, key: int) -> int:
    """splitmix64 of seed and key: a well-spread 64-bit value, the same on every machine."""
    z = (seed * 0x9E3779B97F4A7C15 + key + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def coin(seed: int, key: int) -> bool:
    """A seeded fair coin per row: the same row gets the same side in every export with the
    same seed, whatever else the export holds."""
    return bool(mix64(seed, key) & 1)


def seeded_order(seed: int, key: int, count: int) -> list[int]:
    """A seeded permutation of range(count) for row `key`."""
    return sorted(range(count), key=lambda i: mix64(seed, key * PAIR_ID_STRIDE + i))
