"""The UNet side of the trainer: one preference-loss step, the reference, LoRA helpers.

Shared by ``training.trainer.dpo`` and ``bench/gpu_dpo.py`` so the benchmark times the trainer's step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from training.trainer.config import (
    ACTIVATION_CHECKPOINTING,
    DEFAULT_BETA,
    MAPO_ALPHA,
    MAPO_BETA,
    MAPO_TEMPERATURE,
)
from training.trainer.losses import (
    LossOutput,
    diffusion_target,
    dpo_loss,
    mapo_loss,
    per_sample_mse,
    rankdpo_loss,
)


@dataclass(frozen=True)
class Objective:
    """Which preference loss, with its constants; see training.trainer.losses."""

    method: str = "dpo"
    beta: float = DEFAULT_BETA
    mapo_beta: float = MAPO_BETA
    mapo_temperature: float = MAPO_TEMPERATURE
    mapo_alpha: float = MAPO_ALPHA

    @property
    def needs_reference(self) -> bool:
        return self.method in ("dpo", "rankdpo")

    @property
    def ranked(self) -> bool:
        """RankDPO trains on ranked lists (compute_list_loss), the others on pairs."""
        return self.method == "rankdpo"


def compute_pair_loss(
    *,
    unet,
    batch: dict[str, torch.Tensor],
    noise_scheduler,
    scaling_factor: float,
    objective: Objective,
    reference=None,
) -> LossOutput:
    """One preference loss over a batch of cached pairs: one UNet forward over 2B inputs.

    ``batch`` holds the cached latent mean and std of winners and losers (B, C, h, w) and the
    caption embeddings (B, L, D). ``reference(noisy, timesteps, embeddings)`` returns the
    frozen model's prediction; DPO needs it, MaPO never calls it. Winner and loser share the
    timestep and the noise draw.
    """
    pairs = batch["mean_w"].shape[0]
    mean = torch.cat([batch["mean_w"], batch["mean_l"]])
    std = torch.cat([batch["std_w"], batch["std_l"]])
    latents = (mean + std * torch.randn_like(mean)) * scaling_factor
    noise = torch.randn_like(latents[:pairs]).repeat(2, 1, 1, 1)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (pairs,), device=latents.device
    ).repeat(2)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    target = diffusion_target(
        prediction_type=noise_scheduler.config.prediction_type,
        scheduler=noise_scheduler,
        latents=latents,
        noise=noise,
        timesteps=timesteps,
    )
    embeddings = batch["embedding"].repeat(2, 1, 1)
    prediction = unet(noisy, timesteps, embeddings).sample
    model_w, model_l = per_sample_mse(prediction, target).chunk(2)
    if not objective.needs_reference:
        return mapo_loss(
            model_w,
            model_l,
            beta_mapo=objective.mapo_beta,
            temperature=objective.mapo_temperature,
            alpha=objective.mapo_alpha,
        )
    with torch.no_grad():
        ref_w, ref_l = per_sample_mse(reference(noisy, timesteps, embeddings), target).chunk(2)
    return dpo_loss(model_w, model_l, ref_w, ref_l, beta=objective.beta)


def compute_list_loss(
    *,
    unet,
    batch: dict[str, torch.Tensor],
    noise_scheduler,
    scaling_factor: float,
    objective: Objective,
    reference,
) -> LossOutput:
    """RankDPO over a batch of cached ranked lists: one UNet forward over B*k inputs.

    ``batch`` holds the latent mean and std (B, k, C, h, w), the relevance psi (B, k) and the
    caption embeddings (B, L, D). The k images of a list share one timestep and one noise draw
    (RankDPO, Algorithm 2: t and noise are drawn once per entry), as a pair's two images do.
    """
    lists, k = batch["psi"].shape
    mean, std = batch["mean"].flatten(0, 1), batch["std"].flatten(0, 1)
    latents = (mean + std * torch.randn_like(mean)) * scaling_factor
    noise = torch.randn_like(latents.unflatten(0, (lists, k))[:, 0])
    noise = noise.repeat_interleave(k, dim=0)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (lists,), device=latents.device
    ).repeat_interleave(k)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    target = diffusion_target(
        prediction_type=noise_scheduler.config.prediction_type,
        scheduler=noise_scheduler,
        latents=latents,
        noise=noise,
        timesteps=timesteps,
    )
    embeddings = batch["embedding"].repeat_interleave(k, dim=0)
    prediction = unet(noisy, timesteps, embeddings).sample
    model_mse = per_sample_mse(prediction, target).view(lists, k)
    with torch.no_grad():
        ref_mse = per_sample_mse(reference(noisy, timesteps, embeddings), target).view(lists, k)
    return rankdpo_loss(model_mse, ref_mse, batch["psi"], beta=objective.beta)


def lora_reference(unet):
    """The LoRA reference: the same UNet with its adapters switched off, without grad."""

    def forward(noisy, timesteps, embeddings):
        unet.disable_adapters()
        try:
            with torch.no_grad():
                return unet(noisy, timesteps, embeddings).sample
        finally:
            unet.enable_adapters()

    return forward


def frozen_reference(reference_unet):
    def forward(noisy, timesteps, embeddings):
        with torch.no_grad():
            return reference_unet(noisy, timesteps, embeddings).sample

    return forward


def add_lora(unet, *, rank: int, alpha: int, targets: tuple[str, ...]) -> None:
    """peft LoRA adapters with gaussian A and zero B: the adapted UNet starts equal to the base."""
    from peft import LoraConfig

    unet.add_adapter(
        LoraConfig(
            r=rank,
            lora_alpha=alpha,
            init_lora_weights="gaussian",
            target_modules=list(targets),
        )
    )
    # Trainable weights stay fp32 even when the frozen base runs in bf16 or fp16.
    for parameter in unet.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()


def keep_lora_input_dtype(unet) -> None:
    """Under autocast, let the LoRA layers take their input as it comes (bf16/fp16).

    peft casts each LoRA layer's input to the adapter's fp32 dtype; autocast then casts it back
    for the matmul, and that second copy is what backward keeps: one extra activation-sized
    tensor per adapted projection (to_q, to_k and to_v each make their own). Skipping peft's
    cast leaves the computation bit-for-bit the same (the matmul runs in the autocast dtype
    either way) and backward keeps the input the base layer already holds. Only for autocast:
    without it, an fp32 adapter needs its input in fp32.
    """
    for module in unet.modules():
        if hasattr(module, "_cast_input_dtype"):
            module.cast_input_dtype_enabled = False


def lora_state_dict_for_diffusers(unet) -> dict[str, torch.Tensor]:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    return {k: v.detach().float().cpu().contiguous() for k, v in state.items()}


def save_lora(unet, folder: Path) -> None:
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline.save_lora_weights(
        save_directory=folder,
        unet_lora_layers=lora_state_dict_for_diffusers(unet),
        safe_serialization=True,
    )


def load_unet(folder: Path):
    from diffusers import UNet2DConditionModel

    if (Path(folder) / "unet").is_dir():
        return UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    return UNet2DConditionModel.from_pretrained(folder)


def _ops(*names: str) -> frozenset:
    """Every overload of the named aten ops that this torch build has."""
    ops = set()
    for name in names:
        packet = getattr(torch.ops.aten, name, None)
        if packet is not None:
            ops.update(getattr(packet, overload) for overload in packet.overloads())
    return frozenset(ops)


# Selective checkpointing keeps the outputs of the ops that cost many FLOPs per byte of
# output: attention (~2 x tokens FLOPs per byte at 4096 tokens) and spatial convolutions
# (~9 x channels). Linear layers and 1x1 convolutions cost only ~channels FLOPs per byte and
# hold most of a transformer block's activations (the GEGLU feed-forward is 8x wide), so they
# are recomputed with the norms, activations and element-wise ops.
_ATTENTION_OPS = _ops(
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_flash_attention_forward",
    "_efficient_attention_forward",
)
_CONVOLUTION_OPS = _ops("convolution", "_convolution", "cudnn_convolution")


def _selective_policy():
    from torch.utils.checkpoint import CheckpointPolicy

    def policy(ctx, op, *args, **kwargs):
        if op in _ATTENTION_OPS:
            return CheckpointPolicy.MUST_SAVE
        if op in _CONVOLUTION_OPS and args[1].shape[2:].numel() > 1:
            return CheckpointPolicy.MUST_SAVE  # a spatial kernel, not a 1x1 projection
        return CheckpointPolicy.PREFER_RECOMPUTE

    return policy


def selective_checkpoint(module, *args, **kwargs):
    """torch.utils.checkpoint of one block that keeps the expensive ops' outputs."""
    from functools import partial

    from torch.utils.checkpoint import checkpoint, create_selective_checkpoint_contexts

    return checkpoint(
        module.__call__,
        *args,
        use_reentrant=False,
        context_fn=partial(create_selective_checkpoint_contexts, _selective_policy()),
        **kwargs,
    )


def full_checkpoint(module, *args, **kwargs):
    """torch.utils.checkpoint of one block: only its inputs are kept, all of it is redone."""
    from torch.utils.checkpoint import checkpoint

    return checkpoint(module.__call__, *args, use_reentrant=False, **kwargs)


def _channels_last_input(module, args, kwargs):
    if args and isinstance(args[0], torch.Tensor) and args[0].ndim == 4:
        args = (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    elif isinstance(kwargs.get("sample"), torch.Tensor) and kwargs["sample"].ndim == 4:
        kwargs = {
            **kwargs,
            "sample": kwargs["sample"].contiguous(memory_format=torch.channels_last),
        }
    return args, kwargs


def prepare_unet_for_training(
    unet,
    *,
    activation_checkpointing: str = "none",
    channels_last: bool = False,
    compile: bool = False,
    compile_mode: str | None = None,
    compile_backend: str = "inductor",
) -> None:
    """Apply the trainer's activation-memory and speed options to a UNet, in place.

    activation_checkpointing: "none" keeps every activation; "full" keeps only each resnet's and
    transformer block's inputs and redoes the block in backward (diffusers' gradient
    checkpointing); "selective" checkpoints the same blocks but keeps the outputs of
    convolutions, matmuls and attention, so backward only redoes norms, activations and
    element-wise ops. channels_last: NHWC weights and input (faster convolutions on tensor
    cores). compile: torch.compile the UNet's forward (after the other two, so it traces them;
    ``compile_backend`` "aot_eager" traces without generating kernels, for tests). None of them changes the loss or the gradients beyond floating-point rounding.
    """
    if activation_checkpointing not in ACTIVATION_CHECKPOINTING:
        raise ValueError(
            f"activation_checkpointing must be one of {ACTIVATION_CHECKPOINTING}, "
            f"not {activation_checkpointing!r}"
        )
    if activation_checkpointing == "full":
        unet.enable_gradient_checkpointing(gradient_checkpointing_func=full_checkpoint)
    elif activation_checkpointing == "selective":
        unet.enable_gradient_checkpointing(gradient_checkpointing_func=selective_checkpoint)
    if channels_last:
        unet.to(memory_format=torch.channels_last)
        unet.register_forward_pre_hook(_channels_last_input, with_kwargs=True)
    if compile:
        unet.compile(backend=compile_backend, **({"mode": compile_mode} if compile_mode else {}))
