"""Preference losses for diffusion models, as pure functions of per-pair MSEs.

Diffusion-DPO (Wallace et al., 2023) as computed by the official SalesforceAIResearch/DiffusionDPO
code and diffusers' example: for each pair, winner and loser are noised with one shared timestep
and noise draw, and the model's and the frozen reference's denoising errors are compared::

    logits = (r_w - r_l) - (m_w - m_l)
    loss   = -mean(logsigmoid(beta / 2 * logits))

Beta convention: ``beta`` is the official 5000 and the 1/2 factor is applied here, so the
effective scale is 2500. The MSEs are means over C, H and W (values around 0.1), which is why
language-model betas around 0.1 are meaningless here.

MaPO (Hong et al., 2024, mapo-t2i/mapo) is reference-free::

    s(m)  = a * m / (exp(a * m) - 1)                 a = 0.5
    loss  = mean(m_w) - beta_mapo * mean(logsigmoid(T * (s(m_w) - s(m_l))))

Every function takes per-pair tensors of shape (B,) and averages after the logsigmoid (an early
diffusers version averaged before it, which is a different and wrong objective).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_BETA = 5000.0
MAPO_ALPHA = 0.5
MAPO_TEMPERATURE = 1000.0
MAPO_BETA = 0.1


@dataclass(frozen=True)
class LossOutput:
    """A loss and the per-batch statistics the trainer logs.

    ``logits`` is the per-pair argument of the logsigmoid before scaling (DPO: the reference
    difference minus the model difference; MaPO: s(m_w) - s(m_l)); ``reward_margin`` is the mean
    of the scaled argument, the implicit reward of the winner minus that of the loser.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    implicit_acc: torch.Tensor
    reward_margin: torch.Tensor
    mse_w: torch.Tensor
    mse_l: torch.Tensor
    ref_mse_w: torch.Tensor | None = None
    ref_mse_l: torch.Tensor | None = None


def per_sample_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample over every dimension but the first, in fp32."""
    squared = (prediction.float() - target.float()).pow(2)
    return squared.mean(dim=tuple(range(1, squared.ndim)))


def implicit_accuracy(logits: torch.Tensor) -> torch.Tensor:
    """Share of pairs the model ranks correctly; a tie (logit exactly 0) counts one half."""
    return (logits > 0).float().mean() + 0.5 * (logits == 0).float().mean()


def dpo_loss(
    model_w: torch.Tensor,
    model_l: torch.Tensor,
    ref_w: torch.Tensor,
    ref_l: torch.Tensor,
    beta: float = DEFAULT_BETA,
) -> LossOutput:
    """Diffusion-DPO from per-pair MSEs of the model (with grad) and the reference (without)."""
    logits = (ref_w - ref_l) - (model_w - model_l)
    scaled = 0.5 * beta * logits
    loss = -F.logsigmoid(scaled).mean()
    return LossOutput(
        loss=loss,
        logits=logits.detach(),
        implicit_acc=implicit_accuracy(logits.detach()),
        reward_margin=scaled.detach().mean(),
        mse_w=model_w.detach().mean(),
        mse_l=model_l.detach().mean(),
        ref_mse_w=ref_w.detach().mean(),
        ref_mse_l=ref_l.detach().mean(),
    )


def mapo_score(mse: torch.Tensor, alpha: float = MAPO_ALPHA) -> torch.Tensor:
    """s(m) = a*m / (exp(a*m) - 1), a smooth decreasing map of the error; s(0) = 1."""
    scaled = alpha * mse
    # expm1 keeps precision for small errors; the limit at 0 is 1.
    safe = torch.where(scaled == 0, torch.ones_like(scaled), scaled)
    return torch.where(scaled == 0, torch.ones_like(scaled), safe / torch.expm1(safe))


def mapo_loss(
    model_w: torch.Tensor,
    model_l: torch.Tensor,
    *,
    beta_mapo: float = MAPO_BETA,
    temperature: float = MAPO_TEMPERATURE,
    alpha: float = MAPO_ALPHA,
) -> LossOutput:
    """MaPO: the winner's denoising loss plus a reference-free odds-ratio margin term."""
    logits = mapo_score(model_w, alpha) - mapo_score(model_l, alpha)
    scaled = temperature * logits
    loss = model_w.mean() - beta_mapo * F.logsigmoid(scaled).mean()
    return LossOutput(
        loss=loss,
        logits=logits.detach(),
        implicit_acc=implicit_accuracy(logits.detach()),
        reward_margin=scaled.detach().mean(),
        mse_w=model_w.detach().mean(),
        mse_l=model_l.detach().mean(),
    )


def diffusion_target(
    *,
    prediction_type: str,
    scheduler,
    latents: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
) -> torch.Tensor:
    """What the UNet should predict: the noise (epsilon) or the velocity (v-prediction)."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(
        f"unsupported prediction_type {prediction_type!r} in the scheduler config; "
        "the trainer supports 'epsilon' and 'v_prediction'"
    )
