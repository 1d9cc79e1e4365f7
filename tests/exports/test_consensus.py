"""Each pair's consensus: the model on hand-made votes, and its columns in Pick-a-Pic exports."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate.models import Comparison
from annotate.services.assignments import assignment_next
from annotate.services.judgments import judgment_submit
from exports.consensus_model import FIRST, SECOND, TIE, consensus
from exports.policy import POLICY_BAD_CONSENSUS, POLICY_BAD_CONTESTED
from exports.services import export_create
from pickwise.errors import ApplicationError
from tests.exports.helpers import build, bulk_judge, prefer_models
from tests.factories import annotator, campaign_with_comparisons


def _votes(rows):
    items, raters, outcomes = (np.array(column) for column in zip(*rows, strict=True))
    return {
        "items": items,
        "raters": raters,
        "outcomes": outcomes,
        "n_items": int(items.max()) + 1,
        "n_raters": int(raters.max()) + 1,
    }


def _crowd(extra_rows, *, items=60, seed=0):
    """Raters 0 to 2 answer every item right (truth alternates), 3 and 4 at random."""
    rng = np.random.default_rng(seed)
    rows = []
    for item in range(items):
        right = FIRST if item % 2 else SECOND
        rows += [(item, rater, right) for rater in (0, 1, 2)]
        rows += [(item, rater, int(rng.integers(2))) for rater in (3, 4)]
    return _votes(rows + extra_rows)


def test_a_careful_rater_outweighs_two_random_ones_where_the_majority_does_not():
    test_item = 60
    votes = _crowd([(test_item, 0, FIRST), (test_item, 3, SECOND), (test_item, 4, SECOND)])
    result = consensus(**votes)
    assert result.p_first[test_item] > 0.9
    assert result.majority[test_item] == 0.0
    assert result.rater_accuracy[0] > 0.9 > 0.65 > result.rater_accuracy[3]


def test_a_minority_taste_rater_keeps_a_positive_weight():
    # Rater 5 agrees on two items in three and prefers the other image on the rest.
    rows = [
        (item, 5, (FIRST if item % 2 else SECOND) if item % 3 else SECOND) for item in range(60)
    ]
    result = consensus(**_crowd(rows))
    assert 0.55 < result.rater_accuracy[5] < 0.85


def test_ties_count_as_votes_but_not_for_a_side():
    votes = _crowd([(60, 0, FIRST), (60, 1, TIE), (60, 2, TIE)])
    result = consensus(**votes)
    assert result.votes[60] == 3
    assert result.majority[60] == 0.5  # the plurality is a tie
    assert result.p_first[60] > 0.9  # the only side taken


def test_an_even_split_is_contested_and_not_forced():
    votes = _crowd([(60, 0, FIRST), (60, 1, SECOND)])
    result = consensus(**votes)
    assert result.confidence()[60] < 0.9
    assert result.labels(contested_below=0.9)[60] == 0.5
    settled = result.labels(contested_below=0.9)[:60]
    assert set(settled) <= {0.0, 1.0}


def test_the_majority_model_gives_the_share_of_sides_taken():
    votes = _votes([(0, 0, FIRST), (0, 1, FIRST), (0, 2, SECOND), (0, 3, TIE), (1, 0, TIE)])
    result = consensus(**votes, model="majority")
    assert result.p_first.tolist() == pytest.approx([2 / 3, 0.5])
    with pytest.raises(ValueError, match="consensus model must be one of"):
        consensus(**votes, model="vote")


# Exports ------------------------------------------------------------------------------------
def _rows(export):
    folder = Path(export.folder)
    return pq.read_table(sorted((folder / "data").glob("train-*.parquet"))[0]).to_pylist()


@pytest.mark.django_db
def test_the_pickapic_export_carries_each_pairs_consensus_oriented_like_label_0():
    campaign = campaign_with_comparisons(prompts=4, models=("model-a", "model-b"))
    raters = [annotator(campaign) for _ in range(3)]
    bulk_judge(campaign, raters, prefer_models("model-a", "model-b"))
    export = build(campaign, splits={"validation": 0.0, "test": 0.0, "max_prompts": 100})
    rows = _rows(export)
    assert len(rows) == 12
    for row in rows:
        assert row["consensus_label_0"] == row["label_0"] == row["majority_label_0"]
        assert row["consensus_votes"] == 3
        assert row["consensus_confidence"] > 0.9 and not row["consensus_contested"]
        # A fixed overlap: three judgments each, and no settling test.
        assert (row["comparison_judgments"], row["comparison_settled"]) == (3, None)
    manifest = json.loads((Path(export.folder) / "manifest.json").read_text())
    assert manifest["policy"]["consensus"] == "dawid_skene"
    assert manifest["policy"]["contested_below"] == 0.9
    assert manifest["counts"]["consensus"] == {
        "model": "dawid_skene",
        "contested_below": 0.9,
        "pairs": 4,
        "contested_pairs": 0,
    }


@pytest.mark.django_db
def test_a_split_pair_is_marked_contested_under_the_chosen_model():
    campaign = campaign_with_comparisons(prompts=2, models=("model-a", "model-b"))
    bulk_judge(campaign, [annotator(campaign)], prefer_models("model-a", "model-b"))
    bulk_judge(campaign, [annotator(campaign)], prefer_models("model-b", "model-a"))
    export = build(
        campaign,
        splits={"validation": 0.0, "test": 0.0, "max_prompts": 100},
        policy={"consensus": "majority", "contested_below": 0.75},
    )
    rows = _rows(export)
    assert {(row["consensus_label_0"], row["consensus_contested"]) for row in rows} == {(0.5, True)}
    assert {row["majority_label_0"] for row in rows} == {0.5}
    assert {row["consensus_confidence"] for row in rows} == {0.5}
    manifest = json.loads((Path(export.folder) / "manifest.json").read_text())
    assert (manifest["policy"]["consensus"], manifest["policy"]["contested_below"]) == (
        "majority",
        0.75,
    )
    assert manifest["counts"]["consensus"]["contested_pairs"] == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"consensus": "vote"}, POLICY_BAD_CONSENSUS.format(models="dawid_skene, majority")),
        ({"contested_below": 0.3}, POLICY_BAD_CONTESTED),
        ({"contested_below": True}, POLICY_BAD_CONTESTED),
        ({"contested_below": "0.9"}, POLICY_BAD_CONTESTED),
    ],
)
def test_a_bad_consensus_option_is_refused_with_its_reason(policy, message):
    campaign = campaign_with_comparisons(prompts=1)
    with pytest.raises(ApplicationError) as error:
        export_create(
            requested_by=None, campaign=campaign, format="pickapic", policy=policy, enqueue=False
        )
    assert error.value.message == message


@pytest.mark.django_db
def test_a_dynamic_overlap_export_records_each_comparisons_judgments_and_whether_it_settled():
    # Two new raters who agree give 9/10 (annotate.quality.posterior): settled at 0.9. The
    # third rater splits the second comparison, which then runs to max_raters unsettled.
    campaign = campaign_with_comparisons(
        prompts=2, dynamic_overlap=True, min_raters=2, max_raters=3, confidence=0.9
    )
    first, second = Comparison.objects.order_by("id")
    raters = [annotator(campaign) for _ in range(3)]
    for index, rater in enumerate(raters):
        while (task := assignment_next(campaign=campaign, annotator=rater)) is not None:
            uids = [str(image.uid) for image in task.comparison.images.order_by("id")]
            side = 1 if task.comparison_id == second.pk and index == 1 else 0
            judgment_submit(assignment=task, answers={"overall": uids[side]}, duration_ms=900)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.done, first.settled, second.done, second.settled) == (2, True, 3, False)
    export = build(campaign, splits={"validation": 0.0, "test": 0.0, "max_prompts": 100})
    figures = {(row["comparison_judgments"], row["comparison_settled"]) for row in _rows(export)}
    assert figures == {(2, True), (3, False)}
