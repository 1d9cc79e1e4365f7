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

RankDPO (Karthik et al., 2024, arXiv 2410.18013, "Scalable Ranked Preference Optimization for
Text-to-Image Generation") trains on lists of k images ranked for one prompt. Each image gets a
score from its denoising errors (Eq. 5), the model's current scores order the list (rank tau),
and every pair whose labelled relevance psi differs enters a logistic loss weighted by how much
swapping the two would change the list's DCG (Eq. 6, the LambdaLoss weight)::

    s_i    = -beta/2 * (m_i - r_i)                                        (Eq. 5)
    G_i    = 2 ** psi_i - 1,   D(tau) = log(1 + tau)                      (Eq. 6)
    w_ij   = |G_i - G_j| * |1 / D(tau_i) - 1 / D(tau_j)|                  (Eq. 6)
    loss   = -mean over lists of sum over psi_i > psi_j of w_ij * logsigmoid(s_i - s_j)   (Eq. 7)

With k = 2 and one image preferred, w = 1/ln 2 - 1/ln 3 for every pair, so RankDPO is the
trainer's Diffusion-DPO times that constant (same beta convention, same gradient direction).

Every pair function takes per-pair tensors of shape (B,) and averages after the logsigmoid (an
early diffusers version averaged before it, which is a different and wrong objective).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.trainer.config import DEFAULT_BETA, MAPO_ALPHA, MAPO_BETA, MAPO_TEMPERATURE


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


def dcg_gain(psi: torch.Tensor) -> torch.Tensor:
    """G = 2**psi - 1, the DCG gain of a labelled relevance psi in [0, 1] (Eq. 6)."""
    return torch.exp2(psi) - 1


def dcg_discount(tau: torch.Tensor) -> torch.Tensor:
    """D(tau) = log(1 + tau), the discount of rank tau (1 = first, natural log; Eq. 6)."""
    return torch.log1p(tau)


def ranks_by_score(scores: torch.Tensor) -> torch.Tensor:
    """tau: each image's rank in its list by descending score, 1 = best (Eq. 6; Figure 2).

    Equal scores take the earlier position first (stable sort), so a fresh model whose scores
    are all zero ranks the list in its stored order.
    """
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    positions = torch.arange(1, scores.shape[-1] + 1, device=scores.device).expand_as(order)
    ranks.scatter_(-1, order, positions)
    return ranks.to(scores.dtype)


def rankdpo_pair_weights(psi: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """w[b, i, j]: the DCG weight of pair (i, j) where image i is labelled better than j.

    psi and scores are (B, k); the result is (B, k, k), zero where psi_i <= psi_j, so each
    unordered pair is counted once, from its better image, and labelled ties weigh nothing.
    The weights are constants: tau comes from the detached scores.
    """
    gain = dcg_gain(psi)  # G_i = 2^psi_i - 1                                     (Eq. 6)
    inverse_discount = 1.0 / dcg_discount(ranks_by_score(scores.detach()))  # 1/D(tau_i)
    gain_gap = (gain[:, :, None] - gain[:, None, :]).abs()  # |G_i - G_j|          (Eq. 6)
    discount_gap = (inverse_discount[:, :, None] - inverse_discount[:, None, :]).abs()
    better = psi[:, :, None] > psi[:, None, :]  # the pairs summed in Eq. 7
    return gain_gap * discount_gap * better


def rankdpo_loss(
    model_mse: torch.Tensor,
    ref_mse: torch.Tensor,
    psi: torch.Tensor,
    beta: float = DEFAULT_BETA,
) -> LossOutput:
    """RankDPO from (B, k) MSEs of the model and the reference and the labelled relevance psi.

    ``logits`` holds the reference-minus-model difference s_i - s_j / (beta/2) of every pair
    with psi_i > psi_j (the DPO logits when k = 2); ``mse_w`` and ``mse_l`` average the
    list's best- and worst-labelled images.
    """
    # s_i = -beta/2 * (||e - e_theta||^2 - ||e - e_ref||^2), the trainer's beta/2   (Eq. 5)
    scores = -0.5 * beta * (model_mse - ref_mse)
    weights = rankdpo_pair_weights(psi, scores)  #                                (Eq. 6)
    margins = scores[:, :, None] - scores[:, None, :]  # s_i - s_j
    # -E over lists of sum_{psi_i > psi_j} w_ij * log sigmoid(s_i - s_j)            (Eq. 7)
    loss = -(weights * F.logsigmoid(margins)).sum(dim=(1, 2)).mean()
    better = psi[:, :, None] > psi[:, None, :]
    pair_margins = margins.detach()[better]
    logits = pair_margins / (0.5 * beta)
    best = F.one_hot(psi.argmax(dim=1), psi.shape[1]).bool()
    worst = F.one_hot(psi.argmin(dim=1), psi.shape[1]).bool()
    return LossOutput(
        loss=loss,
        logits=logits,
        implicit_acc=implicit_accuracy(logits),
        reward_margin=pair_margins.mean(),
        mse_w=model_mse.detach()[best].mean(),
        mse_l=model_mse.detach()[worst].mean(),
        ref_mse_w=ref_mse.detach()[best].mean(),
        ref_mse_l=ref_mse.detach()[worst].mean(),
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
