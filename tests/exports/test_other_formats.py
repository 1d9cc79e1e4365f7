"""The ranked and jsonl formats."""

import json
from collections import defaultdict
from pathlib import Path

import pytest
from datasets import load_dataset

from annotate.models import Judgment, Membership
from tests.exports.helpers import (
    RANKED_CONSENSUS_COLUMNS,
    build,
    bulk_judge,
    model_of,
    parquet_rows,
    prefer_models,
)
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _ranking_campaign(**fields):
    campaign = campaign_with_comparisons(
        prompts=4, models=("m1", "m2", "m3"), kind="ranking", k=3, overlap=1, **fields
    )
    order = {"m1": 0, "m2": 1, "m3": 1}  # m1 best, m2 and m3 tied

    def rank(assignment):
        tiers = defaultdict(list)
        for uid in assignment.presented:
            tiers[order[model_of(uid)]].append(uid)
        return {key: [tiers[0], tiers[1]] for key in [c["key"] for c in campaign.criteria]}

    bulk_judge(campaign, [annotator(campaign)], rank)
    return campaign


def test_ranked_rows_rank_each_image_with_ties_sharing_a_rank(db, tmp_path):
    campaign = _ranking_campaign()
    export = build(campaign, format="ranked")
    data = load_dataset(export.folder, cache_dir=str(tmp_path / "hf"))
    assert set(data) == {"train", "validation", "test"}
    rows = [row for split in data for row in data[split]]
    assert len(rows) == 4
    assert "--method rankdpo" in (Path(export.folder) / "README.md").read_text()
    for row in rows:
        by_model = dict(zip(row["models"], row["ranking"], strict=True))
        assert by_model == {"m1": 1, "m2": 2, "m3": 2}
        assert len(row["images"]) == len(row["image_uids"]) == 3
        assert row["images"][0][:2] == b"\xff\xd8"  # JPEG
    assert list(data["train"].features) == [
        "prompt",
        "images",
        "image_uids",
        "models",
        "ranking",
        "user_id",
        "created_at",
        *RANKED_CONSENSUS_COLUMNS,
    ]


def test_ranked_has_a_column_per_criterion_when_there_are_several(db):
    criteria = [
        {"key": "overall", "question": "Better?", "allow_tie": True, "allow_both_bad": False},
        {"key": "aesthetics", "question": "Nicer?", "allow_tie": True, "allow_both_bad": False},
    ]
    campaign = _ranking_campaign(criteria=criteria)
    export = build(campaign, format="ranked", criterion="aesthetics")
    rows = parquet_rows(export.folder, "data/*.parquet")
    assert rows and all(
        row["ranking_overall"] == row["ranking_aesthetics"] == row["ranking"] for row in rows
    )
    assert export.manifest["criterion"] == "aesthetics"


def test_jsonl_keeps_every_judgment_and_says_why_one_is_left_out(db):
    campaign = campaign_with_comparisons(prompts=2, models=("model-a", "model-b"))
    honest, blocked = annotator(campaign), annotator(campaign)
    bulk_judge(campaign, [honest, blocked], prefer_models("model-a", "model-b"))
    bulk_judge(campaign, [annotator(campaign)], lambda a: {"overall": "both_bad"})
    Membership.objects.filter(user=blocked).update(gate_state=Membership.Gate.BLOCKED)
    Judgment.objects.filter(annotator=blocked).update(excluded=True)
    stray = Judgment.objects.filter(annotator=honest).first()
    Judgment.objects.filter(pk=stray.pk).update(never_shown=True)

    export = build(campaign, format="jsonl")
    lines = Path(export.folder, "judgments.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == Judgment.objects.count() == 6
    reasons = sorted((r["gate_state"], r["included"], r["exclusion_reason"]) for r in records)
    assert reasons == [
        ("active", False, "both_bad"),
        ("active", False, "both_bad"),
        ("active", True, None),
        ("active", True, None),
        ("blocked", False, "blocked_rater"),
        ("blocked", False, "blocked_rater"),
    ]
    first = records[0]
    assert {"answers", "presented", "duration_ms", "server_ms", "excluded", "prompt"} <= set(first)
    assert [r["judgment_id"] for r in records if r["never_shown"]] == [stray.pk]
    assert len(first["image_uids"]) == 2 and "jpg_0" not in first
    assert export.manifest["counts"]["excluded"] == {"blocked_rater": 2, "both_bad": 2}
    assert [f["name"] for f in export.manifest["files"]] == ["judgments.jsonl"]


def test_jsonl_lines_carry_their_comparisons_consensus_whether_kept_or_not(db):
    campaign = campaign_with_comparisons(prompts=3, models=("model-a", "model-b"))
    bulk_judge(
        campaign, [annotator(campaign), annotator(campaign)], prefer_models("model-a", "model-b")
    )
    blocked = annotator(campaign)
    bulk_judge(campaign, [blocked], prefer_models("model-b", "model-a"))
    Membership.objects.filter(user=blocked).update(gate_state=Membership.Gate.BLOCKED)
    flagged = Judgment.objects.order_by("comparison_id").first().comparison_id
    Judgment.objects.filter(comparison_id=flagged).update(excluded=True)

    export = build(campaign, format="jsonl", policy={"consensus": "majority"})
    lines = Path(export.folder, "judgments.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 9
    for record in records:
        if record["comparison_id"] == flagged:  # no judgment of it is kept
            assert record["consensus_ranking"] is None and record["consensus_votes"] is None
            continue
        # The blocked rater's lines carry the consensus of the two kept judgments.
        by_model = dict(zip(record["models"], record["consensus_ranking"], strict=True))
        assert by_model == {"model-a": 1, "model-b": 2}
        assert record["majority_ranking"] == record["consensus_ranking"]
        assert (record["consensus_confidence"], record["consensus_contested"]) == (1.0, False)
        assert (record["consensus_votes"], record["comparison_judgments"]) == (2, 3)
    assert export.manifest["counts"]["consensus"]["comparisons"] == 2
