import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from tests.training.conftest import write_export  # noqa: E402
from training.trainer.checkpoints import CheckpointError  # noqa: E402
from training.trainer.config import TrainerInputError  # noqa: E402
from training.trainer.dpo import DPOConfig, build_parser, cli  # noqa: E402


@pytest.fixture
def paths(tiny_model_dir, export_dir, tmp_path):
    return {"data": export_dir, "pretrained": tiny_model_dir, "output": tmp_path / "out"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "mapo", "mode": "full", "reference_model": "."}, "MaPO is reference-free"),
        ({"reference_model": "."}, "--reference-model needs --mode full"),
        ({"mode": "full", "lora_rank": 4}, "--lora-rank and --lora-alpha apply to --mode lora"),
        ({"mixed_precision": "fp16"}, "fp16 mixed precision needs a CUDA GPU"),
        ({"resolution": 60}, "resolution must be a positive multiple of 8, not 60"),
        ({"method": "ppo"}, "method must be one of"),
        ({"train_batch_size": 0}, "train_batch_size must be > 0"),
        ({"prompt_dropout": 1.0}, r"prompt_dropout must be in \[0, 1\)"),
    ],
)
def test_it_rejects_impossible_combinations(paths, options, message):
    if options.get("mixed_precision") == "fp16" and torch.cuda.is_available():
        pytest.skip("fp16 is valid where CUDA is available")
    with pytest.raises(ValueError, match=message):
        DPOConfig(**paths, **options)


def test_it_rejects_a_missing_model_folder_and_a_folder_that_is_not_a_pipeline(paths, tmp_path):
    with pytest.raises(ValueError, match="pretrained model folder not found"):
        DPOConfig(**paths | {"pretrained": tmp_path / "nope"})
    with pytest.raises(ValueError, match="not a diffusers pipeline folder"):
        DPOConfig(**paths | {"pretrained": tmp_path})


def test_defaults_resolve_per_mode_and_device(paths):
    lora = DPOConfig(**paths).resolved(world_size=2, cuda=False)
    assert (lora.lora_rank, lora.lora_alpha, lora.learning_rate) == (8, 8, 1e-5)
    assert (lora.lr_warmup_steps, lora.prompt_dropout, lora.mixed_precision) == (0, 0.0, "no")
    assert lora.cache_dir == paths["output"] / "cache"
    full = DPOConfig(**paths, mode="full", gradient_accumulation_steps=4).resolved(
        world_size=2, cuda=True
    )
    # 1e-8 x effective batch: 8 pairs x 4 accumulation x 2 processes (float64 products in
    # another order: 1e-16 apart, well inside approx's default rel 1e-6).
    assert full.learning_rate == pytest.approx(1e-8 * 64)
    assert (full.lora_rank, full.lr_warmup_steps, full.prompt_dropout) == (None, 500, 0.2)
    assert full.mixed_precision == "bf16"


def test_the_command_line_has_one_option_per_field_with_choices(paths):
    parser = build_parser()
    args = parser.parse_args(
        [
            "--data", str(paths["data"]), "--pretrained", str(paths["pretrained"]),
            "--output", str(paths["output"]), "--method", "mapo", "--no-random-flip",
            "--lora-targets", "to_q", "to_v", "--learning-rate", "3e-5",
        ]
    )  # fmt: skip
    config = DPOConfig(**vars(args))
    assert (config.method, config.random_flip, config.learning_rate) == ("mapo", False, 3e-5)
    assert config.lora_targets == ("to_q", "to_v")
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "x", "--pretrained", "y", "--output", "z", "--mode", "qlora"])


def test_an_export_with_only_ties_fails_at_start_with_a_clear_message(
    tiny_model_dir, tmp_path, capsys
):
    ties = write_export(tmp_path / "ties", [0.5, 0.5, 0.5])
    out = tmp_path / "out"
    argv = ["--data", str(ties), "--pretrained", str(tiny_model_dir), "--output", str(out)]
    assert cli(argv) == 2
    error = capsys.readouterr().err
    assert "error: no preference pairs" in error
    assert "all 3 rows are ties" in error
    assert not (out / "checkpoints").exists()


def test_the_module_exits_non_zero_with_one_error_line_on_a_missing_model(export_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training.dpo", "--data", str(export_dir),
         "--pretrained", str(tmp_path / "missing"), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: invalid training config: pretrained model folder not found")
    )


def test_only_the_trainers_own_input_errors_are_reported_as_refused_input(
    export_dir, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    import training.trainer.dpo

    argv = ["--data", str(export_dir), "--pretrained", str(tiny_model_dir)]
    argv += ["--output", str(tmp_path / "out")]

    def fault(config):
        raise ValueError("a tensor of the wrong shape, deep in the step")

    monkeypatch.setattr(training.trainer.dpo, "main", fault)
    with pytest.raises(ValueError, match="wrong shape"):
        cli(argv)
    assert "error:" not in capsys.readouterr().err

    def refused(config):
        raise TrainerInputError("no preference pairs in the export")

    monkeypatch.setattr(training.trainer.dpo, "main", refused)
    assert cli(argv) == 2
    assert capsys.readouterr().err.strip() == "error: no preference pairs in the export"


def test_a_checkpoint_that_cannot_be_resumed_is_the_trainers_input_error():
    assert issubclass(CheckpointError, TrainerInputError)
