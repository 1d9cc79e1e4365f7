"""The simulated raters of bench/: one perception model for every crowd simulation.

bench/consensus_accuracy.py (a numpy world, no database) and bench/simulate_crowd.py (the
real services) both draw their raters' answers from `vote`, so the two benchmarks face the
same crowd.

A rater perceives a pair's utility gap (first minus second, in units where the latent
quality of an image has a standard deviation of about 0.86) through noise that is
correlated per rater and pair: an offset fixed for the (rater, pair), drawn from a generator
seeded by `offset_key`, plus a small fresh draw (variances 0.64 and 0.36 of noise^2, so the
whole has standard deviation `noise`). A rater's repeat of a pair therefore mostly repeats
their earlier perception instead of casting an independent vote. Behaviours:

- honest: noise 0.35 to 0.9, lapses 2% (a lapse answers first, second or tie at random);
- minority_taste: honest, with the gap of style pairs reversed (a legitimate other taste);
- sloppy: noise 1.5 to 2.5, lapses 15%;
- random: first, second or tie at random;
- always_first: the first image on screen (screen order is random per judgment);
- always_tie: tie;
- contrarian: the opposite of what they perceive.

A tie is answered when the perceived gap is below the rater's own threshold (0.05 to 0.3).
"""

from __future__ import annotations

import numpy as np

from exports.consensus_model import FIRST, SECOND, TIE

HONEST_NOISE = (0.35, 0.9)
SLOPPY_NOISE = (1.5, 2.5)
HONEST_LAPSE = 0.02
SLOPPY_LAPSE = 0.15
TIE_THRESHOLD = (0.05, 0.3)
STYLE_SHARE = 0.4  # pairs that turn on style, where a minority taste prefers the other image
# Standard deviations of the fixed and the fresh part, as shares of the rater's noise
# (0.8^2 + 0.6^2 = 1: 64% of the perception noise's variance repeats on every look).
FIXED_SD, FRESH_SD = 0.8, 0.6

MIXTURES = {
    # share of raters per behaviour
    "mostly honest": {
        "honest": 0.70,
        "minority_taste": 0.10,
        "sloppy": 0.10,
        "random": 0.05,
        "always_first": 0.05,
    },
    "adversarial": {
        "honest": 0.45,
        "minority_taste": 0.15,
        "sloppy": 0.10,
        "random": 0.15,
        "always_first": 0.05,
        "always_tie": 0.05,
        "contrarian": 0.05,
    },
}


def vote(
    rng: np.random.Generator,
    *,
    group: str,
    gap: float,
    on_style: bool,
    noise: float,
    lapse: float,
    tie_threshold: float,
    offset_key: list[int],
) -> int:
    """FIRST, SECOND or TIE for a pair whose majority-taste utility gap (first minus second)
    is `gap`. `offset_key` names the (rater, pair): the same key gives the same offset."""
    if group == "random":
        return int(rng.integers(3))
    if group == "always_tie":
        return TIE
    if group == "always_first":  # first on a screen whose order is random per judgment
        return FIRST if rng.random() < 0.5 else SECOND
    if group == "minority_taste" and on_style:
        gap = -gap
    offset = np.random.default_rng(offset_key).normal(0, noise * FIXED_SD)
    perceived = gap + offset + rng.normal(0, noise * FRESH_SD)
    if rng.random() < lapse:
        return int(rng.integers(3))
    if abs(perceived) < tie_threshold:
        return TIE
    outcome = FIRST if perceived > 0 else SECOND
    if group == "contrarian":
        outcome = SECOND if outcome == FIRST else FIRST
    return outcome
