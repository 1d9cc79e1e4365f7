import math

import pytest

torch = pytest.importorskip("torch")

# Every test here compares float32 arithmetic with a float64 hand computation.
pytestmark = pytest.mark.numerics

from training.trainer.losses import (  # noqa: E402
    diffusion_target,
    dpo_loss,
    implicit_accuracy,
    mapo_loss,
    mapo_score,
    per_sample_mse,
)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_it_matches_a_hand_computed_dpo_example():
    model_w, model_l = torch.tensor([0.10, 0.30]), torch.tensor([0.12, 0.25])
    ref_w, ref_l = torch.tensor([0.11, 0.28]), torch.tensor([0.11, 0.26])
    out = dpo_loss(model_w, model_l, ref_w, ref_l, beta=5000.0)

    # Pair 1: (0.11 - 0.11) - (0.10 - 0.12) = 0.02; pair 2: (0.28 - 0.26) - (0.30 - 0.25) = -0.03
    # The inputs are float32 (each within 1.5e-8 of its decimal) and each logit takes three
    # float32 subtractions (1.5e-8 each at most): within 1e-7 of the decimal answer.
    expected_logits = [0.02, -0.03]
    assert out.logits.tolist() == pytest.approx(expected_logits, abs=1e-7)
    # beta/2 = 2500, and the mean comes after the logsigmoid. The logsigmoid's slope is at most
    # 1, so the loss is within 2500 * 1e-7 = 2.5e-4 of the decimal answer: 7e-6 of 37.5.
    expected = -(_log_sigmoid(2500 * 0.02) + _log_sigmoid(2500 * -0.03)) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(37.5, abs=1e-3)  # 75 / 2 plus terms below exp(-50)
    assert out.implicit_acc.item() == 0.5
    # 2500 times the mean logit: within 2.5e-4 of -12.5, 2e-5 of it.
    assert out.reward_margin.item() == pytest.approx(2500 * (0.02 - 0.03) / 2, rel=2e-5)
    # Means of two float32 numbers: a few ulps, inside approx's default rel 1e-6.
    assert out.mse_w.item() == pytest.approx(0.2)
    assert out.ref_mse_l.item() == pytest.approx(0.185)


def test_it_averages_after_the_logsigmoid_not_before():
    model_w, model_l = torch.tensor([0.0, 0.0]), torch.tensor([0.001, -0.001])
    zeros = torch.zeros(2)
    out = dpo_loss(model_w, model_l, zeros, zeros, beta=5000.0)
    # Averaging the logits first would give ln 2; per pair the losses are not symmetric.
    assert out.loss.item() > math.log(2) + 0.1


def test_it_gives_ln2_and_half_accuracy_when_policy_equals_reference():
    mse_w, mse_l = torch.rand(4), torch.rand(4)
    out = dpo_loss(mse_w, mse_l, mse_w.clone(), mse_l.clone(), beta=5000.0)
    # Logits exactly 0: float32 softplus(0) is ln 2 within half an ulp (3e-8).
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert out.implicit_acc.item() == 0.5
    assert out.reward_margin.item() == 0.0


def test_swapping_winner_and_loser_flips_the_logits():
    model_w, model_l, ref_w, ref_l = (torch.rand(6) for _ in range(4))
    forward = dpo_loss(model_w, model_l, ref_w, ref_l)
    swapped = dpo_loss(model_l, model_w, ref_l, ref_w)
    # a - b is exactly -(b - a) in IEEE arithmetic, so the flip is exact, not approximate.
    assert torch.equal(swapped.logits, -forward.logits)
    # Sixths, each mean rounded once in float32: within approx's default rel 1e-6.
    assert swapped.implicit_acc.item() == pytest.approx(1 - forward.implicit_acc.item())


def test_implicit_accuracy_counts_exact_ties_as_half():
    # Halves and eighths are exact in float32: approx has nothing to absorb here.
    assert implicit_accuracy(torch.tensor([1.0, -1.0, 0.0, 0.0])).item() == pytest.approx(0.5)
    assert implicit_accuracy(torch.tensor([1.0, 2.0, 0.0, -1.0])).item() == pytest.approx(0.625)


def test_the_dpo_gradient_lowers_the_winner_error_and_raises_the_loser_error():
    model_w = torch.tensor([0.2], requires_grad=True)
    model_l = torch.tensor([0.2], requires_grad=True)
    dpo_loss(model_w, model_l, torch.tensor([0.2]), torch.tensor([0.2])).loss.backward()
    assert model_w.grad.item() > 0  # descending lowers m_w
    assert model_l.grad.item() < 0  # descending raises m_l


def test_mapo_score_matches_its_formula_and_its_limit_at_zero():
    mse = torch.tensor([0.0, 0.1, 1.0])
    expected = [1.0, 0.05 / math.expm1(0.05), 0.5 / math.expm1(0.5)]
    # float32 expm1 and division: a few ulps (6e-8 each) of values near 1; 1e-6 is 16 ulps,
    # room for the vectorised expm1 of each CPU capability.
    assert mapo_score(mse, 0.5).tolist() == pytest.approx(expected, rel=1e-6)


def test_mapo_loss_matches_a_hand_computed_example():
    model_w, model_l = torch.tensor([0.10, 0.20]), torch.tensor([0.12, 0.15])
    out = mapo_loss(model_w, model_l, beta_mapo=0.1, temperature=1000.0, alpha=0.5)

    def s(m):
        return 0.5 * m / math.expm1(0.5 * m)

    logits = [s(0.10) - s(0.12), s(0.20) - s(0.15)]
    expected = 0.15 - 0.1 * (_log_sigmoid(1000 * logits[0]) + _log_sigmoid(1000 * logits[1])) / 2
    # Each score s(m) is about 0.97 with a few float32 ulps (6e-8) of error, and a logit is a
    # difference of two of them, about 5e-3: about 3e-7 / 5e-3 = 6e-5 of itself. The loss
    # scales that by beta_mapo * T = 100 (slope of logsigmoid at most 1): 3e-5 of a loss of 0.76.
    assert out.loss.item() == pytest.approx(expected, rel=1e-4)
    assert out.logits.tolist() == pytest.approx(logits, rel=1e-4)
    assert out.implicit_acc.item() == 0.5
    assert out.ref_mse_w is None


def test_per_sample_mse_averages_over_channels_height_and_width_in_fp32():
    prediction = torch.zeros(2, 4, 3, 3, dtype=torch.bfloat16)
    target = torch.ones(2, 4, 3, 3, dtype=torch.bfloat16)
    target[1] = 2
    result = per_sample_mse(prediction, target)
    assert result.dtype == torch.float32
    assert result.tolist() == [1.0, 4.0]


def test_the_target_is_the_noise_or_the_velocity():
    from diffusers import DDPMScheduler

    latents, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    timesteps = torch.tensor([10, 500])
    scheduler = DDPMScheduler(prediction_type="v_prediction")
    epsilon = diffusion_target(
        prediction_type="epsilon",
        scheduler=scheduler,
        latents=latents,
        noise=noise,
        timesteps=timesteps,
    )
    velocity = diffusion_target(
        prediction_type="v_prediction",
        scheduler=scheduler,
        latents=latents,
        noise=noise,
        timesteps=timesteps,
    )
    assert epsilon is noise
    # The same call on the same tensors: exact.
    assert torch.equal(velocity, scheduler.get_velocity(latents, noise, timesteps))
    with pytest.raises(ValueError, match="sample"):
        diffusion_target(
            prediction_type="sample",
            scheduler=scheduler,
            latents=latents,
            noise=noise,
            timesteps=timesteps,
        )
