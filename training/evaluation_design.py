"""How big an evaluation campaign is, and how precise a win-rate it can give.

Pure arithmetic (no Django), so the page can show the figures before anything is created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054


def wilson_width(n: int, *, p: float = 0.5, z: float = Z_95) -> float:
    """Width of the Wilson score interval for a proportion p seen in n trials; 1.0 for n=0.

    At p = 0.5 (no preference, the widest case) it is the expected width of a win-rate's
    95% interval from n judgments: about 0.27 at n = 48, 0.20 at n = 96, 0.10 at n = 384.
    """
    if n <= 0:
        return 1.0
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return 2 * spread / (1 + z * z / n)


@dataclass(frozen=True)
class EvaluationDesign:
    prompts: int  # held-out prompts drawn (at most those the export has)
    seeds: int  # images per prompt and model
    comparisons: int  # one base-vs-tuned pair per prompt and seed
    overlap: int  # judgments per comparison, capped by the number of judges
    judgments: int
    interval_width: float  # expected width of the win-rate's 95% interval at 50%
    overlap_capped: bool


def evaluation_design(
    *, available_prompts: int, prompts: int | None, seeds: int, overlap: int, judges: int
) -> EvaluationDesign:
    """The campaign these choices make. Overlap cannot exceed the judges (nobody judges a
    comparison twice), and at least one judgment per comparison is asked for."""
    used = available_prompts if prompts is None else min(prompts, available_prompts)
    capped = max(1, min(overlap, judges)) if judges > 0 else overlap
    comparisons = used * seeds
    judgments = comparisons * capped
    return EvaluationDesign(
        prompts=used,
        seeds=seeds,
        comparisons=comparisons,
        overlap=capped,
        judgments=judgments,
        interval_width=wilson_width(judgments),
        overlap_capped=capped != overlap,
    )
