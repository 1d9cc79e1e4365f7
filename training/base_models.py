"""What a base pipeline folder says about itself, read from its config JSON (no torch).

The native resolution is the UNet's sample_size (in latent pixels) times the VAE's scale
factor, 2 ** (number of VAE blocks - 1), as diffusers computes it: 64 x 8 = 512 for Stable
Diffusion 1.5, 128 x 8 = 1024 for SDXL, 32 x 2 = 64 for the tiny test pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.options import OPTIONS

# The trainer's default run (2000 steps at 512 px) keeps its pixel budget at other sizes,
# between these bounds: a 64 px test pipeline gets a short run, a 1024 px one no more.
DEFAULT_STEPS_RESOLUTION = 512
MIN_DEFAULT_STEPS = 100


def _config(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def native_resolution(folder: str | Path) -> int | None:
    """The pipeline's native image size in pixels, or None when its configs do not say."""
    folder = Path(folder)
    sample_size = _config(folder / "unet" / "config.json").get("sample_size")
    blocks = _config(folder / "vae" / "config.json").get("block_out_channels")
    if isinstance(sample_size, list | tuple) and sample_size:
        sample_size = min(sample_size)  # (height, width) in some configs
    if not isinstance(sample_size, int) or sample_size <= 0:
        return None
    if not isinstance(blocks, list | tuple) or not blocks:
        return None
    return sample_size * 2 ** (len(blocks) - 1)


def default_steps(resolution: int) -> int:
    """The trainer's default steps scaled by pixel area, rounded to 100, within bounds."""
    default = OPTIONS["max_train_steps"].default
    scaled = default * (resolution / DEFAULT_STEPS_RESOLUTION) ** 2
    return int(min(default, max(MIN_DEFAULT_STEPS, round(scaled / 100) * 100)))


def training_defaults(folder: str | Path) -> dict[str, int]:
    """Resolution and steps a training form starts from for this base pipeline."""
    resolution = native_resolution(folder) or OPTIONS["resolution"].default
    resolution = max(8, resolution // 8 * 8)  # the trainer takes multiples of 8 only
    return {"resolution": resolution, "max_train_steps": default_steps(resolution)}
