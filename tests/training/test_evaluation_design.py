"""The evaluation campaign's size and the win-rate interval it can give, before creating it."""

import math

import pytest

from training.evaluation_design import evaluation_design, wilson_width


def wilson_interval(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    # Written out from the formula, independently of the code under test.
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


@pytest.mark.parametrize("n", [1, 3, 10, 48, 96, 384, 10_000])
def test_the_width_is_the_wilson_intervals_at_one_half(n):
    low, high = wilson_interval(0.5, n)
    assert wilson_width(n) == pytest.approx(high - low)


def test_known_widths_and_the_empty_case():
    assert round(wilson_width(96), 3) == 0.196
    assert round(wilson_width(384), 3) == 0.100  # the classic +-5% needs about 384
    assert wilson_width(0) == 1.0
    # Four times the judgments, about half the width.
    assert wilson_width(1600) / wilson_width(400) == pytest.approx(0.5, rel=0.01)


def test_overlap_is_capped_by_the_judges_and_prompts_by_what_the_export_holds():
    design = evaluation_design(available_prompts=12, prompts=20, seeds=2, overlap=5, judges=3)
    assert (design.prompts, design.comparisons, design.overlap) == (12, 24, 3)
    assert design.judgments == 72 and design.overlap_capped
    assert design.interval_width == pytest.approx(wilson_width(72))

    all_prompts = evaluation_design(
        available_prompts=12, prompts=None, seeds=1, overlap=2, judges=4
    )
    assert (all_prompts.prompts, all_prompts.overlap, all_prompts.overlap_capped) == (12, 2, False)


def test_without_judges_yet_the_asked_overlap_stands():
    design = evaluation_design(available_prompts=5, prompts=5, seeds=1, overlap=3, judges=0)
    assert (design.overlap, design.judgments, design.overlap_capped) == (3, 15, False)
