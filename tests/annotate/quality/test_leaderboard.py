"""The Bradley-Terry leaderboard against closed forms and an independent fit.

Scale under test: centred natural log-strengths, ties count half a win each way, and every
pair of models carries PRIOR_TIES virtual ties (so a model that never loses stays finite).
"""

import subprocess
import sys
from itertools import combinations

import numpy as np
import pytest

from annotate.quality.encoding import HI, LO, TIE_VALUE
from annotate.quality.leaderboard import PRIOR_TIES, bradley_terry_board
from annotate.quality.selectors import model_leaderboard
from tests.annotate.quality.crowd import models_of, run_crowd
from tests.factories import annotator, campaign_with_comparisons


def _two_model_closed_form(wins: float, ties: float, losses: float) -> float:
    """theta_a - mean = half the log of a's effective wins over b's, prior included."""
    half_prior = PRIOR_TIES / 2
    return 0.5 * np.log((wins + ties / 2 + half_prior) / (losses + ties / 2 + half_prior))


def _mm_fit(cells: list[tuple[str, str, int, int]], models: list[str]) -> dict[str, float]:
    """Hunter's (2004) MM algorithm for Bradley-Terry, written out independently:
    p_i <- W_i / sum_j n_ij / (p_i + p_j), with ties and the prior as half wins."""
    k = len(models)
    at = {m: i for i, m in enumerate(models)}
    wins = np.zeros((k, k))  # wins[i, j]: (effective) wins of i over j
    for lo, hi, value, n in cells:
        i, j = at[lo], at[hi]
        if value == LO:
            wins[i, j] += n
        elif value == HI:
            wins[j, i] += n
        else:
            wins[i, j] += n / 2
            wins[j, i] += n / 2
    for i, j in combinations(range(k), 2):
        wins[i, j] += PRIOR_TIES / 2
        wins[j, i] += PRIOR_TIES / 2
    games = wins + wins.T
    p = np.ones(k)
    for _ in range(100_000):
        new = wins.sum(axis=1) / (games / (p[:, None] + p[None, :])).sum(axis=1)
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - p)) < 1e-12:
            break
        p = new
    logs = np.log(new)
    return dict(zip(models, logs - logs.mean(), strict=True))


def _by_model(board: list[dict]) -> dict[str, dict]:
    return {row["model"]: row for row in board}


def test_two_models_match_half_the_log_of_wins_over_losses_with_the_loser_first_by_name():
    # "a" sorts first by name but loses more: its score must be negative, like its record.
    cells = [("a", "b", LO, 70), ("a", "b", HI, 87)]
    board = bradley_terry_board(cells, replicates=200)
    rows = _by_model(board)
    assert [row["model"] for row in board] == ["b", "a"]
    assert rows["a"]["score"] == pytest.approx(_two_model_closed_form(70, 0, 87), abs=1e-6)
    assert rows["b"]["score"] == pytest.approx(_two_model_closed_form(87, 0, 70), abs=1e-6)
    assert (rows["a"]["wins"], rows["a"]["losses"]) == (70, 87)
    for row in board:
        assert row["low"] <= row["score"] <= row["high"]
    assert rows["a"]["score"] < 0 < rows["b"]["score"]


def test_two_models_with_ties_count_each_tie_as_half_a_win():
    cells = [("x", "y", LO, 12), ("x", "y", TIE_VALUE, 10), ("x", "y", HI, 3)]
    rows = _by_model(bradley_terry_board(cells, replicates=50))
    assert rows["x"]["score"] == pytest.approx(_two_model_closed_form(12, 10, 3), abs=1e-6)
    assert rows["x"]["ties"] == rows["y"]["ties"] == 10
    assert rows["x"]["low"] <= rows["x"]["score"] <= rows["x"]["high"]


def test_a_model_that_never_loses_gets_a_finite_score_from_the_prior():
    # Without the prior the maximum-likelihood score is infinite; with it, closed form.
    rows = _by_model(bradley_terry_board([("p", "q", HI, 20)], replicates=50))
    expected = _two_model_closed_form(20, 0, 0)
    assert np.isfinite(expected)
    assert rows["q"]["score"] == pytest.approx(expected, abs=1e-6)
    assert rows["p"]["score"] == pytest.approx(-expected, abs=1e-6)
    assert rows["q"]["low"] <= rows["q"]["score"] <= rows["q"]["high"]


def test_four_models_match_an_independent_mm_fit_with_ties_and_an_unbeaten_model():
    cells = [
        ("dd", "aa", LO, 9),  # dd never loses
        ("dd", "bb", LO, 4),
        ("cc", "dd", HI, 6),
        ("cc", "dd", TIE_VALUE, 2),
        ("aa", "bb", LO, 3),
        ("aa", "bb", HI, 11),
        ("aa", "bb", TIE_VALUE, 5),
        ("bb", "cc", LO, 7),
        ("bb", "cc", HI, 2),
        ("aa", "cc", HI, 1),
        ("aa", "cc", LO, 6),
    ]
    board = bradley_terry_board(cells, replicates=100)
    models = sorted({c[0] for c in cells} | {c[1] for c in cells})
    expected = _mm_fit(cells, models)
    rows = _by_model(board)
    for model in models:
        assert rows[model]["score"] == pytest.approx(expected[model], abs=1e-4)
        assert rows[model]["low"] <= rows[model]["score"] <= rows[model]["high"]
    assert [row["model"] for row in board] == sorted(models, key=lambda m: -expected[m])
    assert board[0]["model"] == "dd" and rows["dd"]["losses"] == 0
    assert sum(row["score"] for row in board) == pytest.approx(0, abs=1e-9)
    assert (
        rows["bb"]["wins"] == 11 + 7
        and rows["bb"]["ties"] == 5
        and rows["bb"]["losses"] == 4 + 3 + 2
    )


def test_the_record_follows_the_cells():
    cells = [("m1", "m2", LO, 2), ("m2", "m3", TIE_VALUE, 4), ("m1", "m3", HI, 5)]
    rows = _by_model(bradley_terry_board(cells, replicates=10))
    assert {m: (r["wins"], r["ties"], r["losses"]) for m, r in rows.items()} == {
        "m1": (2, 0, 5),
        "m2": (0, 4, 2),
        "m3": (5, 4, 0),
    }


def test_no_cells_give_an_empty_board():
    assert bradley_terry_board([], replicates=10) == []


@pytest.mark.django_db
def test_the_campaign_board_has_the_winners_sign_on_real_submits():
    campaign = campaign_with_comparisons(prompts=8, overlap=2, models=("a-model", "z-model"))

    def z_mostly(assignment, models, rng):  # z wins three comparisons in four
        pick = "a-model" if assignment.comparison_id % 4 == 0 else "z-model"
        return {"overall": next(u for u in assignment.presented if models[u] == pick)}

    run_crowd(campaign, [(annotator(campaign), z_mostly) for _ in range(2)])
    assert len(models_of(campaign)) == 16
    board = model_leaderboard(campaign=campaign)
    rows = _by_model(board)
    z = rows["z-model"]
    assert board[0]["model"] == "z-model" and z["wins"] > z["losses"]
    assert z["wins"] + z["losses"] == 16
    assert z["score"] == pytest.approx(
        _two_model_closed_form(z["wins"], z["ties"], z["losses"]), abs=1e-6
    )
    assert z["low"] <= z["score"] <= z["high"]


def test_loading_the_quality_selectors_does_not_import_evalica():
    code = (
        "import os, sys, django;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'pickwise.settings');"
        "os.environ.setdefault('DEBUG', '1');"
        "django.setup();"
        "import annotate.quality.selectors, frontend.panels;"
        "print('evalica' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
