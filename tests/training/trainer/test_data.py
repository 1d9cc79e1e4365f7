import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from tests.training.conftest import random_jpeg, write_export  # noqa: E402
from training.trainer.data import (  # noqa: E402
    CachedPairDataset,
    FeatureCache,
    PairBatchSampler,
    PairKeys,
    TrainerInputError,
    content_key,
    count_labels,
    find_parquet_files,
    iter_pairs,
    load_image,
)


def test_it_drops_ties_with_a_count(export_dir):
    files = find_parquet_files(export_dir, "train")
    counts = count_labels(files)
    assert (counts.rows, counts.ties, counts.pairs) == (6, 1, 5)
    assert len(list(iter_pairs(files))) == 5


def test_the_winner_is_image_0_when_label_0_is_one_and_image_1_otherwise(export_dir):
    pairs = list(iter_pairs(find_parquet_files(export_dir, "train")))
    # Rows 0 (label 1.0) and 1 (label 0.0); the tie (row 2) is skipped.
    assert pairs[0].winner == random_jpeg(0) and pairs[0].loser == random_jpeg(1)
    assert pairs[1].winner == random_jpeg(3) and pairs[1].loser == random_jpeg(2)
    assert pairs[2].caption == "a photo of a cat number 3"


def test_it_reads_a_named_split_of_an_export(tmp_path):
    write_export(tmp_path, [1.0], split="train")
    write_export(tmp_path, [0.0, 1.0], split="validation")
    assert [p.name for p in find_parquet_files(tmp_path, "validation")] == [
        "validation-00000-of-00001.parquet"
    ]
    with pytest.raises(TrainerInputError, match=r"split 'test'.*splits found: train, validation"):
        find_parquet_files(tmp_path, "test")


def test_it_reads_a_plain_folder_of_parquet_files(tmp_path):
    write_export(tmp_path / "x", [1.0, 0.0])
    plain = tmp_path / "x" / "data"
    (plain / "train-00000-of-00001.parquet").rename(plain / "part-0.parquet")
    assert [p.name for p in find_parquet_files(plain, "train")] == ["part-0.parquet"]


def test_it_rejects_a_folder_without_parquet_files(tmp_path):
    with pytest.raises(TrainerInputError, match="no parquet files"):
        find_parquet_files(tmp_path, "train")


def test_it_rejects_missing_columns_and_unknown_labels(tmp_path):
    pq.write_table(pa.table({"caption": ["a"], "label_0": [1.0]}), tmp_path / "a.parquet")
    with pytest.raises(TrainerInputError, match="lacks the Pick-a-Pic column"):
        count_labels([tmp_path / "a.parquet"])
    bad = write_export(tmp_path / "bad", [1.0, 0.7])
    with pytest.raises(TrainerInputError, match=r"label_0 must be 1.0, 0.0 or 0.5.*0.7"):
        count_labels(find_parquet_files(bad, "train"))


def test_images_are_centre_cropped_to_the_resolution_in_minus_one_to_one():
    image = load_image(random_jpeg(0, size=(80, 48)), 32)
    assert image.shape == (3, 32, 32)
    assert image.min() >= -1 and image.max() <= 1


def _fake_cache(tmp_path, pairs: int) -> tuple[FeatureCache, list[PairKeys]]:
    """Latents whose values say which image and orientation they are."""
    cache = FeatureCache(root=tmp_path, vae_fingerprint="v", text_fingerprint="t", resolution=8)
    keys = []
    for index in range(pairs):
        names = (f"w{index}", f"l{index}", f"c{index}")
        for sign, name in ((1, names[0]), (-1, names[1])):
            value = sign * (index + 1)
            cache.put(
                cache.latent_path(name),
                {
                    "mean": torch.full((4, 2, 2), float(value)),
                    "std": torch.zeros(4, 2, 2),
                    "mean_flip": torch.full((4, 2, 2), value + 0.5 * sign),
                    "std_flip": torch.zeros(4, 2, 2),
                },
            )
        cache.put(cache.text_path(names[2]), {"embedding": torch.full((3, 2), float(index))})
        keys.append(PairKeys(*names))
    cache.put(cache.text_path("empty"), {"embedding": torch.full((3, 2), -1.0)})
    return cache, keys


def _dataset(cache, keys, **options):
    defaults = {"seed": 0, "random_flip": True, "prompt_dropout": 0.0}
    return CachedPairDataset(
        pairs=keys, cache=cache, empty_caption_key="empty", **(defaults | options)
    )


def test_winner_and_loser_share_one_flip_and_both_orientations_occur(tmp_path):
    cache, keys = _fake_cache(tmp_path, 4)
    dataset = _dataset(cache, keys)
    flips = []
    for position in range(16):
        item = dataset[position]
        winner_flipped = item["mean_w"][0, 0, 0].item() % 1 != 0
        loser_flipped = item["mean_l"][0, 0, 0].item() % 1 != 0
        assert winner_flipped == loser_flipped
        # Winner and loser come from the same pair. Whole and half numbers are exact in
        # float32, so the two sizes are equal, not just close.
        assert abs(item["mean_w"][0, 0, 0].item()) == abs(item["mean_l"][0, 0, 0].item())
        flips.append(winner_flipped)
    assert 0 < sum(flips) < 16


def test_each_epoch_visits_every_pair_once_in_a_seeded_order(tmp_path):
    cache, keys = _fake_cache(tmp_path, 5)
    dataset = _dataset(cache, keys, random_flip=False)
    first = [dataset[p]["mean_w"][0, 0, 0].item() for p in range(5)]
    second = [dataset[p]["mean_w"][0, 0, 0].item() for p in range(5, 10)]
    assert sorted(first) == sorted(second) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert first != second  # a new order each epoch
    again = _dataset(cache, keys, random_flip=False)
    assert [again[p]["mean_w"][0, 0, 0].item() for p in range(5)] == first


def test_prompt_dropout_swaps_in_the_empty_prompt_embedding(tmp_path):
    cache, keys = _fake_cache(tmp_path, 3)
    never = _dataset(cache, keys, prompt_dropout=0.0)
    mostly = _dataset(cache, keys, prompt_dropout=0.9)
    assert all(never[p]["embedding"][0, 0].item() >= 0 for p in range(30))
    dropped = sum(mostly[p]["embedding"][0, 0].item() == -1 for p in range(30))
    assert 20 <= dropped < 30


def test_the_batch_sampler_gives_each_rank_its_own_slice_from_the_start_position():
    rank0 = iter(PairBatchSampler(batch_size=2, rank=0, world_size=2, start=3))
    rank1 = iter(PairBatchSampler(batch_size=2, rank=1, world_size=2, start=3))
    assert next(rank0) == [12, 13] and next(rank1) == [14, 15]
    assert next(rank0) == [16, 17]


def test_cache_keys_are_content_hashes():
    assert content_key(b"abc") == content_key(b"abc") != content_key(b"abd")
    assert content_key("a cat") == content_key(b"a cat")
