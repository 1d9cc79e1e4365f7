"""The export formats, one registry for the places that list them (the exports page).
Keys are Export.Format's values; a test keeps the two in step."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    key: str
    label: str
    read_by: str  # one line: what reads it unchanged
    trains: bool  # a training format: gold and repeats are always left out
    configs: tuple[str, ...] = ()  # extra `load_dataset` configs beside the default


EXPORT_FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat(
        key="pickapic",
        label="Pick-a-Pic v2",
        read_by=(
            "diffusers' train_diffusion_dpo.py and python -m training.dpo (Diffusion-DPO, "
            "MaPO) train on it as it is; the dpo config drops ties."
        ),
        trains=True,
        configs=("dpo",),
    ),
    ExportFormat(
        key="image_preference",
        label="Image preference",
        read_by=(
            "datasets, with chosen and rejected as decoded images: reward models, win rates, "
            "the dataset viewer (no trainer reads it unchanged)."
        ),
        trains=True,
    ),
    ExportFormat(
        key="ranked",
        label="Ranked",
        read_by="datasets and python -m training.dpo --method rankdpo (one row per ranking).",
        trains=True,
    ),
    ExportFormat(
        key="jsonl",
        label="JSON lines",
        read_by="any JSON reader: every judgment, kept or not, with the reason.",
        trains=False,
    ),
)


def export_format(key: str) -> ExportFormat | None:
    return next((fmt for fmt in EXPORT_FORMATS if fmt.key == key), None)
