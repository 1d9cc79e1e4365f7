"""RankDPO through the real trainer: the ranked export, the tiny pipeline at 32 px, on CPU."""

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from tests.training.conftest import write_ranked_export  # noqa: E402
from training.trainer.data import (  # noqa: E402
    TrainerInputError,
    count_ranked_lists,
    find_parquet_files,
    iter_ranked_lists,
)
from training.trainer.dpo import DPOConfig, main  # noqa: E402


def _config(tiny_model_dir, data, output, **options) -> DPOConfig:
    defaults = {
        "method": "rankdpo",
        "resolution": 32,
        "train_batch_size": 4,
        "max_train_steps": 3,
        "checkpointing_steps": 1,
        "dataloader_num_workers": 0,
        "encode_batch_size": 4,
        "learning_rate": 1e-3,
    }
    return DPOConfig(data=data, pretrained=tiny_model_dir, output=output, **(defaults | options))


def _events(output) -> list[dict]:
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


def test_it_reads_rankings_as_relevance_and_drops_all_tie_rows(ranked_export_dir):
    files = find_parquet_files(ranked_export_dir, "train")
    counts = count_ranked_lists(files)
    assert (counts.rows, counts.ties, counts.pairs, counts.k) == (5, 1, 4, 3)
    lists = list(iter_ranked_lists(files))
    assert [ranked.psi for ranked in lists] == [
        [1.0, 0.5, 0.0],
        [0.0, 1.0, 0.5],
        [0.0, 0.0, 1.0],
        [1.0, 0.0, 0.5],
    ]
    assert all(len(ranked.images) == 3 for ranked in lists)
    assert lists[0].caption == "a photo of a dog number 0"


def test_it_rejects_lists_of_several_lengths_and_a_pickapic_export(tmp_path, export_dir):
    mixed = write_ranked_export(tmp_path / "mixed", [[1, 2], [1, 2, 3]])
    with pytest.raises(TrainerInputError, match=r"lists of one length; .* \[2, 3\] images"):
        count_ranked_lists(find_parquet_files(mixed, "train"))
    with pytest.raises(TrainerInputError, match="export the ranked format"):
        count_ranked_lists(find_parquet_files(export_dir, "train"))


@pytest.mark.slow
def test_a_tiny_rankdpo_run_starts_at_the_dcg_weighted_ln2_trains_and_saves(
    tiny_model_dir, ranked_export_dir, tmp_path
):
    out = tmp_path / "out"
    result = main(_config(tiny_model_dir, ranked_export_dir, out))
    assert (result.final_step, result.pairs, result.ties_dropped) == (3, 4, 1)

    events = _events(out)
    assert (events[0]["pairs"], events[0]["ties_dropped"], events[0]["list_length"]) == (4, 1, 3)
    steps = [e for e in events if e["event"] == "step"]
    # A fresh LoRA equals its reference: every score is 0, the model ranks each list in its
    # stored order (tau = 1, 2, 3) and each labelled pair adds w_ij * ln 2 (Eqs. 6 and 7).
    # The first batch holds all four lists.
    expected = (
        math.log(2)
        * sum(
            _dcg_weight_sum(psi)
            for psi in ([1.0, 0.5, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0], [1.0, 0.0, 0.5])
        )
        / 4
    )
    assert steps[0]["loss"] == pytest.approx(expected, rel=1e-5)
    assert steps[0]["implicit_acc"] == 0.5  # every labelled pair is an exact tie
    assert steps[-1]["loss"] != pytest.approx(steps[0]["loss"], rel=1e-4)

    early = load_file(out / "checkpoints" / "step-1" / "trainable_params.safetensors")
    late = load_file(out / "checkpoints" / "step-3" / "trainable_params.safetensors")
    assert early and all("lora" in name for name in early)
    assert all(not torch.equal(early[name], late[name]) for name in early)
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    saved = json.loads((out / "dpo_config.json").read_text())
    assert saved["method"] == "rankdpo"
    assert events[-1]["event"] == "done"


def _dcg_weight_sum(psi: list[float]) -> float:
    """Sum over psi_i > psi_j of |2^psi_i - 2^psi_j| * |1/ln(1 + i) - 1/ln(1 + j)|, tau = i."""
    total = 0.0
    for i, better in enumerate(psi, start=1):
        for j, worse in enumerate(psi, start=1):
            if better > worse:
                total += abs(2**better - 2**worse) * abs(1 / math.log1p(i) - 1 / math.log1p(j))
    return total
