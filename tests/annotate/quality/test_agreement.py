import krippendorff
import numpy as np
import pytest

from annotate.quality.agreement import (
    Patterns,
    alpha_bootstrap,
    alpha_from_coincidences,
    alpha_package,
    alpha_windows,
    pattern_coincidences,
)


def _patterns(units: list[list[int]], domain: list[int]) -> Patterns:
    counts = np.asarray([[u.count(v) for v in domain] for u in units])
    unique, freq = np.unique(counts, axis=0, return_counts=True)
    return Patterns(domain, unique, freq)


def _own_alpha(patterns: Patterns, level: str) -> float:
    o = (pattern_coincidences(patterns.counts) * patterns.units[:, None, None]).sum(axis=0)
    return alpha_from_coincidences(o, patterns.domain, level)


# L = 0, T = 1, R = 2 in canonical coding.
HAND = [[0, 0, 0], [0, 2], [2, 2, 1], [1, 1]]

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 coders x 12 units.
NAN = np.nan
PUBLISHED = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


def test_alpha_on_the_hand_example_is_0_454545():
    patterns = _patterns(HAND, [0, 1, 2])
    # 5/11 = 0.4545454...: the six printed decimals are within 4.6e-7 of it, float64 within 1e-15.
    assert alpha_package(patterns, "nominal") == pytest.approx(0.454545, abs=1e-6)
    assert _own_alpha(patterns, "nominal") == pytest.approx(0.454545, abs=1e-6)


def test_alpha_on_krippendorffs_published_example():
    units = [[int(v) for v in column if not np.isnan(v)] for column in PUBLISHED.T]
    patterns = _patterns(units, [1, 2, 3, 4, 5])
    assert round(alpha_package(patterns, "nominal"), 3) == 0.743
    assert round(alpha_package(patterns, "ordinal"), 3) == 0.815
    # Two float64 computations of one rational number in another order: about 1e-15 apart, far
    # inside approx's default rel 1e-6, which is still far below the third decimal checked above.
    assert _own_alpha(patterns, "nominal") == pytest.approx(alpha_package(patterns, "nominal"))
    assert _own_alpha(patterns, "ordinal") == pytest.approx(alpha_package(patterns, "ordinal"))
    # The same as the package on the raw reliability matrix.
    reference = krippendorff.alpha(reliability_data=PUBLISHED, level_of_measurement="ordinal")
    assert alpha_package(patterns, "ordinal") == pytest.approx(reference)


def test_alpha_is_undefined_not_nan_when_every_value_is_identical():
    patterns = _patterns([[0, 0], [0, 0, 0]], [0, 1, 2])
    assert alpha_package(patterns, "nominal") is None
    assert _own_alpha(patterns, "nominal") is None


def test_the_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(1)
    units = [[int(v) for v in rng.choice(3, size=3, p=[0.6, 0.1, 0.3])] for _ in range(400)]
    units += [[0, 0, 0]] * 200 + [[2, 2, 2]] * 100
    patterns = _patterns(units, [0, 1, 2])
    estimate = alpha_package(patterns, "nominal")
    low, high = alpha_bootstrap(patterns, "nominal", replicates=500)
    assert low < estimate < high
    assert 0.02 < high - low < 0.3


def test_a_window_that_drops_below_its_trailing_baseline_raises_an_alert():
    good = [[0, 0, 0], [2, 2, 2], [0, 0, 2], [2, 2, 0]] * 50  # alpha about 0.33
    noisy = [[0, 2, 1], [2, 0, 1], [0, 2, 2], [2, 0, 0]] * 50  # alpha below 0
    counts = np.asarray([[u.count(v) for v in (0, 1, 2)] for u in good + noisy])
    windows = alpha_windows(
        counts, list(range(len(counts))), [0, 1, 2], window=100, drop=0.05, trailing=5
    )
    assert [w["alert"] for w in windows] == [False, False, True, True]
    # The baseline pools windows 0 and 1, which hold the same units: it differs from window 0's
    # alpha only by alpha's small-sample factor (n - 1 values pairable with each of n): with
    # n = 300 values per window, 1 - alpha grows by (2n - 1) / (2n - 2) when pooled. Exact up to
    # float64 rounding (approx's default).
    n = 300
    pooled = 1 - (1 - windows[0]["alpha"]) * (2 * n - 1) / (2 * n - 2)
    assert windows[2]["baseline"] == pytest.approx(pooled)
