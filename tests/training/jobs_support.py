"""Finished exports made through the real services, and tiny trainer settings, for the job and
evaluation tests."""

import json

from tests.exports.helpers import build, bulk_judge, constant, prefer_models
from tests.factories import annotator, campaign_with_comparisons

# A few steps of the tiny pipeline at 32 px, a checkpoint every two steps, no loader workers
# (each would import torch again on a 2-core machine).
TINY_OPTIONS = {
    "resolution": 32,
    "train_batch_size": 2,
    "max_train_steps": 4,
    "checkpointing_steps": 2,
    "dataloader_num_workers": 0,
    "encode_batch_size": 8,
}


def finished_export(
    *, prompts: int = 4, ties_only: bool = False, campaign=None, format: str = "pickapic"
):
    """A finished export (pickapic unless told) of a campaign with two models; its test split
    has held-out prompts (a quarter of them)."""
    campaign = campaign or campaign_with_comparisons(prompts=prompts, models=("model-a", "model-b"))
    answer = constant("tie") if ties_only else prefer_models("model-a", "model-b")
    bulk_judge(campaign, [annotator(campaign), annotator(campaign)], answer)
    return build(
        campaign, format=format, splits={"validation": 0.0, "test": 0.25, "max_prompts": 100}
    )


def pipeline_folder(root, name: str, *, sample_size, vae_blocks) -> str:
    """A pipeline folder with the two configs the defaults read (weights are not needed)."""
    folder = root / name
    (folder / "unet").mkdir(parents=True)
    (folder / "vae").mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (folder / "unet" / "config.json").write_text(json.dumps({"sample_size": sample_size}))
    (folder / "vae" / "config.json").write_text(json.dumps({"block_out_channels": vae_blocks}))
    return str(folder)
