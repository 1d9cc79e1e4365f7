"""The UNet side of the trainer: one preference-loss step, the reference, LoRA helpers.

Shared by ``training.dpo`` and ``bench/gpu_dpo.py`` so the benchmark times the trainer's step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from training.dpo_losses import (
    DEFAULT_BETA,
    MAPO_ALPHA,
    MAPO_BETA,
    MAPO_TEMPERATURE,
    LossOutput,
    diffusion_target,
    dpo_loss,
    mapo_loss,
    per_sample_mse,
)


@dataclass(frozen=True)
class Objective:
    """Which preference loss, with its constants; see training.dpo_losses."""

    method: str = "dpo"
    beta: float = DEFAULT_BETA
    mapo_beta: float = MAPO_BETA
    mapo_temperature: float = MAPO_TEMPERATURE
    mapo_alpha: float = MAPO_ALPHA

    @property
    def needs_reference(self) -> bool:
        return self.method == "dpo"


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
