"""Optional PickScore reward for generated images, off unless a local model folder is given.

PickScore (Kirstain et al., 2023) is a CLIP model fine-tuned on Pick-a-Pic preferences; its
score is ``logit_scale * cos(text embedding, image embedding)``. The folder must hold a CLIP
model and its processor saved with ``save_pretrained`` (e.g. PickScore_v1 with the
CLIP-ViT-H-14 processor files copied beside it). Nothing is ever downloaded: loading uses
``local_files_only=True``.

The setting is the environment variable PICKWISE_REWARD_MODEL_DIR (or the ``model_dir``
argument); unset means no scoring. torch and transformers are imported only when a scorer is
built, so checking whether scoring is on is free.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

REWARD_DIR_SETTING = "PICKWISE_REWARD_MODEL_DIR"
ERROR_REWARD_DIR_MISSING = "The reward model folder {folder} does not exist."
ERROR_REWARD_DIR_INCOMPLETE = (
    "The reward model folder {folder} has no config.json; save a CLIP model there with "
    "save_pretrained (weights are never downloaded)."
)
ERROR_LENGTHS = "Got {images} images for {prompts} prompts; they must pair up."


class RewardModelError(ValueError):
    pass


def reward_model_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The configured folder, or None when reward scoring is off (the default)."""
    environ = os.environ if environ is None else environ
    value = environ.get(REWARD_DIR_SETTING, "").strip()
    return Path(value).expanduser() if value else None


def check_reward_dir(folder: str | Path) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise RewardModelError(ERROR_REWARD_DIR_MISSING.format(folder=folder))
    if not (folder / "config.json").is_file():
        raise RewardModelError(ERROR_REWARD_DIR_INCOMPLETE.format(folder=folder))
    return folder


class PickScoreScorer:
    """Scores (prompt, image) pairs with a CLIP model from a local folder."""

    def __init__(self, model_dir: str | Path, *, device: str | None = None):
        import torch
        from transformers import AutoProcessor, CLIPModel

        from .pipelines import pick_device

        folder = check_reward_dir(model_dir)
        self.device = pick_device(device)
        dtype = torch.float32 if self.device.type == "cpu" else torch.float16
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.model = CLIPModel.from_pretrained(folder, local_files_only=True, dtype=dtype)
        self.model.to(self.device).eval()

    def score(self, prompts: Sequence[str], images: Sequence) -> list[float]:
        """One score per (prompt, PIL image) pair; higher is preferred."""
        import torch

        if len(prompts) != len(images):
            raise RewardModelError(ERROR_LENGTHS.format(images=len(images), prompts=len(prompts)))
        if not prompts:
            return []
        image_inputs = self.processor(images=list(images), return_tensors="pt")
        text_inputs = self.processor(
            text=list(prompts), padding=True, truncation=True, max_length=77, return_tensors="pt"
        )
        dtype = self.model.dtype
        with torch.inference_mode():
            image_embeds = _embeddings(
                self.model.get_image_features(
                    pixel_values=image_inputs["pixel_values"].to(self.device, dtype)
                )
            )
            text_embeds = _embeddings(
                self.model.get_text_features(
                    **{key: value.to(self.device) for key, value in text_inputs.items()}
                )
            )
            image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
            text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
            scores = self.model.logit_scale.exp() * (text_embeds * image_embeds).sum(dim=-1)
        return [float(value) for value in scores.float().cpu()]


def _embeddings(output):
    """transformers 5 returns a model output whose pooler_output is the projection."""
    return output if hasattr(output, "norm") else output.pooler_output


def reward_scorer_from_settings(
    *, model_dir: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> PickScoreScorer | None:
    """A scorer when a folder is given or configured, else None (scoring off)."""
    folder = Path(model_dir) if model_dir is not None else reward_model_dir(environ)
    if folder is None:
        return None
    return PickScoreScorer(folder)
