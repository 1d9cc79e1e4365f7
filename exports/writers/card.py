"""The dataset card README.md: `configs:` (data files per split) and an exact
`dataset_info:` (features, rows and Arrow bytes per split), so `load_dataset(EXPORT_DIR)`
finds the custom split names and checks the sizes.

Written by hand (JSON strings are valid YAML scalars), so the web image needs no YAML
library. Nothing time- or id-dependent goes in: the same data gives the same card.
"""

import json
from pathlib import Path

from exports.context import FormatResult
from exports.writers.table import features_of

# Which code reads each format unchanged; name a consumer only once it has been tried.
READERS = {
    "pickapic": (
        "The columns of Pick-a-Pic v2 (`yuvalkirstain/pickapic_v2`): diffusers' Diffusion-DPO "
        "training example (`examples/research_projects/diffusion_dpo/train_diffusion_dpo.py`) "
        "and Pickwise's own trainer (`python -m training.dpo`) train on it as it is."
    ),
    "ranked": (
        "One row per ranking, every image with its rank: Pickwise's trainer trains RankDPO on "
        "it (`python -m training.dpo --method rankdpo`)."
    ),
    "image_preference": (
        "One row per preference with `chosen` and `rejected` as `datasets.Image` features, "
        "so `load_dataset` returns decoded PIL images; the uid, model and rank columns, "
        "`ranking_id` (the same pair's id in a Pick-a-Pic export), `judgment_id` and "
        "`user_id` trace each row to its judgment. It is meant for reading and evaluating "
        "preferences (reward models, win rates, the dataset viewer). No trainer in this "
        "project or in diffusers' examples reads this layout unchanged: to train with "
        "Diffusion-DPO, export the `pickapic` format, which diffusers' DPO script "
        "(`train_diffusion_dpo.py`) and Pickwise's trainer read."
    ),
}
# What each format's consensus columns mean (exports.consensus); formats without them absent.
CONSENSUS = {
    "pickapic": (
        "After the Pick-a-Pic columns, each row's image pair's consensus over every judgment "
        "the export keeps, oriented to image 0 like `label_0`: `consensus_label_0` (1.0 or "
        "0.0, 0.5 where the pair is contested), `consensus_confidence` (the probability of "
        "the consensus winner), `consensus_contested`, `majority_label_0` (the plurality of "
        "votes, for reference), `consensus_votes`, `comparison_judgments` and "
        "`comparison_settled`. The model and the contested threshold are in the manifest's "
        "policy."
    ),
    "image_preference": (
        "Each row's image pair's consensus over every judgment the export keeps (ties "
        "included), oriented to `chosen`: `consensus_label` is 1.0 where the consensus "
        "prefers the chosen image, 0.0 where it prefers the rejected one (the row's rater "
        "went against it), 0.5 where the pair is contested; `consensus_confidence` (the "
        "probability of the consensus winner), `consensus_contested`, `majority_label` (the "
        "plurality of votes, for reference), `consensus_votes`, `comparison_judgments` and "
        "`comparison_settled`. The model and the contested threshold are in the manifest's "
        "policy."
    ),
    "ranked": (
        "Each row's comparison's consensus over every ranking of it the export keeps, in the "
        "row's own image order. The model gives each pair of images the probability that one "
        "is better (the rankings expanded into their pairs); `consensus_ranking` (1 = best) "
        "is the finest ranking in which every order it states is a pair decided with at "
        "least the contested threshold's confidence: images whose order is contested, or "
        "which beat one another round a cycle, share a rank rather than being forced apart. "
        "`consensus_confidence` is the least certain pair's confidence (the probability of "
        "its more likely winner), `consensus_contested` says the consensus ranking leaves "
        "images level, `majority_ranking` orders the images by their Borda points over the "
        "comparison's rankings (for reference), `consensus_votes` counts those rankings; "
        "then `comparison_judgments` and `comparison_settled`. The model and the contested "
        "threshold are in the manifest's policy."
    ),
}


def _yaml_feature(name: str, feature: dict, indent: str) -> list[str]:
    if feature["_type"] == "Image":
        return [f"{indent}- name: {name}", f"{indent}  dtype: image"]
    if feature["_type"] == "List":
        return [f"{indent}- name: {name}", f"{indent}  list: {feature['feature']['dtype']}"]
    return [f"{indent}- name: {name}", f"{indent}  dtype: {feature['dtype']}"]


def card_text(*, result: FormatResult, title: str, format: str, summary: dict) -> str:
    lines = ["---", f"pretty_name: {json.dumps(title)}", "tags:", "- pickwise", "- preferences"]
    lines.append("configs:")
    for position, (config, splits) in enumerate(result.configs.items()):
        if not splits:
            continue
        lines.append(f"- config_name: {config}")
        if position == 0:
            lines.append("  default: true")
        lines.append("  data_files:")
        for split, files in splits.items():
            lines.append(f"  - split: {split}")
            lines.append("    path:")
            lines.extend(f"    - {json.dumps(name)}" for name in files)
    if result.dataset_info:
        lines.append("dataset_info:")
        for config, info in result.dataset_info.items():
            if not info["splits"]:
                continue
            lines.append(f"- config_name: {config}")
            lines.append("  features:")
            for name, feature in features_of(info["schema"]).items():
                lines.extend(_yaml_feature(name, feature, "  "))
            lines.append("  splits:")
            for split in info["splits"]:
                lines.append(f"  - name: {split['name']}")
                lines.append(f"    num_bytes: {split['num_bytes']}")
                lines.append(f"    num_examples: {split['num_examples']}")
            lines.append(f"  download_size: {info['download_size']}")
            lines.append(f"  dataset_size: {sum(s['num_bytes'] for s in info['splits'])}")
    lines.append("---")
    lines.append("")
    lines.append(f"# {title}")
    lines.append("")
    lines.append(
        f"Human preference data exported from Pickwise in the `{format}` format. "
        "`manifest.json` beside this card records the export id and version, the quality "
        "policy, every count (judgments considered and left out, and why) and the sha256 "
        "of every file."
    )
    readers = READERS.get(format)
    if readers:
        lines.append("")
        lines.append("## Who reads it")
        lines.append("")
        lines.append(readers)
    consensus = CONSENSUS.get(format)
    if consensus:
        lines.append("")
        lines.append("## Consensus")
        lines.append("")
        lines.append(consensus)
    lines.append("")
    lines.append("## Summary")
    lines.append("")
    lines.append("```json")
    lines.append(json.dumps(summary, indent=2, sort_keys=True))
    lines.append("```")
    lines.append("")
    lines.append("## Loading")
    lines.append("")
    lines.append("```python")
    lines.append("from datasets import load_dataset")
    lines.append('data = load_dataset("path/to/this/folder")')
    if "dpo" in result.configs and result.configs["dpo"]:
        lines.append('pairs = load_dataset("path/to/this/folder", "dpo")  # no ties')
    lines.append("```")
    lines.append("")
    return "\n".join(lines)


def card_write(*, folder: Path, result: FormatResult, title: str, format: str, summary: dict):
    for config, info in result.dataset_info.items():
        info["download_size"] = sum(
            (folder / name).stat().st_size
            for files in result.configs[config].values()
            for name in files
        )
    text = card_text(result=result, title=title, format=format, summary=summary)
    (folder / "README.md").write_text(text, encoding="utf-8")
