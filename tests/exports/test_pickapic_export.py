"""The Pick-a-Pic export against the consumer library (`datasets`) and the spec's rules."""

import io
import json
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Features, load_dataset, load_dataset_builder
from PIL import Image as PILImage

from annotate.models import Judgment, Membership
from exports.models import Export
from exports.pairs import PAIR_ID_STRIDE
from exports.writers.manifest import file_digest
from exports.writers.pickapic import SCHEMA
from tests.exports.helpers import build, judge_all, parquet_rows, prefer_models
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db

SPLITS = ["train", "validation", "test", "validation_unique", "test_unique"]
EXPECTED_TYPES = {
    "are_different": "bool",
    "best_image_uid": "string",
    "caption": "string",
    "created_at": "timestamp[ns]",
    "has_label": "bool",
    "image_0_uid": "string",
    "image_0_url": "string",
    "image_1_uid": "string",
    "image_1_url": "string",
    "jpg_0": "binary",
    "jpg_1": "binary",
    "label_0": "float64",
    "label_1": "float64",
    "model_0": "string",
    "model_1": "string",
    "ranking_id": "int64",
    "user_id": "int64",
    "num_example_per_prompt": "int64",
    # Beyond Pick-a-Pic v2: each pair's consensus (exports.consensus).
    "consensus_label_0": "float64",
    "consensus_confidence": "float64",
    "consensus_contested": "bool",
    "majority_label_0": "float64",
    "consensus_votes": "int64",
    "comparison_judgments": "int64",
    "comparison_settled": "bool",
    "__index_level_0__": "int64",
}


def _load(folder, tmp_path, config=None):
    return load_dataset(folder, config, cache_dir=str(tmp_path / "hf-cache"))


def test_datasets_loads_every_split_with_the_exact_features(judged_campaign, tmp_path):
    export = build(judged_campaign)
    data = _load(export.folder, tmp_path)
    assert list(data) == SPLITS
    expected = Features.from_dict(
        {name: {"dtype": dtype, "_type": "Value"} for name, dtype in EXPECTED_TYPES.items()}
    )
    for split in SPLITS:
        assert data[split].features == expected
        assert list(data[split].features) == list(EXPECTED_TYPES)
    # The files themselves: string not large_string, binary not large_binary, no time zone.
    for path in Path(export.folder).glob("*/*.parquet"):
        schema = pq.read_schema(path)
        assert schema.remove_metadata() == SCHEMA
        assert schema.field("created_at").type == pa.timestamp("ns")


def test_dataset_info_sizes_match_what_datasets_records(judged_campaign, tmp_path):
    export = build(judged_campaign)
    builder = load_dataset_builder(export.folder, cache_dir=str(tmp_path / "hf-cache"))
    expected = {name: (s.num_bytes, s.num_examples) for name, s in builder.info.splits.items()}
    builder.download_and_prepare(verification_mode="no_checks")
    recorded = json.loads(next(Path(builder.cache_dir).rglob("dataset_info.json")).read_text())[
        "splits"
    ]
    assert {n: (s["num_bytes"], s["num_examples"]) for n, s in recorded.items()} == expected


def test_the_dpo_config_has_no_ties_and_the_default_keeps_them(judged_campaign, tmp_path):
    export = build(judged_campaign)
    default = _load(export.folder, tmp_path)
    dpo = _load(export.folder, tmp_path, "dpo")
    assert 0.5 in default["train"]["label_0"]
    for split in dpo:
        assert set(dpo[split]["label_0"]) <= {0.0, 1.0}
    counts = export.manifest["counts"]
    assert counts["ties"] == sum(
        default[s]["label_0"].count(0.5) for s in ("train", "validation", "test")
    )
    assert counts["rows"]["dpo"]["train"] == default["train"]["label_0"].count(1.0) + default[
        "train"
    ]["label_0"].count(0.0)


def test_rows_obey_the_label_rules_and_images_decode(judged_campaign, tmp_path):
    export = build(judged_campaign)
    data = _load(export.folder, tmp_path)
    for split in SPLITS:
        for row in data[split]:
            assert row["label_0"] in (0.0, 0.5, 1.0)
            assert row["label_0"] + row["label_1"] == 1.0
            assert row["has_label"] == (row["label_0"] != 0.5)
            if row["label_0"] == 1.0:
                assert row["best_image_uid"] == row["image_0_uid"]
            elif row["label_0"] == 0.0:
                assert row["best_image_uid"] == row["image_1_uid"]
            else:
                assert row["best_image_uid"] == "none"
            assert row["are_different"] == (row["model_0"] != row["model_1"])
            for column in ("jpg_0", "jpg_1"):
                with PILImage.open(io.BytesIO(row[column])) as image:
                    assert image.format == "JPEG"
                    assert image.convert("RGB").size == (16, 16)


def test_the_preferred_image_is_the_one_the_rater_chose(judged_campaign):
    export = build(judged_campaign)
    order = {"model-a": 0, "model-b": 1, "model-c": 2}
    rows = [r for r in parquet_rows(export.folder, "data/*.parquet") if r["has_label"]]
    assert rows
    for row in rows:
        best_model = row["model_0"] if row["label_0"] == 1.0 else row["model_1"]
        assert best_model == min(row["model_0"], row["model_1"], key=order.get)


def test_image_0_is_not_biased_towards_the_winner(db):
    campaign = campaign_with_comparisons(prompts=20, models=("model-a", "model-b"))
    judge_all(campaign, [annotator(campaign)], prefer_models("model-a", "model-b"))
    rows = parquet_rows(build(campaign).folder, "data/*.parquet")
    sides = Counter(row["label_0"] for row in rows)
    # A fair coin per row: 20 rows all on one side would happen once in half a million.
    assert sides[1.0] > 0 and sides[0.0] > 0


def test_splits_are_by_prompt_with_unique_splits_and_prompt_counts(judged_campaign, tmp_path):
    export = build(judged_campaign)
    data = _load(export.folder, tmp_path)
    captions = {split: set(data[split]["caption"]) for split in SPLITS}
    assert not captions["train"] & captions["validation"]
    assert not captions["train"] & captions["test"]
    assert not captions["validation"] & captions["test"]
    assert captions["validation_unique"] == captions["validation"]
    assert captions["test_unique"] == captions["test"]
    for split in ("validation_unique", "test_unique"):
        assert len(data[split]) == len(captions[split])
        assert set(data[split]["num_example_per_prompt"]) == {1}
        assert set(data[split]["has_label"]) == {True}  # a labelled row stands for the prompt
    for split in ("train", "validation", "test"):
        per_caption = Counter(data[split]["caption"])
        for row in data[split]:
            assert row["num_example_per_prompt"] == per_caption[row["caption"]]
        assert data[split]["__index_level_0__"] == list(range(len(data[split])))
    dpo = _load(export.folder, tmp_path, "dpo")
    per_caption = Counter(dpo["train"]["caption"])
    assert all(r["num_example_per_prompt"] == per_caption[r["caption"]] for r in dpo["train"])
    assert export.manifest["counts"]["prompts"] == {"test": 1, "train": 6, "validation": 1}


def test_split_sizes_follow_the_settings_and_the_seed(judged_campaign):
    export = build(judged_campaign, splits={"validation": 0.25, "test": 0.25, "max_prompts": 1})
    assert export.manifest["counts"]["prompts"] == {"test": 1, "train": 6, "validation": 1}
    wide = build(judged_campaign, splits={"validation": 0.25, "test": 0.25})
    assert wide.manifest["counts"]["prompts"] == {"test": 2, "train": 4, "validation": 2}
    other_seed = build(judged_campaign, seed=7, splits={"validation": 0.25, "test": 0.25})

    def validation_captions(export):
        return {r["caption"] for r in parquet_rows(export.folder, "data/validation-*.parquet")}

    assert validation_captions(wide) != validation_captions(other_seed)


def test_both_bad_is_left_out_and_counted(judged_campaign):
    export = build(judged_campaign)
    counts = export.manifest["counts"]
    assert counts["judgments_considered"] == 72
    assert counts["excluded"] == {"both_bad": 24}
    assert counts["judgments_included"] == 48
    assert sum(counts["rows"]["default"][s] for s in ("train", "validation", "test")) == 48


def test_rankings_expand_into_pairs_with_ties(db):
    campaign = campaign_with_comparisons(
        prompts=3, models=("m1", "m2", "m3"), kind="ranking", k=3, overlap=1
    )
    order = {"m1": 0, "m2": 1, "m3": 1}  # m1 first, m2 and m3 tied

    def rank(assignment):
        from tests.exports.helpers import model_of

        tiers = defaultdict(list)
        for uid in assignment.presented:
            tiers[order[model_of(uid)]].append(uid)
        return {"overall": [tiers[0], tiers[1]]}

    judgments = judge_all(campaign, [annotator(campaign)], rank)
    export = build(campaign)
    rows = [
        row
        for split in ("train", "validation", "test")
        for row in parquet_rows(export.folder, f"data/{split}-*.parquet")
    ]
    assert len(rows) == 3 * len(judgments)  # k(k-1)/2 = 3 pairs per ranking
    by_judgment = defaultdict(list)
    for row in rows:
        by_judgment[row["ranking_id"] // PAIR_ID_STRIDE].append(row)
    assert set(by_judgment) == {j.pk for j in judgments}
    for pairs in by_judgment.values():
        outcomes = Counter()
        for row in pairs:
            models = {row["model_0"], row["model_1"]}
            if models == {"m2", "m3"}:
                assert row["label_0"] == 0.5
                outcomes["tie"] += 1
            else:
                assert row["best_image_uid"] != "none"
                best = row["model_0"] if row["label_0"] == 1.0 else row["model_1"]
                assert best == "m1"
                outcomes["m1 wins"] += 1
        assert outcomes == {"tie": 1, "m1 wins": 2}
    assert export.manifest["counts"]["ties"] == len(judgments)


def test_blocked_raters_are_absent_and_counted(db):
    campaign = campaign_with_comparisons(prompts=4, models=("model-a", "model-b"), overlap=4)
    honest, blocked, warned, qualifying = (annotator(campaign) for _ in range(4))
    for user in (honest, blocked, warned, qualifying):
        judge_all(campaign, [user], prefer_models("model-a", "model-b"))
    Membership.objects.filter(user=blocked).update(gate_state=Membership.Gate.BLOCKED)
    Judgment.objects.filter(annotator=blocked).update(excluded=True)
    Membership.objects.filter(user=warned).update(gate_state=Membership.Gate.WARNED)
    Membership.objects.filter(user=qualifying).update(gate_state=Membership.Gate.QUALIFYING)
    # Flagged by quality control although the rater is not blocked (yet).
    flagged = Judgment.objects.filter(annotator=honest).order_by("id").first()
    Judgment.objects.filter(pk=flagged.pk).update(excluded=True)
    rater_keys = dict(Membership.objects.values_list("user_id", "rater_key"))

    export = build(campaign)
    rows = parquet_rows(export.folder, "data/*.parquet")
    users = {row["user_id"] for row in rows}
    assert users == {rater_keys[honest.pk], rater_keys[warned.pk]}
    assert not {row["ranking_id"] // PAIR_ID_STRIDE for row in rows} & {flagged.pk}
    counts = export.manifest["counts"]["excluded"]
    blocked_count = Judgment.objects.filter(annotator=blocked).count()
    qualifying_count = Judgment.objects.filter(annotator=qualifying).count()
    assert counts == {
        "blocked_rater": blocked_count,
        "excluded_flag": 1,
        "state_not_included": qualifying_count,
    }
    with_qualifying = build(campaign, policy={"states": ["qualifying", "active", "warned"]})
    assert with_qualifying.manifest["counts"]["excluded"] == {
        "blocked_rater": blocked_count,
        "excluded_flag": 1,
    }


def test_user_id_is_the_pseudonymous_rater_key(judged_campaign):
    export = build(judged_campaign)
    keys = set(Membership.objects.values_list("rater_key", flat=True))
    user_ids = {row["user_id"] for row in parquet_rows(export.folder, "data/*.parquet")}
    assert user_ids and user_ids <= keys


def test_image_urls_use_the_public_base_url(judged_campaign, settings):
    settings.PUBLIC_BASE_URL = "https://pickwise.example"
    row = parquet_rows(build(judged_campaign).folder, "data/train-*.parquet")[0]
    assert row["image_0_url"].startswith("https://pickwise.example/media/images/")
    settings.PUBLIC_BASE_URL = ""
    row = parquet_rows(build(judged_campaign).folder, "data/train-*.parquet")[0]
    assert row["image_0_url"] == ""


def test_the_manifest_hashes_verify(judged_campaign):
    export = build(judged_campaign)
    folder = Path(export.folder)
    on_disk = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    files = export.manifest["files"]
    assert [f["name"] for f in files] == on_disk
    for entry in files:
        path = folder / entry["name"]
        assert path.stat().st_size == entry["size"]
        assert file_digest(path) == entry["sha256"]
    assert json.loads((folder / "manifest.json").read_text()) == export.manifest


def test_two_exports_with_the_same_seed_and_data_are_byte_identical(judged_campaign, tmp_path):
    first = build(judged_campaign, seed=11, folder=tmp_path / "first")
    second = build(judged_campaign, seed=11, folder=tmp_path / "second")
    assert (first.version, second.version) == (1, 2)
    assert first.manifest["files"] == second.manifest["files"]
    other = build(judged_campaign, seed=12, folder=tmp_path / "third")
    assert other.manifest["files"] != first.manifest["files"]


def test_shards_rotate_by_size_and_still_load(judged_campaign, settings, tmp_path):
    settings.EXPORT_SHARD_MAX_BYTES = 96 * 1024
    settings.EXPORT_BATCH_ROWS = 4
    export = build(judged_campaign)
    train = sorted(Path(export.folder, "data").glob("train-*.parquet"))
    assert len(train) > 1
    total = len(train)
    assert [p.name for p in train] == [
        f"train-{i:05d}-of-{total:05d}.parquet" for i in range(total)
    ]
    assert all(p.stat().st_size <= settings.EXPORT_SHARD_MAX_BYTES for p in train)
    data = _load(export.folder, tmp_path)
    assert len(data["train"]) == export.manifest["counts"]["rows"]["default"]["train"]
    assert data["train"]["__index_level_0__"] == list(range(len(data["train"])))


def test_a_finished_export_is_read_only_and_a_new_request_is_a_new_version(judged_campaign):
    first = build(judged_campaign)
    second = build(judged_campaign)
    assert (first.version, second.version) == (1, 2)
    assert first.folder != second.folder
    assert Path(first.folder).name == f"{first.pk}-v1"
    for path in Path(first.folder).rglob("*"):
        if path.is_file():
            assert not path.stat().st_mode & 0o222
    assert Export.objects.get(pk=first.pk).status == Export.Status.FINISHED


def test_the_parquet_loader_finds_the_custom_split_names_from_file_names(judged_campaign, tmp_path):
    export = build(judged_campaign)
    data = load_dataset("parquet", data_dir=export.folder, cache_dir=str(tmp_path / "hf"))
    assert sorted(data) == sorted(SPLITS)
    assert len(data["train"]) == export.manifest["counts"]["rows"]["default"]["train"]
