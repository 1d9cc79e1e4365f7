"""Resolution and steps defaults read from a base pipeline's config JSON, without torch."""

import pytest

from tests.training.jobs_support import pipeline_folder
from training.base_models import default_steps, native_resolution, training_defaults


@pytest.mark.parametrize(
    ("sample_size", "vae_blocks", "resolution", "steps"),
    [
        (32, [4, 8], 64, 100),  # the tiny test pipeline (generation.tiny_model)
        (64, [128, 256, 512, 512], 512, 2000),  # Stable Diffusion 1.5
        (128, [128, 256, 512, 512], 1024, 2000),  # SDXL: no more than the trainer's default
        (32, [128, 256, 512, 512], 256, 500),
        ([96, 96], [128, 256, 512, 512], 768, 2000),  # (height, width) form
    ],
)
def test_the_native_resolution_is_the_unet_sample_size_times_the_vae_scale(
    tmp_path, sample_size, vae_blocks, resolution, steps
):
    folder = pipeline_folder(tmp_path, "m", sample_size=sample_size, vae_blocks=vae_blocks)
    assert native_resolution(folder) == resolution
    assert training_defaults(folder) == {"resolution": resolution, "max_train_steps": steps}


def test_a_folder_without_readable_configs_gets_the_trainers_defaults(tmp_path):
    (tmp_path / "bare").mkdir()
    (tmp_path / "broken" / "unet").mkdir(parents=True)
    (tmp_path / "broken" / "unet" / "config.json").write_text("{not json")
    for folder in (tmp_path / "bare", tmp_path / "broken", tmp_path / "missing"):
        assert native_resolution(folder) is None
        assert training_defaults(folder) == {"resolution": 512, "max_train_steps": 2000}


def test_steps_keep_the_default_pixel_budget_within_bounds():
    assert [default_steps(r) for r in (8, 64, 128, 256, 384, 512, 2048)] == [
        100,
        100,
        100,
        500,
        1100,
        2000,
        2000,
    ]
