"""The image-preference format, read by Hugging Face `datasets` as its users would."""

import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Image, Value, load_dataset
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from annotate.models import Image as StoredImage
from annotate.models import Judgment, Membership
from exports.writers.images import JpegEncoder
from tests.exports.helpers import build, bulk_judge, model_of, parquet_rows
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db
FORMAT = "image_preference"


def _load(folder, tmp_path, **kwargs):
    return load_dataset(folder, cache_dir=str(tmp_path / "hf-cache"), **kwargs)


def _ranking_campaign():
    """Four rankings of m1 > m2 = m3: two preferences each, one tie."""
    campaign = campaign_with_comparisons(
        prompts=4, models=("m1", "m2", "m3"), kind="ranking", k=3, overlap=1
    )
    order = {"m1": 0, "m2": 1, "m3": 1}

    def rank(assignment):
        tiers = defaultdict(list)
        for uid in assignment.presented:
            tiers[order[model_of(uid)]].append(uid)
        return {"overall": [tiers[0], tiers[1]]}

    bulk_judge(campaign, [annotator(campaign)], rank)
    return campaign


def _pixels(image: PILImage.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_load_dataset_decodes_both_images_and_they_are_the_stored_ones(
    small_campaign, tmp_path, settings
):
    export = build(small_campaign, format=FORMAT)
    data = _load(export.folder, tmp_path)

    features = data["train"].features
    assert features["chosen"] == Image() and features["rejected"] == Image()
    assert features["prompt"] == Value("string") and features["ranking_id"] == Value("int64")
    stored = {row["ranking_id"]: row for row in parquet_rows(export.folder, "data/*.parquet")}
    encoder = JpegEncoder(quality=settings.EXPORT_JPEG_QUALITY, cache_bytes=1 << 20)
    rows = [row for split in data.values() for row in split]
    assert len(rows) == len(stored) == 6
    for row in rows:
        for side in ("chosen", "rejected"):
            decoded = row[side]
            assert isinstance(decoded, PILImage.Image)
            # The bytes in the parquet file, decoded by PIL itself.
            cell = stored[row["ranking_id"]][side]
            assert cell["path"] == f"{row[side + '_uid']}.jpg"
            assert np.array_equal(
                _pixels(decoded), _pixels(PILImage.open(io.BytesIO(cell["bytes"])))
            )
            # The image the rater saw, as stored in media: same size, JPEG-close pixels.
            image = StoredImage.objects.get(uid=row[side + "_uid"])
            with default_storage.open(image.file.name, "rb") as handle:
                original = PILImage.open(handle)
                original.load()
            assert decoded.size == original.size == (image.width, image.height)
            # Its own colour (each test image has a distinct one): JPEG keeps flat areas.
            assert np.median(np.abs(_pixels(decoded) - _pixels(original))) < 8
            # Exactly the export's JPEG encoding of that file.
            assert cell["bytes"] == encoder.jpeg(image_id=image.pk, file=image.file.name)
            assert image.model_name == row[side + "_model"]


def test_the_plain_parquet_loader_decodes_the_images_too(small_campaign, tmp_path):
    export = build(small_campaign, format=FORMAT)
    files = sorted(str(p) for p in (Path(export.folder) / "data").glob("*.parquet"))
    data = load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))

    row = data["train"][0]
    assert isinstance(row["chosen"], PILImage.Image)
    assert isinstance(row["rejected"], PILImage.Image)


def test_chosen_is_the_image_the_rater_preferred_and_rows_trace_to_their_judgment(
    judged_campaign,
):
    export = build(judged_campaign, format=FORMAT)
    rows = parquet_rows(export.folder, "data/*.parquet")

    # Only the rater with preferences: 8 prompts x 3 pairs; ties and both_bad left out.
    assert len(rows) == 24
    order = {"model-a": 0, "model-b": 1, "model-c": 2}
    assert all(order[r["chosen_model"]] < order[r["rejected_model"]] for r in rows)
    assert export.manifest["counts"]["excluded"] == {"both_bad": 24}
    assert export.manifest["counts"]["ties_dropped"] == 24
    keys = dict(Membership.objects.values_list("user_id", "rater_key"))
    for row in rows:
        judgment = Judgment.objects.get(pk=row["judgment_id"])
        assert keys[judgment.annotator_id] == row["user_id"]
        assert judgment.answers["overall"] == row["chosen_uid"]
        assert (row["chosen_rank"], row["rejected_rank"]) == (1, 2)
        assert row["ranking_id"] // 64 == row["judgment_id"]


def test_ranking_ids_are_those_of_the_same_pairs_in_the_pickapic_export(judged_campaign):
    pickapic = build(judged_campaign, format="pickapic")
    preference = build(judged_campaign, format=FORMAT)

    pairs = {
        r["ranking_id"]: {r["image_0_uid"], r["image_1_uid"]}
        for r in parquet_rows(pickapic.folder, "data/*.parquet")
    }
    rows = parquet_rows(preference.folder, "data/*.parquet")
    assert all(pairs[r["ranking_id"]] == {r["chosen_uid"], r["rejected_uid"]} for r in rows)


def test_rankings_give_one_row_per_strict_preference_with_the_ranks(db, tmp_path):
    export = build(_ranking_campaign(), format=FORMAT)
    rows = parquet_rows(export.folder, "data/*.parquet")

    assert len(rows) == 8  # two preferences per ranking; the m2 = m3 tie is dropped
    assert {(r["chosen_model"], r["rejected_model"]) for r in rows} == {("m1", "m2"), ("m1", "m3")}
    assert {(r["chosen_rank"], r["rejected_rank"]) for r in rows} == {(1, 2)}
    assert export.manifest["counts"]["ties_dropped"] == 4
    data = _load(export.folder, tmp_path)
    assert sum(len(split) for split in data.values()) == 8


def test_without_images_the_image_columns_are_empty_and_still_load(small_campaign, tmp_path):
    export = build(small_campaign, format=FORMAT, include_images=False)
    data = _load(export.folder, tmp_path)

    rows = [row for split in data.values() for row in split]
    assert rows and all(row["chosen"] is None and row["rejected"] is None for row in rows)


def test_the_card_declares_image_features_and_names_the_trainers_that_read_pickapic(
    small_campaign,
):
    export = build(small_campaign, format=FORMAT)
    card = (Path(export.folder) / "README.md").read_text()

    assert "- name: chosen\n    dtype: image" in card
    assert "- name: rejected\n    dtype: image" in card
    assert "train_diffusion_dpo.py" in card and "`pickapic` format" in card
    # No trainer of the TRL library reads images in chosen/rejected; the card must not say so.
    assert "TRL" not in card and "trl" not in card.lower().split()


def test_its_shards_keep_the_image_features_for_any_arrow_reader(small_campaign):
    export = build(small_campaign, format=FORMAT)
    (shard,) = (Path(export.folder) / "data").glob("train-*.parquet")
    schema = pq.read_schema(shard)

    assert b"huggingface" in schema.metadata
    assert '"chosen": {"_type": "Image"}' in schema.metadata[b"huggingface"].decode()


def test_each_row_carries_its_pairs_consensus_oriented_to_chosen(tmp_path):
    campaign = campaign_with_comparisons(prompts=3, models=("model-a", "model-b"))
    bulk_judge(campaign, [annotator(campaign), annotator(campaign)], prefer_models_ab())
    bulk_judge(campaign, [annotator(campaign)], prefer_models_ab(reverse=True))
    export = build(
        campaign,
        format=FORMAT,
        splits={"validation": 0.0, "test": 0.0, "max_prompts": 100},
        policy={"consensus": "majority", "contested_below": 0.6},
    )
    rows = parquet_rows(export.folder, "data/*.parquet")
    assert len(rows) == 9  # three raters, three pairs
    for row in rows:
        agrees = 1.0 if row["chosen_model"] == "model-a" else 0.0
        assert row["consensus_label"] == row["majority_label"] == agrees
        # Two votes of three for model-a: confidence 2/3, above the 0.6 threshold.
        assert row["consensus_confidence"] == pytest.approx(2 / 3)
        assert not row["consensus_contested"]
        assert row["consensus_votes"] == 3
    assert export.manifest["counts"]["consensus"] == {
        "model": "majority",
        "contested_below": 0.6,
        "pairs": 3,
        "contested_pairs": 0,
    }
    card = (Path(export.folder) / "README.md").read_text()
    assert "## Consensus" in card and "oriented to `chosen`" in card
    features = _load(export.folder, tmp_path)["train"].features
    assert features["consensus_label"] == Value("float64")
    assert features["consensus_contested"] == Value("bool")
    assert features["consensus_votes"] == Value("int64")


def test_a_split_pair_is_contested_not_forced(tmp_path):
    campaign = campaign_with_comparisons(prompts=2, models=("model-a", "model-b"))
    bulk_judge(campaign, [annotator(campaign)], prefer_models_ab())
    bulk_judge(campaign, [annotator(campaign)], prefer_models_ab(reverse=True))
    export = build(campaign, format=FORMAT)
    rows = parquet_rows(export.folder, "data/*.parquet")
    assert {(r["consensus_label"], r["consensus_contested"]) for r in rows} == {(0.5, True)}
    assert export.manifest["counts"]["consensus"]["contested_pairs"] == 2


def prefer_models_ab(*, reverse: bool = False):
    from tests.exports.helpers import prefer_models

    order = ("model-a", "model-b")
    return prefer_models(*(order[::-1] if reverse else order))
