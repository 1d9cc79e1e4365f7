"""Activation checkpointing, channels-last and compile in the trainer: same loss, same gradients.

The tiny pipeline's UNet on the CPU in fp32, with LoRA adapters whose B matrices are random
(a fresh LoRA has B = 0, which would leave every A gradient zero and hide differences).
"""

import copy
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from training.trainer.dpo import DPOConfig, build_parser, main  # noqa: E402
from training.trainer.losses import DEFAULT_BETA  # noqa: E402
from training.trainer.step import (  # noqa: E402
    Objective,
    add_lora,
    compute_pair_loss,
    keep_lora_input_dtype,
    lora_reference,
    prepare_unet_for_training,
)

TARGETS = ("to_q", "to_k", "to_v", "to_out.0")

# Denoising errors of the tiny UNet are about 1.2; a float32 ulp there is 1.2e-7. 1e-6 (8 ulps)
# leaves room for another summation order in the convolutions and in the 64-element mean of each
# sample's error (observed: at most 1 ulp, AVX-512 and AVX2 kernels, 1 and 2 threads), and stays
# 100 times below what one step changes (mse_w - ref_mse_w after a step is 1.6e-4).
ERROR_RTOL = 1e-6


def _trajectory_tolerances(*, exact: bool) -> tuple[float, float]:
    """(relative tolerance of each denoising error, loss tolerance per unit of summed errors).

    The DPO loss is mean_i -logsigmoid(beta / 2 * x_i) with x_i a sum of four per-sample errors
    (two signed each way). Its derivative in x_i is at most beta / 2 in size, so errors that
    each move by at most ERROR_RTOL of themselves move the loss by at most
    beta / 2 * ERROR_RTOL * (mse_w + mse_l + ref_mse_w + ref_mse_l): beta / 2 = 2500 turns a
    1-ulp change of the errors into a 1e-4 change of the loss after one step (seen on an AVX2
    EPYC, where the loss was compared at rel 1e-4 before).
    """
    if exact:
        return 0.0, 0.0
    return ERROR_RTOL, DEFAULT_BETA / 2 * ERROR_RTOL


@pytest.fixture(scope="module")
def lora_unet():
    from generation.tiny_model import build_tiny_pipeline

    unet = build_tiny_pipeline(seed=0).unet
    unet.requires_grad_(False)
    add_lora(unet, rank=4, alpha=4, targets=TARGETS)
    generator = torch.Generator().manual_seed(1)
    for name, parameter in unet.named_parameters():
        if "lora_B" in name:
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.1
    return unet


@pytest.fixture(scope="module")
def pair_batch(lora_unet):
    generator = torch.Generator().manual_seed(2)
    shape = (2, 4, 16, 16)
    batch = {key: torch.randn(shape, generator=generator) for key in ("mean_w", "mean_l")}
    batch |= {key: torch.rand(shape, generator=generator) * 0.01 for key in ("std_w", "std_l")}
    hidden = lora_unet.config.cross_attention_dim
    batch["embedding"] = torch.randn(2, 77, hidden, generator=generator)
    return batch


def _loss_and_grads(lora_unet, batch, **options):
    from diffusers import DDPMScheduler

    unet = copy.deepcopy(lora_unet)
    unet.train()
    prepare_unet_for_training(unet, **options)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    torch.manual_seed(0)
    out = compute_pair_loss(
        unet=unet,
        batch=batch,
        noise_scheduler=scheduler,
        scaling_factor=0.18215,
        objective=Objective(),
        reference=lora_reference(unet),
    )
    out.loss.backward()
    grads = {name: p.grad for name, p in unet.named_parameters() if p.requires_grad}
    return out, grads


def _assert_same(expected, actual, *, rtol):
    """Same denoising errors within rtol; the loss and gradients within what DPO makes of it.

    The loss moves by at most beta / 2 * rtol * (sum of the four errors) (the derivation is in
    _trajectory_tolerances). Its gradient, (beta / 2) * sigmoid(.) * grad(m_l - m_w) per pair,
    carries the same beta / 2 = 2500 on the rounding of the error gradients and of the sigmoid's
    argument, so it is compared at rtol * beta / 2 of itself, with that share of the largest
    gradient as the absolute floor for entries where grad(m_l) and grad(m_w) nearly cancel.
    """
    out, grads = expected
    other_out, other_grads = actual
    errors = ("mse_w", "mse_l", "ref_mse_w", "ref_mse_l")
    for name in errors:
        torch.testing.assert_close(getattr(other_out, name), getattr(out, name), rtol=rtol, atol=0)
    amplified = DEFAULT_BETA / 2 * rtol
    loss_bound = amplified * sum(getattr(out, name).item() for name in errors)
    torch.testing.assert_close(other_out.loss, out.loss, rtol=0, atol=loss_bound)
    assert other_grads.keys() == grads.keys()
    assert any("lora_A" in name for name in grads) and any("lora_B" in name for name in grads)
    scale = max(g.abs().max() for g in grads.values())
    assert scale > 0
    for name, grad in grads.items():
        torch.testing.assert_close(other_grads[name], grad, rtol=amplified, atol=amplified * scale)


@pytest.mark.numerics
@pytest.mark.parametrize(
    "options",
    [
        {"activation_checkpointing": "selective"},
        {"activation_checkpointing": "full"},
        {"channels_last": True},
        {"channels_last": True, "activation_checkpointing": "selective"},
    ],
)
def test_each_memory_option_gives_the_plain_step_loss_and_lora_gradients(
    lora_unet, pair_batch, options
):
    plain = _loss_and_grads(lora_unet, pair_batch)
    # Checkpointing reruns the same kernels on the same shapes and inputs, with the same thread
    # count, in the forward it recomputes: equal to the last bit on any CPU. Channels-last takes
    # other convolution kernels, which sum in another order: equal up to float32 rounding
    # (ERROR_RTOL, 8 ulps of the errors).
    rtol = ERROR_RTOL if options.get("channels_last") else 0.0
    _assert_same(plain, _loss_and_grads(lora_unet, pair_batch, **options), rtol=rtol)


@pytest.mark.numerics
@pytest.mark.slow
def test_a_compiled_unet_with_selective_checkpointing_gives_the_same_loss_and_gradients(
    lora_unet, pair_batch
):
    # aot_eager traces through dynamo and AOTAutograd (checkpoint regions, adapters switched
    # off for the reference) without generating kernels; inductor on the CPU takes minutes.
    # AOTAutograd decomposes some operators (e.g. the norms), which sums in another order:
    # float32 rounding of the errors, as for channels-last.
    plain = _loss_and_grads(lora_unet, pair_batch)
    compiled = _loss_and_grads(
        lora_unet,
        pair_batch,
        activation_checkpointing="selective",
        compile=True,
        compile_backend="aot_eager",
    )
    _assert_same(plain, compiled, rtol=ERROR_RTOL)


def test_an_unknown_checkpointing_mode_is_refused_before_touching_the_unet(lora_unet):
    unet = copy.deepcopy(lora_unet)
    with pytest.raises(ValueError, match="activation_checkpointing must be one of"):
        prepare_unet_for_training(unet, activation_checkpointing="some")
    assert not any(getattr(m, "gradient_checkpointing", False) for m in unet.modules())


def _saved_bytes(unet, sample, timesteps, embedding) -> int:
    """Bytes autograd keeps for backward, counted once per storage."""
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage._cdata] = storage.nbytes()
        return tensor

    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)
    with hooks, torch.autocast("cpu", dtype=torch.bfloat16):
        out = unet(sample, timesteps, embedding).sample
    out.float().pow(2).mean().backward()
    return sum(storages.values())


@pytest.mark.numerics
def test_lora_layers_under_autocast_keep_fewer_copies_and_the_same_gradients(lora_unet):
    generator = torch.Generator().manual_seed(3)
    sample = torch.randn(2, 4, 16, 16, generator=generator)
    embedding = torch.randn(2, 77, lora_unet.config.cross_attention_dim, generator=generator)
    timesteps = torch.tensor([10, 500])
    base = copy.deepcopy(lora_unet).to(torch.bfloat16)
    for parameter in base.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    lean = copy.deepcopy(base)
    keep_lora_input_dtype(lean)
    saved_base = _saved_bytes(base, sample, timesteps, embedding)
    saved_lean = _saved_bytes(lean, sample, timesteps, embedding)
    assert saved_lean < saved_base
    for (name, p), (_, q) in zip(base.named_parameters(), lean.named_parameters(), strict=True):
        if p.requires_grad:
            assert torch.equal(p.grad, q.grad), name


# The config ---------------------------------------------------------------------------------
@pytest.fixture
def paths(tiny_model_dir, export_dir, tmp_path):
    return {"data": export_dir, "pretrained": tiny_model_dir, "output": tmp_path / "out"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"activation_checkpointing": "partial"}, "activation_checkpointing must be one of"),
        (
            {"gradient_checkpointing": True, "activation_checkpointing": "selective"},
            "--gradient-checkpointing means --activation-checkpointing full, not selective",
        ),
        (
            {"gradient_checkpointing": True, "activation_checkpointing": "none"},
            "--gradient-checkpointing means --activation-checkpointing full, not none",
        ),
    ],
)
def test_the_config_refuses_unknown_or_contradicting_checkpointing(paths, options, message):
    with pytest.raises(ValueError, match=message):
        DPOConfig(**paths, **options)


@pytest.mark.parametrize(
    ("options", "resolved"),
    [
        ({}, "none"),
        ({"gradient_checkpointing": True}, "full"),
        ({"gradient_checkpointing": True, "activation_checkpointing": "full"}, "full"),
        ({"activation_checkpointing": "selective"}, "selective"),
    ],
)
def test_gradient_checkpointing_is_an_alias_of_full_checkpointing(paths, options, resolved):
    config = DPOConfig(**paths, **options).resolved(world_size=1, cuda=False)
    assert config.activation_checkpointing == resolved


def test_the_command_line_takes_the_memory_and_speed_options(paths):
    parser = build_parser()
    base = ["--data", str(paths["data"]), "--pretrained", str(paths["pretrained"])]
    base += ["--output", str(paths["output"])]
    args = parser.parse_args(
        [*base, "--activation-checkpointing", "selective", "--channels-last", "--torch-compile"]
    )
    config = DPOConfig(**vars(args))
    assert (config.activation_checkpointing, config.channels_last, config.torch_compile) == (
        "selective",
        True,
        True,
    )
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--activation-checkpointing", "most"])


# The trainer --------------------------------------------------------------------------------
@pytest.mark.numerics
@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        {"activation_checkpointing": "selective"},
        {"gradient_checkpointing": True, "channels_last": True},
    ],
)
def test_the_trainer_runs_with_each_memory_option_like_without(
    tiny_model_dir, export_dir, tmp_path, options
):
    common = {
        "resolution": 32,
        "train_batch_size": 2,
        "max_train_steps": 2,
        "checkpointing_steps": 2,
        "dataloader_num_workers": 0,
        "encode_batch_size": 4,
        "learning_rate": 1e-3,
    }
    plain_out, other_out = tmp_path / "plain", tmp_path / "other"
    main(DPOConfig(data=export_dir, pretrained=tiny_model_dir, output=plain_out, **common))
    result = main(
        DPOConfig(
            data=export_dir,
            pretrained=tiny_model_dir,
            output=other_out,
            cache_dir=plain_out / "cache",
            **common,
            **options,
        )
    )
    assert result.final_step == 2
    stored = json.loads((other_out / "dpo_config.json").read_text())
    assert stored["activation_checkpointing"] == options.get("activation_checkpointing", "full")

    def steps(folder):
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if json.loads(line)["event"] == "step"]

    # Same seed, same data order: the same trajectory. Checkpointing reruns the same kernels on
    # the same inputs, so it is exact; channels-last takes other convolution kernels (and others
    # again on AVX2 and AVX-512), so errors agree to float32 rounding and the loss to that
    # rounding times the DPO amplification (see _trajectory_tolerances).
    plain, other = steps(plain_out), steps(other_out)
    assert [s["step"] for s in other] == [s["step"] for s in plain] == [1, 2]
    mse_rtol, loss_atol = _trajectory_tolerances(exact=not options.get("channels_last"))
    bounds = []
    for mine, theirs in zip(other, plain, strict=True):
        errors = ("mse_w", "mse_l", "ref_mse_w", "ref_mse_l")
        for key in errors:
            assert mine[key] == pytest.approx(theirs[key], rel=mse_rtol, abs=0), key
        bounds.append(loss_atol * sum(theirs[key] for key in errors))
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=0, abs=bounds[-1])
    # The step moves the loss (ln 2 to 0.639) by several times the bound (about 0.012 here),
    # so a different update would not pass as rounding.
    assert plain[0]["loss"] - plain[1]["loss"] > 3 * max(bounds)
