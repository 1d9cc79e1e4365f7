"""The real trainer on the tiny pipeline at 32 px, a few steps per run (CPU)."""

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from training.trainer.dpo import DPOConfig, main  # noqa: E402
from training.trainer.monitoring import MseTrend  # noqa: E402
from training.trainer.step import Objective, add_lora, compute_pair_loss, lora_reference  # noqa: E402

pytestmark = pytest.mark.slow

# float32(ln 2) is within half an ulp (2**-25, 3e-8) of math.log(2); 1e-7 allows that and the
# float32 softplus rounding, and nothing more.
LN2_FLOAT32_ABS = 1e-7


def _config(tiny_model_dir, export_dir, output, **options) -> DPOConfig:
    defaults = {
        "resolution": 32,
        "train_batch_size": 2,
        "max_train_steps": 3,
        "checkpointing_steps": 1,
        "dataloader_num_workers": 0,
        "encode_batch_size": 4,
        "learning_rate": 1e-3,  # visible changes in a few steps
    }
    return DPOConfig(
        data=export_dir, pretrained=tiny_model_dir, output=output, **(defaults | options)
    )


def _steps(output) -> list[dict]:
    lines = (output / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["event"] == "step"]


def _events(output) -> list[dict]:
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.numerics
def test_a_fresh_lora_starts_at_ln2_with_half_accuracy(tiny_model_dir, export_dir, tmp_path):
    main(_config(tiny_model_dir, export_dir, tmp_path / "out", max_train_steps=2))
    first, second = _steps(tmp_path / "out")
    # A fresh LoRA adds exactly zero, so policy and reference errors are equal bit for bit and
    # the loss is float32 softplus(0): ln 2 within half an ulp (3e-8) on any kernel.
    assert first["loss"] == pytest.approx(math.log(2), abs=LN2_FLOAT32_ABS)
    assert first["implicit_acc"] == 0.5
    assert first["reward_margin"] == 0.0
    assert first["mse_w"] == first["ref_mse_w"]
    # After one update the adapters are no longer a no-op: the loss moves by about 0.05, far
    # beyond the float32 rounding of ln 2.
    assert second["loss"] != pytest.approx(math.log(2), abs=1e-3)
    expected_keys = {"lr", "grad_norm", "samples_per_s", "peak_rss_gb", "ref_mse_l", "mse_l"}
    assert expected_keys <= set(first)


def test_it_logs_the_tie_count_and_every_step(tiny_model_dir, export_dir, tmp_path, caplog):
    caplog.set_level("INFO", logger="training.trainer")
    result = main(_config(tiny_model_dir, export_dir, tmp_path / "out", max_train_steps=2))
    assert (result.pairs, result.ties_dropped) == (5, 1)
    assert "dropped 1 ties (label_0 == 0.5) of 6 rows in 1 file(s); 5 pairs remain" in caplog.text
    events = _events(tmp_path / "out")
    assert events[0] | {"resumed_from": None} == events[0]
    assert (events[0]["ties_dropped"], events[0]["pairs"]) == (1, 5)
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2]
    assert events[-1]["event"] == "done"


@pytest.mark.numerics
def test_lora_training_changes_only_the_adapters(tiny_model_dir, export_dir, tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    out = tmp_path / "out"
    result = main(_config(tiny_model_dir, export_dir, out))

    early = load_file(out / "checkpoints" / "step-1" / "trainable_params.safetensors")
    late = load_file(out / "checkpoints" / "step-3" / "trainable_params.safetensors")
    assert early and all("lora" in name for name in early)
    assert all(not torch.equal(early[name], late[name]) for name in early)
    assert all(late[name].abs().sum() > 0 for name in late if "lora_B" in name)

    base = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet").state_dict()
    trained = {
        name.replace(".base_layer", ""): tensor
        for name, tensor in result.unet.state_dict().items()
        if "lora_" not in name
    }
    assert trained.keys() == base.keys()
    assert all(torch.equal(trained[name], base[name]) for name in base)
    for module, loader in (
        (result.vae, lambda: AutoencoderKL.from_pretrained(tiny_model_dir, subfolder="vae")),
        (
            result.text_encoder,
            lambda: CLIPTextModel.from_pretrained(tiny_model_dir, subfolder="text_encoder"),
        ),
    ):
        fresh = loader().state_dict()
        assert all(torch.equal(t, fresh[n]) for n, t in module.state_dict().items())
        assert not any(p.requires_grad for p in module.parameters())


@pytest.mark.numerics
def test_a_resumed_run_follows_the_uninterrupted_trajectory(tiny_model_dir, export_dir, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    cache = tmp_path / "cache"  # shared: the second job finds every feature cached
    common = {"checkpointing_steps": 2, "cache_dir": cache, "random_flip": True}
    main(_config(tiny_model_dir, export_dir, whole, max_train_steps=5, **common))
    main(_config(tiny_model_dir, export_dir, parts, max_train_steps=2, **common))
    resumed = main(_config(tiny_model_dir, export_dir, parts, max_train_steps=5, **common))

    assert resumed.final_step == 5
    whole_steps, parts_steps = _steps(whole), _steps(parts)
    assert [s["step"] for s in parts_steps] == [1, 2, 3, 4, 5]
    # Exact, not approximate: the resumed run restores the weights, the optimizer state and the
    # RNG states bit for bit and then runs the same kernels, with the same thread count, on the
    # same inputs as the uninterrupted one. Any difference is a resume bug, on any processor.
    for key in ("loss", "mse_w", "mse_l", "ref_mse_w", "grad_norm", "implicit_acc"):
        assert [s[key] for s in parts_steps] == [s[key] for s in whole_steps], key
    final_whole = load_file(whole / "pytorch_lora_weights.safetensors")
    final_parts = load_file(parts / "pytorch_lora_weights.safetensors")
    assert all(torch.equal(final_whole[k], final_parts[k]) for k in final_whole)
    events = [e["event"] for e in _events(parts)]
    assert events.count("done") == 1 and events[-1] == "done"  # the first run's done is gone
    starts = [e for e in _events(parts) if e["event"] == "start"]
    assert starts[-1]["resumed_from"].endswith("checkpoints/step-2")


def test_resuming_with_another_lora_rank_fails_clearly(tiny_model_dir, export_dir, tmp_path):
    out = tmp_path / "out"
    main(_config(tiny_model_dir, export_dir, out, max_train_steps=1))
    with pytest.raises(ValueError, match=r"cannot resume .* lora_rank \(8 vs 4\)"):
        main(_config(tiny_model_dir, export_dir, out, max_train_steps=2, lora_rank=4))


def test_the_saved_lora_loads_into_a_pipeline_that_generates(tiny_model_dir, export_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "out"
    main(_config(tiny_model_dir, export_dir, out, max_train_steps=2))
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    before = pipe("a cat", num_inference_steps=2, height=32, width=32, generator=generator)
    pipe.load_lora_weights(out)
    assert pipe.get_active_adapters()
    generator = torch.Generator().manual_seed(0)
    kwargs = {"num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np"}
    after = pipe("a cat", generator=generator, **kwargs)
    assert after.images[0].shape == (32, 32, 3)
    assert before.images[0].size == (32, 32)


def _random_batch(pairs: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    latent = (pairs, 4, 8, 8)
    return {
        "mean_w": torch.randn(latent, generator=generator),
        "std_w": torch.rand(latent, generator=generator) * 0.01,
        "mean_l": torch.randn(latent, generator=generator),
        "std_l": torch.rand(latent, generator=generator) * 0.01,
        "embedding": torch.randn((pairs, 77, 8), generator=generator),
    }


@pytest.mark.parametrize(("method", "forwards"), [("mapo", 1), ("dpo", 2)])
def test_mapo_makes_no_reference_pass_and_dpo_one(
    tiny_model_dir, export_dir, tmp_path, method, forwards
):
    from diffusers import DDPMScheduler, UNet2DConditionModel

    config = _config(tiny_model_dir, export_dir, tmp_path, method=method).resolved(
        world_size=1, cuda=False
    )
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    unet.requires_grad_(False)
    add_lora(unet, rank=config.lora_rank, alpha=config.lora_alpha, targets=config.lora_targets)
    calls = []
    unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    scheduler = DDPMScheduler.from_pretrained(tiny_model_dir, subfolder="scheduler")

    out = compute_pair_loss(
        unet=unet,
        batch=_random_batch(3),
        noise_scheduler=scheduler,
        scaling_factor=0.18215,
        objective=Objective(method=method),
        reference=lora_reference(unet) if method == "dpo" else None,
    )
    assert calls == [6] * forwards  # winners and losers in one forward of 2B
    assert out.loss.requires_grad
    assert (out.ref_mse_w is None) == (method == "mapo")


def test_mapo_trains_without_a_reference_with_gradient_accumulation(
    tiny_model_dir, export_dir, tmp_path
):
    out = tmp_path / "out"
    config = _config(
        tiny_model_dir, export_dir, out, method="mapo", max_train_steps=2,
        gradient_accumulation_steps=2,
    )  # fmt: skip
    main(config)
    steps = _steps(out)
    assert [s["step"] for s in steps] == [1, 2]
    assert steps[0]["ref_mse_w"] is None and math.isfinite(steps[0]["loss"])
    assert (out / "pytorch_lora_weights.safetensors").exists()
    state = json.loads((out / "checkpoints" / "step-2" / "trainer_state.json").read_text())
    assert (state["step"], state["micro_batch"]) == (2, 4)


def test_it_warns_once_per_window_when_both_errors_grow():
    trend = MseTrend(window=3)
    rising = [trend.add(step, 0.1 * step, 0.2 * step) for step in range(1, 10)]
    assert rising[:5] == [None] * 5
    assert "winner and loser MSE both grew over the last 3 steps" in rising[5]
    assert rising[6:8] == [None, None]  # quiet for one window
    assert rising[8] is not None
    diverging = MseTrend(window=3)
    # The loser error grows and the winner error falls: what DPO should do.
    assert all(diverging.add(s, -0.1 * s, 0.1 * s) is None for s in range(1, 10))


@pytest.mark.numerics
def test_a_full_fine_tune_changes_the_unet_and_saves_it(tiny_model_dir, export_dir, tmp_path):
    from diffusers import UNet2DConditionModel

    out = tmp_path / "out"
    result = main(
        _config(tiny_model_dir, export_dir, out, mode="full", max_train_steps=2, prompt_dropout=0.5)
    )
    first = _steps(out)[0]
    # The reference copy equals the policy at step 1: exactly ln 2 in float32, as for a LoRA.
    assert first["loss"] == pytest.approx(math.log(2), abs=LN2_FLOAT32_ABS)
    base = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet").state_dict()
    saved = UNet2DConditionModel.from_pretrained(out / "unet").state_dict()
    trained = result.unet.state_dict()
    changed = sum(not torch.equal(trained[name], base[name]) for name in base)
    assert changed > 0.9 * len(base)
    assert all(torch.equal(saved[name], trained[name]) for name in base)
    assert (out / "checkpoints" / "step-2" / "optimizer.pt").exists()
    config = json.loads((out / "checkpoints" / "step-2" / "config.json").read_text())
    assert (config["mode"], config["prompt_dropout"]) == ("full", 0.5)


def test_the_command_line_trains_and_reports_to_the_metrics_file(
    tiny_model_dir, export_dir, tmp_path
):
    import os
    import subprocess
    import sys

    out, metrics = tmp_path / "out", tmp_path / "progress.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "training.dpo", "--data", str(export_dir),
         "--pretrained", str(tiny_model_dir), "--output", str(out), "--resolution", "32",
         "--train-batch-size", "2", "--max-train-steps", "2", "--dataloader-num-workers", "1",
         "--metrics-file", str(metrics)],
        capture_output=True, text=True, timeout=300, check=False,
        env=os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line)["event"] for line in metrics.read_text().splitlines()]
    assert events == ["start", "step", "step", "checkpoint", "done"]
    assert (out / "pytorch_lora_weights.safetensors").exists()
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-2"


@pytest.mark.numerics
def test_a_v_prediction_model_trains_against_the_velocity(tiny_model_dir, export_dir, tmp_path):
    import shutil

    model = tmp_path / "v-model"
    shutil.copytree(tiny_model_dir, model)
    scheduler_file = model / "scheduler" / "scheduler_config.json"
    scheduler_config = json.loads(scheduler_file.read_text())
    scheduler_file.write_text(json.dumps(scheduler_config | {"prediction_type": "v_prediction"}))

    epsilon_run = main(_config(tiny_model_dir, export_dir, tmp_path / "eps", max_train_steps=1))
    velocity_run = main(_config(model, export_dir, tmp_path / "v", max_train_steps=1))
    (eps_step,), (v_step,) = _steps(tmp_path / "eps"), _steps(tmp_path / "v")
    assert v_step["loss"] == pytest.approx(math.log(2), abs=LN2_FLOAT32_ABS)
    # Same seed, noise and prediction; only the target differs, which changes the error by
    # tens of percent: 1e-3 is far above any rounding (1e-7) and far below that change.
    assert v_step["mse_w"] != pytest.approx(eps_step["mse_w"], rel=1e-3)
    assert velocity_run.final_step == epsilon_run.final_step == 1
