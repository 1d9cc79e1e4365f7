"""Each comparison's consensus ranking: the ordering rule on hand-made probabilities, and its
columns in ranked exports (hand-computed under the majority model, where P(i beats j) is the
share of the raters who ranked i above j among those who did not call them level)."""

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import load_dataset

from annotate.models import Membership
from exports.consensus_ranking import borda_points, consensus_ranks, dense_ranks
from exports.policy import POLICY_BAD_CONSENSUS, POLICY_BAD_CONTESTED
from exports.services import export_create
from pickwise.errors import ApplicationError
from tests.exports.helpers import (
    RANKED_CONSENSUS_COLUMNS,
    build,
    bulk_judge,
    model_of,
    parquet_rows,
)
from tests.factories import annotator, campaign_with_comparisons

MODELS = ("m1", "m2", "m3")
ALL_TRAIN = {"validation": 0.0, "test": 0.0, "max_prompts": 100}


def _p(*wins):
    """A P(i beats j) matrix from (i, j, p) entries; every other pair even."""
    k = 1 + max(max(i, j) for i, j, _ in wins)
    p = np.full((k, k), 0.5)
    for i, j, value in wins:
        p[i, j], p[j, i] = value, 1.0 - value
    return p


def test_decided_pairs_in_a_line_give_a_strict_ranking():
    p = _p((0, 1, 0.95), (1, 2, 0.97), (0, 2, 0.99))
    assert consensus_ranks(p, contested_below=0.9) == [1, 2, 3]
    assert consensus_ranks(p.T.copy(), contested_below=0.9) == [3, 2, 1]


def test_a_cycle_of_decided_pairs_is_level_and_only_what_it_beats_is_below():
    cycle = _p((0, 1, 0.95), (1, 2, 0.95), (2, 0, 0.95))
    assert consensus_ranks(cycle, contested_below=0.9) == [1, 1, 1]
    with_loser = _p(
        (0, 1, 0.95), (1, 2, 0.95), (2, 0, 0.95), (0, 3, 0.99), (1, 3, 0.99), (2, 3, 0.99)
    )
    assert consensus_ranks(with_loser, contested_below=0.9) == [1, 1, 1, 2]


def test_a_contested_pair_levels_what_cannot_be_put_wholly_above_or_below_it():
    # 0 beats 3 and both of 1 and 2, which beat 3; 1 against 2 is contested.
    p = _p((0, 1, 0.95), (0, 2, 0.95), (0, 3, 0.99), (1, 3, 0.95), (2, 3, 0.95), (1, 2, 0.6))
    assert consensus_ranks(p, contested_below=0.9) == [1, 2, 2, 3]
    # 0 beats 1 but 2 is contested against both: nothing can be stated.
    p = _p((0, 1, 0.95), (0, 2, 0.7), (1, 2, 0.4))
    assert consensus_ranks(p, contested_below=0.9) == [1, 1, 1]


def test_an_even_pair_is_never_decided_even_at_the_lowest_threshold():
    assert consensus_ranks(_p((0, 1, 0.5)), contested_below=0.5) == [1, 1]
    assert consensus_ranks(_p((0, 1, 0.51)), contested_below=0.5) == [1, 2]


def test_borda_points_count_images_below_and_half_of_those_level():
    assert borda_points([1, 2, 2]).tolist() == [2.0, 0.5, 0.5]
    assert borda_points([2, 1, 3]).tolist() == [1.0, 2.0, 0.0]
    assert dense_ranks(np.array([2.5, 4.0, 2.5, 0.0])) == [2, 1, 2, 3]


# Exports ------------------------------------------------------------------------------------
def _ranking_campaign(prompts=2, **fields):
    return campaign_with_comparisons(
        prompts=prompts, models=MODELS, kind="ranking", k=3, overlap=3, **fields
    )


def rank_models(*tiers, criterion=None):
    """Ranking answers by model: `tiers` of model names, best first; for every criterion of
    the campaign unless `criterion` names one (the others then get the reverse)."""

    def answer(assignment):
        by_model = {model_of(uid): uid for uid in assignment.presented}
        ranking = [[by_model[m] for m in tier] for tier in tiers]
        keys = [c["key"] for c in assignment.campaign.criteria]
        return {key: ranking if criterion in (None, key) else ranking[::-1] for key in keys}

    return answer


def _judge(campaign, *rankings):
    raters = []
    for tiers in rankings:
        raters.append(annotator(campaign))
        bulk_judge(campaign, [raters[-1]], rank_models(*tiers))
    return raters


def _by_model(row, column):
    return dict(zip(row["models"], row[column], strict=True))


def _export(campaign, **policy):
    export = build(campaign, format="ranked", splits=ALL_TRAIN, policy=policy or None)
    return export, parquet_rows(export.folder, "data/*.parquet")


THREE_RATERS = (
    (["m1"], ["m2"], ["m3"]),
    (["m1"], ["m2"], ["m3"]),
    (["m2"], ["m1"], ["m3"]),
)


@pytest.mark.django_db
def test_three_raters_give_a_strict_consensus_where_every_pair_is_decided():
    # m1 over m2: 2 of 3 raters; m1 and m2 over m3: 3 of 3. At 0.6 every pair is decided.
    campaign = _ranking_campaign()
    _judge(campaign, *THREE_RATERS)
    export, rows = _export(campaign, consensus="majority", contested_below=0.6)
    assert len(rows) == 6
    for row in rows:
        assert _by_model(row, "consensus_ranking") == {"m1": 1, "m2": 2, "m3": 3}
        assert row["consensus_confidence"] == pytest.approx(2 / 3)
        assert row["consensus_contested"] is False
        # Borda: m1 2 + 2 + 1 = 5, m2 1 + 1 + 2 = 4, m3 0.
        assert _by_model(row, "majority_ranking") == {"m1": 1, "m2": 2, "m3": 3}
        assert (row["consensus_votes"], row["comparison_judgments"]) == (3, 3)
        assert row["comparison_settled"] is None
    counts = export.manifest["counts"]["consensus"]
    assert counts == {
        "model": "majority",
        "contested_below": 0.6,
        "pairs": 6,
        "contested_pairs": 0,
        "comparisons": 2,
        "contested_comparisons": 0,
    }
    assert export.manifest["policy"]["consensus"] == "majority"


@pytest.mark.django_db
def test_a_contested_pair_shares_a_rank_while_the_majority_still_orders_it():
    campaign = _ranking_campaign()
    _judge(campaign, *THREE_RATERS)
    export, rows = _export(campaign, consensus="majority", contested_below=0.9)
    for row in rows:
        assert _by_model(row, "consensus_ranking") == {"m1": 1, "m2": 1, "m3": 2}
        assert row["consensus_confidence"] == pytest.approx(2 / 3)
        assert row["consensus_contested"] is True
        assert _by_model(row, "majority_ranking") == {"m1": 1, "m2": 2, "m3": 3}
    assert export.manifest["counts"]["consensus"]["contested_comparisons"] == 2


@pytest.mark.django_db
def test_a_cycle_gives_equal_ranks_instead_of_an_order():
    # Each pair is won 2 to 1, round a cycle: m1 > m2 > m3 > m1.
    campaign = _ranking_campaign()
    _judge(
        campaign,
        (["m1"], ["m2"], ["m3"]),
        (["m2"], ["m3"], ["m1"]),
        (["m3"], ["m1"], ["m2"]),
    )
    _, rows = _export(campaign, consensus="majority", contested_below=0.6)
    for row in rows:
        assert row["consensus_ranking"] == [1, 1, 1]
        assert row["consensus_contested"] is True
        assert row["consensus_confidence"] == pytest.approx(2 / 3)  # each pair is sure
        assert row["majority_ranking"] == [1, 1, 1]  # Borda: 3 points each


@pytest.mark.django_db
def test_all_tie_rankings_are_level_and_contested():
    campaign = _ranking_campaign()
    _judge(campaign, (["m1", "m2", "m3"],), (["m1", "m2", "m3"],))
    _, rows = _export(campaign, consensus="majority")
    for row in rows:
        assert row["ranking"] == row["consensus_ranking"] == row["majority_ranking"] == [1, 1, 1]
        assert (row["consensus_confidence"], row["consensus_contested"]) == (0.5, True)
        assert row["consensus_votes"] == 2


@pytest.mark.django_db
def test_a_blocked_raters_ranking_is_left_out_of_the_consensus():
    campaign = _ranking_campaign()
    *_, blocked = _judge(
        campaign,
        (["m1"], ["m2"], ["m3"]),
        (["m1"], ["m2"], ["m3"]),
        (["m3"], ["m2"], ["m1"]),
    )
    Membership.objects.filter(user=blocked).update(gate_state=Membership.Gate.BLOCKED)
    _, rows = _export(campaign, consensus="majority", contested_below=0.9)
    assert len(rows) == 4
    for row in rows:
        assert _by_model(row, "consensus_ranking") == {"m1": 1, "m2": 2, "m3": 3}
        assert (row["consensus_confidence"], row["consensus_contested"]) == (1.0, False)
        assert row["consensus_votes"] == 2


@pytest.mark.django_db
def test_the_default_model_orders_what_raters_agree_on_and_levels_what_they_call_level(
    tmp_path,
):
    campaign = _ranking_campaign(prompts=4)
    _judge(campaign, *([(["m2"], ["m1", "m3"])] * 3))
    export, rows = _export(campaign)
    assert export.manifest["policy"]["consensus"] == "dawid_skene"
    for row in rows:
        # m1 and m3 are level for every rater: the model has no side for them.
        assert _by_model(row, "consensus_ranking") == {"m2": 1, "m1": 2, "m3": 2}
        assert _by_model(row, "majority_ranking") == {"m2": 1, "m1": 2, "m3": 2}
        assert row["consensus_contested"] is True
        assert row["consensus_confidence"] < 0.9
    data = load_dataset(export.folder, cache_dir=str(tmp_path / "hf"))
    assert (
        list(data["train"].features)[-len(RANKED_CONSENSUS_COLUMNS) :] == RANKED_CONSENSUS_COLUMNS
    )
    first = data["train"][0]
    assert first["consensus_ranking"] == rows[0]["consensus_ranking"]
    card = (Path(export.folder) / "README.md").read_text()
    assert "## Consensus" in card and "`consensus_ranking`" in card
    manifest = json.loads((Path(export.folder) / "manifest.json").read_text())
    assert manifest["counts"]["consensus"]["comparisons"] == 4


@pytest.mark.django_db
def test_a_multi_criterion_campaign_takes_the_consensus_on_the_export_criterion():
    criteria = [
        {"key": "overall", "question": "Better?", "allow_tie": True, "allow_both_bad": False},
        {"key": "aesthetics", "question": "Nicer?", "allow_tie": True, "allow_both_bad": False},
    ]
    campaign = _ranking_campaign(criteria=criteria)
    for _ in range(2):
        bulk_judge(
            campaign,
            [annotator(campaign)],
            rank_models(["m1"], ["m2"], ["m3"], criterion="aesthetics"),
        )
    export = build(
        campaign,
        format="ranked",
        criterion="aesthetics",
        splits=ALL_TRAIN,
        policy={"consensus": "majority"},
    )
    for row in parquet_rows(export.folder, "data/*.parquet"):
        assert _by_model(row, "consensus_ranking") == {"m1": 1, "m2": 2, "m3": 3}
        assert _by_model(row, "ranking_overall") == {"m1": 3, "m2": 2, "m3": 1}


@pytest.mark.django_db
def test_the_rankdpo_reader_reads_a_ranked_export_with_its_consensus_columns():
    pytest.importorskip("torch")
    from training.trainer.data import count_ranked_lists, find_parquet_files, iter_ranked_lists

    campaign = _ranking_campaign()
    _judge(campaign, *THREE_RATERS)
    export, _ = _export(campaign)
    files = find_parquet_files(Path(export.folder), "train")
    assert count_ranked_lists(files).rows == 6
    lists = list(iter_ranked_lists(files))
    assert len(lists) == 6 and all(len(ranked.images) == 3 for ranked in lists)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"consensus": "borda"}, POLICY_BAD_CONSENSUS.format(models="dawid_skene, majority")),
        ({"contested_below": 1.5}, POLICY_BAD_CONTESTED),
        ({"contested_below": None}, POLICY_BAD_CONTESTED),
    ],
)
@pytest.mark.parametrize("format", ["ranked", "jsonl"])
def test_a_bad_consensus_option_is_refused_for_every_format(policy, message, format):
    campaign = _ranking_campaign(prompts=1)
    with pytest.raises(ApplicationError) as error:
        export_create(
            requested_by=None, campaign=campaign, format=format, policy=policy, enqueue=False
        )
    assert error.value.message == message
