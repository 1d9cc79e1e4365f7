import pytest

from annotate.quality.encoding import (
    DERIVED,
    PAIR,
    RANK,
    encode_answer,
    mid_ranks,
    pair_value,
    position_score,
    speed_bucket,
    speed_median_ms,
)

IMAGES = [(10, "aa"), (20, "bb")]


def test_it_codes_a_pair_in_canonical_order_whatever_the_screen_side():
    for presented in (["aa", "bb"], ["bb", "aa"]):
        (unit,) = encode_answer(answer="aa", images=IMAGES, presented=presented)
        assert (unit.kind, unit.lo, unit.hi, unit.value) == (PAIR, 10, 20, 0)
    (unit,) = encode_answer(answer="bb", images=IMAGES, presented=["bb", "aa"])
    assert unit.value == 2 and unit.side == -1


def test_it_keeps_tie_and_both_bad_apart():
    assert pair_value(answer="tie", lo_uid="aa", hi_uid="bb") == 1
    assert pair_value(answer="both_bad", lo_uid="aa", hi_uid="bb") == 3
    with pytest.raises(ValueError):
        pair_value(answer="cc", lo_uid="aa", hi_uid="bb")


def test_it_gives_tied_images_the_mean_of_their_ranks():
    assert mid_ranks([["a"], ["b", "c"], ["d"]]) == {"a": 1, "b": 2.5, "c": 2.5, "d": 4}


def test_a_ranking_yields_rank_units_and_flagged_derived_pairs():
    images = [(1, "a"), (2, "b"), (3, "c")]
    units = encode_answer(answer=[["c"], ["a", "b"]], images=images, presented=["a", "b", "c"])
    ranks = {u.lo: u.value for u in units if u.kind == RANK}
    assert ranks == {1: 5, 2: 5, 3: 2}  # 2 x mid-rank: c first, a and b share 2.5
    derived = {(u.lo, u.hi): u.value for u in units if u.kind == DERIVED}
    assert derived == {(1, 2): 1, (1, 3): 2, (2, 3): 2}


def test_the_position_score_counts_earlier_shown_wins():
    (left,) = encode_answer(answer="bb", images=IMAGES, presented=["bb", "aa"])
    (right,) = encode_answer(answer="aa", images=IMAGES, presented=["bb", "aa"])
    (tie,) = encode_answer(answer="tie", images=IMAGES, presented=["bb", "aa"])
    assert [position_score([u]) for u in (left, right, tie)] == [1, -1, 0]
    ranking = encode_answer(
        answer=[["a"], ["b"], ["c"]],
        images=[(1, "a"), (2, "b"), (3, "c")],
        presented=["a", "b", "c"],
    )
    assert position_score(ranking) == 3


def test_the_speed_histogram_reads_back_a_median_in_the_right_bucket():
    hist = [0] * 48
    for ms in (900, 1000, 1100, 5000, 400):
        hist[speed_bucket(ms)] += 1
    assert 840 <= speed_median_ms(hist) <= 1190
    assert speed_bucket(10) == 0 and speed_bucket(10**9) == 47
