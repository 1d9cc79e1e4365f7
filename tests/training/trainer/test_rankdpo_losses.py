"""RankDPO's DCG weights and ranking loss (arXiv 2410.18013, Eqs. 5 to 7 and Algorithm 1)."""

import math

import pytest

torch = pytest.importorskip("torch")

from training.trainer.data import relevance_from_ranking  # noqa: E402
from training.trainer.losses import (  # noqa: E402
    dpo_loss,
    rankdpo_loss,
    rankdpo_pair_weights,
    ranks_by_score,
)

BETA = 2.0  # beta/2 = 1, so a score is minus the model-minus-reference MSE


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_relevance_is_the_share_of_the_other_images_beaten():
    # Algorithm 1 with one judge: wins over the k - 1 others; a tie is no win.
    assert relevance_from_ranking([1, 2, 3]) == [1.0, 0.5, 0.0]
    assert relevance_from_ranking([1, 2, 2]) == [1.0, 0.0, 0.0]
    assert relevance_from_ranking([2, 1, 1]) == [0.0, 0.5, 0.5]
    assert relevance_from_ranking([2, 1]) == [0.0, 1.0]


def test_the_model_ranks_by_descending_score_and_equal_scores_keep_their_order():
    assert ranks_by_score(torch.tensor([[-0.3, 0.1, -0.1]])).tolist() == [[3.0, 1.0, 2.0]]
    assert ranks_by_score(torch.zeros(1, 4)).tolist() == [[1.0, 2.0, 3.0, 4.0]]


def test_the_dcg_weights_match_a_hand_computed_example():
    # Labels: ranking [1, 2, 3], so psi = [1, 1/2, 0] and G = 2^psi - 1 = [1, sqrt2 - 1, 0].
    # The model's scores [-0.3, 0.1, -0.1] rank the images tau = [3, 1, 2];
    # 1/D(tau) = 1/ln(1 + tau) = [1/ln 4, 1/ln 2, 1/ln 3] = [0.721348, 1.442695, 0.910239].
    # w12 = (1 - 0.414214) * |0.721348 - 1.442695| = 0.585786 * 0.721348 = 0.422556
    # w13 = (1 - 0)        * |0.721348 - 0.910239| = 1.000000 * 0.188892 = 0.188892
    # w23 = (0.414214 - 0) * |1.442695 - 0.910239| = 0.414214 * 0.532456 = 0.220550
    psi = torch.tensor([[1.0, 0.5, 0.0]])
    scores = torch.tensor([[-0.3, 0.1, -0.1]])
    weights = rankdpo_pair_weights(psi, scores)[0]
    expected = [[0, 0.422556, 0.188892], [0, 0, 0.220550], [0, 0, 0]]
    assert weights.tolist() == [pytest.approx(row, abs=1e-6) for row in expected]


def test_the_loss_matches_the_same_hand_computed_example():
    # MSE differences m - r = [0.3, -0.1, 0.1] give the scores above with beta/2 = 1:
    # s1 - s2 = -0.4, s1 - s3 = -0.2, s2 - s3 = 0.2, so
    # loss = -(0.422556 ls(-0.4) + 0.188892 ls(-0.2) + 0.220550 ls(0.2)) = 0.668481.
    model = torch.tensor([[0.4, 0.2, 0.3]])
    ref = torch.tensor([[0.1, 0.3, 0.2]])
    out = rankdpo_loss(model, ref, torch.tensor([[1.0, 0.5, 0.0]]), beta=BETA)
    expected = -(
        0.4225556 * _log_sigmoid(-0.4)
        + 0.1888917 * _log_sigmoid(-0.2)
        + 0.2205504 * _log_sigmoid(0.2)
    )
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.668481, abs=1e-6)
    # One of the three labelled pairs (2 over 3) is in the model's order.
    assert out.implicit_acc.item() == pytest.approx(1 / 3)
    assert out.mse_w.item() == pytest.approx(0.4)
    assert out.mse_l.item() == pytest.approx(0.3)


def test_a_swap_at_the_top_weighs_more_than_one_in_the_middle():
    # The paper's Figure 2: the model ranks four images in the inverse of their labelled
    # order; pair (1, 4) gets a larger weight than pair (2, 3).
    psi = torch.tensor([relevance_from_ranking([1, 2, 3, 4])])
    weights = rankdpo_pair_weights(psi, torch.tensor([[0.0, 1.0, 2.0, 3.0]]))[0]
    assert weights[0, 3].item() == pytest.approx(0.821360, abs=1e-6)
    assert weights[1, 2].item() == pytest.approx(0.061858, abs=1e-6)


def test_labelled_ties_and_reversed_pairs_weigh_nothing():
    weights = rankdpo_pair_weights(torch.tensor([[1.0, 0.0, 0.0]]), torch.zeros(1, 3))[0]
    assert weights[1, 2] == 0 and weights[2, 1] == 0
    assert (weights[1:, 0] == 0).all()


def test_with_two_images_it_is_dpo_times_a_constant():
    # k = 2, one preferred: psi = [1, 0], |G1 - G2| = 1 and {tau} = {1, 2} whatever the model,
    # so every weight is 1/ln 2 - 1/ln 3 = 0.532456 and RankDPO = 0.532456 x Diffusion-DPO,
    # with the trainer's beta convention. Gradients are in the same proportion.
    constant = 1 / math.log(2) - 1 / math.log(3)
    model_w = torch.tensor([0.10, 0.30, 0.20], requires_grad=True)
    model_l = torch.tensor([0.12, 0.25, 0.20], requires_grad=True)
    ref_w, ref_l = torch.tensor([0.11, 0.28, 0.21]), torch.tensor([0.11, 0.26, 0.19])
    dpo = dpo_loss(model_w, model_l, ref_w, ref_l, beta=50.0)
    dpo_grads = torch.autograd.grad(dpo.loss, (model_w, model_l))

    # The winner is stored second in one list: the order of the images does not matter.
    model = torch.stack([model_w, model_l], dim=1)
    model = torch.cat([model[:2], model[2:].flip(1)])
    ref = torch.stack([ref_w, ref_l], dim=1)
    ref = torch.cat([ref[:2], ref[2:].flip(1)])
    psi = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ranked = rankdpo_loss(model, ref, psi, beta=50.0)
    ranked_grads = torch.autograd.grad(ranked.loss, (model_w, model_l))

    assert ranked.loss.item() == pytest.approx(constant * dpo.loss.item(), rel=1e-6)
    for ours, theirs in zip(ranked_grads, dpo_grads, strict=True):
        assert ours.tolist() == pytest.approx((constant * theirs).tolist(), rel=1e-5)
    assert sorted(ranked.logits.tolist()) == pytest.approx(sorted(dpo.logits.tolist()))
    assert ranked.implicit_acc.item() == dpo.implicit_acc.item()


def test_the_gradient_lowers_the_best_images_error_and_raises_the_worst():
    model = torch.full((1, 3), 0.2, requires_grad=True)
    out = rankdpo_loss(model, torch.full((1, 3), 0.2), torch.tensor([[0.0, 1.0, 0.5]]))
    (grad,) = torch.autograd.grad(out.loss, model)
    assert grad[0, 1] > 0 > grad[0, 0]  # descent lowers the best error, raises the worst
