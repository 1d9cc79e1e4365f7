"""Fixtures for the DPO trainer tests: a tiny model folder and Pick-a-Pic parquet exports."""

import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def random_jpeg(seed: int, size: tuple[int, int] = (80, 64)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_export(folder: Path, labels: list[float], *, split: str = "train") -> Path:
    """An export folder with one parquet shard of random JPEG pairs, one row per label."""
    rows = len(labels)
    table = pa.table(
        {
            "jpg_0": pa.array([random_jpeg(2 * i) for i in range(rows)], pa.binary()),
            "jpg_1": pa.array([random_jpeg(2 * i + 1) for i in range(rows)], pa.binary()),
            "label_0": pa.array(labels, pa.float64()),
            "label_1": pa.array([1 - label for label in labels], pa.float64()),
            "caption": pa.array([f"a photo of a cat number {i}" for i in range(rows)]),
        }
    )
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


def write_ranked_export(folder: Path, rankings: list[list[int]], *, split: str = "train") -> Path:
    """A ranked-format export (exports.writers.ranked's columns) of random JPEG lists."""
    rows = len(rankings)
    images = [[random_jpeg(100 * i + j) for j in range(len(r))] for i, r in enumerate(rankings)]
    table = pa.table(
        {
            "prompt": pa.array([f"a photo of a dog number {i}" for i in range(rows)]),
            "images": pa.array(images, pa.list_(pa.binary())),
            "image_uids": pa.array(
                [[f"{i}-{j}" for j in range(len(r))] for i, r in enumerate(rankings)],
                pa.list_(pa.string()),
            ),
            "models": pa.array([["m"] * len(r) for r in rankings], pa.list_(pa.string())),
            "ranking": pa.array(rankings, pa.list_(pa.int64())),
            "user_id": pa.array(list(range(rows)), pa.int64()),
        }
    )
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    pytest.importorskip("diffusers")
    from generation.tiny_model import cached_tiny_pipeline_dir

    return cached_tiny_pipeline_dir()


@pytest.fixture
def export_dir(tmp_path) -> Path:
    # Five pairs in both orientations and one tie.
    return write_export(tmp_path / "export", [1.0, 0.0, 0.5, 1.0, 0.0, 1.0])


@pytest.fixture
def ranked_export_dir(tmp_path) -> Path:
    # Four rankings of three images (one with a tie) and one where all three tie.
    rankings = [[1, 2, 3], [3, 1, 2], [2, 2, 1], [1, 3, 2], [1, 1, 1]]
    return write_ranked_export(tmp_path / "ranked", rankings)


# Training jobs (the Django side) ------------------------------------------------------------
@pytest.fixture
def training_dirs(settings, tmp_path):
    """Job folders and exports under the test's own folder."""
    settings.TRAINING_ROOT = tmp_path / "training"
    settings.EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture
def pipeline_layout_dir(tmp_path) -> Path:
    """A folder that passes the start checks (model_index.json) without weights in it."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    return folder
