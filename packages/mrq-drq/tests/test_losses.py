"""Losses on tiny tensors against hand-computed answers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from mrq_drq import losses
from rl_buffers.returns import n_step_returns
from rl_nets import TwoHot

E1 = math.e - 1.0  # symexp(1)


def test_termination_mask_keeps_the_terminal_step_and_drops_what_follows():
    not_done = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert torch.equal(losses.termination_mask(not_done), expected)


def test_masked_mse_averages_over_all_elements_including_masked_ones():
    pred = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    mask = torch.tensor([1.0, 0.0])
    # (1 + 4 + 0 + 0) / 4 elements
    assert losses.masked_mse(pred, target, mask).item() == pytest.approx(1.25)


def test_two_hot_cross_entropy_by_hand():
    two_hot = TwoHot(3, -1.0, 1.0)  # bins -(e-1), 0, e-1
    # 0.5 lies between bins 0 and e-1: weight 0.5/(e-1) on the upper bin.
    w = 0.5 / E1
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    log_p = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    expected = -((1 - w) * log_p[0, 1] + w * log_p[0, 2])
    got = losses.two_hot_cross_entropy(logits, torch.tensor([0.5]), two_hot)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # Uniform logits: CE = log 3 whatever the target.
    uniform = losses.two_hot_cross_entropy(torch.zeros(2, 3), torch.tensor([0.5, -1.0]), two_hot)
    assert torch.allclose(uniform, torch.full((2,), math.log(3.0)))


def _info_nce_loop(pred: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    out = []
    for b in range(pred.shape[0]):
        u = pred[b] / pred[b].norm()
        sims = torch.stack([u @ (target[c] / target[c].norm()) for c in range(target.shape[0])])
        sims = sims / temperature
        out.append(torch.logsumexp(sims, 0) - sims[b])
    return torch.stack(out)


def test_info_nce_per_sample_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    got = losses.info_nce(pred, target, 0.1)
    assert got.shape == (5,)
    assert torch.allclose(got, _info_nce_loop(pred, target, 0.1), atol=1e-5)
    # Groups are independent: stacking two groups gives each group's own losses.
    pred2, target2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    grouped = losses.info_nce(torch.stack([pred, pred2]), torch.stack([target, target2]), 0.1)
    assert torch.allclose(grouped[1], _info_nce_loop(pred2, target2, 0.1), atol=1e-5)


def test_info_nce_perfect_alignment_is_low_and_orthogonal_targets_give_log_b():
    eye = torch.eye(4)
    aligned = losses.info_nce(eye, eye, 0.1)
    # logits: 10 on the diagonal, 0 elsewhere -> -log(e^10 / (e^10 + 3))
    assert torch.allclose(aligned, torch.full((4,), math.log1p(3 * math.exp(-10))), atol=1e-6)
    same = losses.info_nce(eye, torch.ones(4, 4), 0.1)
    assert torch.allclose(same, torch.full((4,), math.log(4.0)), atol=1e-6)


def test_encoder_loss_info_nce_is_masked_per_sample_not_by_the_batch_fraction():
    """The official code multiplies a (B,) loss by a (B, 1) mask: a BxB mean(loss)*mean(mask)."""
    g = torch.Generator().manual_seed(1)
    batch, horizon, dim = 4, 2, 3
    pred = torch.randn(batch, horizon, dim, generator=g)
    target = torch.randn(batch, horizon, dim, generator=g)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    out = losses.encoder_loss(
        pred,
        torch.zeros(batch, horizon, 3),
        torch.zeros(batch, horizon),
        target,
        torch.zeros(batch, horizon),
        torch.ones(batch, horizon),
        mask,
        two_hot=TwoHot(3, -1.0, 1.0),
        dyn_weight=0.0,
        reward_weight=0.0,
        done_weight=0.0,
        infonce_weight=1.0,
        infonce_temperature=0.1,
    )
    expected = 0.0
    official = 0.0
    for i in range(horizon):
        per_sample = _info_nce_loop(pred[:, i], target[:, i], 0.1)
        expected += (per_sample * mask[:, i]).mean().item()
        official += (per_sample * mask[:, i : i + 1]).mean().item()  # the broadcast bug
    assert out.info_nce.item() == pytest.approx(expected, rel=1e-5)
    assert out.total.item() == pytest.approx(expected, rel=1e-5)
    assert abs(expected - official) > 1e-3  # the two differ on this batch


def test_encoder_loss_by_hand():
    """B=2, H=2, D=1, 3 bins; sample 1 terminates at step 0 so its step 1 is masked."""
    two_hot = TwoHot(3, -1.0, 1.0)
    pred_zs = torch.tensor([[[1.0], [2.0]], [[3.0], [4.0]]])
    target_zs = torch.zeros(2, 2, 1)
    logits = torch.zeros(2, 2, 3)  # CE = log 3 everywhere
    pred_done = torch.tensor([[0.0, 0.5], [0.25, 7.0]])
    reward = torch.tensor([[0.5, 0.0], [1.0, 9.0]])
    not_done = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    mask = losses.termination_mask(not_done)  # [[1, 1], [1, 0]]
    out = losses.encoder_loss(
        pred_zs,
        logits,
        pred_done,
        target_zs,
        reward,
        not_done,
        mask,
        two_hot=two_hot,
        dyn_weight=1.0,
        reward_weight=0.1,
        done_weight=0.1,
        infonce_weight=0.0,
        infonce_temperature=0.1,
    )
    # Per-step means over B=2, summed over H.
    dyn = (1 + 9) / 2 + (4 + 0) / 2
    rew = (math.log(3) * 2) / 2 + (math.log(3) * 1) / 2
    done = ((0 - 0) ** 2 + (0.25 - 1) ** 2) / 2 + ((0.5 - 0) ** 2 + 0) / 2
    assert out.dynamics.item() == pytest.approx(dyn)
    assert out.reward.item() == pytest.approx(rew, rel=1e-6)
    assert out.done.item() == pytest.approx(done)
    assert out.info_nce.item() == 0.0
    assert out.total.item() == pytest.approx(dyn + 0.1 * rew + 0.1 * done, rel=1e-6)


def test_value_target_with_reward_scaling_by_hand():
    # 3-step window, gamma 0.5: no termination -> R = 1 + 0.5*2 + 0.25*3, discount 0.125.
    # Termination at step 1 -> R = 1 + 0.5*2 (the terminal reward counts), no bootstrap.
    rewards = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    not_done = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    returns, bootstrap_not_done, discount = n_step_returns(rewards, not_done, 0.5)
    next_q = torch.tensor([4.0, 100.0])
    target = losses.value_target(
        returns,
        discount * bootstrap_not_done,
        next_q,
        reward_scale=4.0,
        target_reward_scale=2.0,
    )
    # (2.75 + 0.125 * 4 * 2) / 4 and 2 / 4
    assert torch.allclose(target, torch.tensor([0.9375, 0.5]))
    plain = losses.value_target(
        returns, discount * bootstrap_not_done, next_q, reward_scale=1.0, target_reward_scale=1.0
    )
    assert torch.allclose(plain, torch.tensor([2.75 + 0.5, 2.0]))


def test_value_loss_is_huber_over_both_heads():
    q = torch.tensor([[0.0, 3.0], [0.5, 1.0]])  # (2 heads, B=2)
    target = torch.tensor([0.0, 1.0])
    # errors: 0, 2, 0.5, 0 -> huber 0, 1.5, 0.125, 0
    assert losses.value_loss(q, target).item() == pytest.approx((1.5 + 0.125) / 4)


def test_lap_priority_takes_the_worst_head_and_floors():
    q = torch.tensor([[0.5, 4.0, 1.0], [-3.0, 1.0, 1.2]])
    target = torch.tensor([0.0, 1.0, 1.0])
    p = losses.lap_priority(q, target, alpha=0.4, min_priority=1.0)
    assert torch.allclose(p, torch.tensor([3.0**0.4, 3.0**0.4, 1.0]))


def test_policy_loss_by_hand():
    q = torch.tensor([[1.0, 3.0], [2.0, 6.0]])
    pre = torch.tensor([[1.0, -1.0], [2.0, 0.0]])
    loss = losses.policy_loss(q, pre, pre_activ_weight=0.5)
    assert loss.item() == pytest.approx(-3.0 + 0.5 * 1.5)


@given(
    st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=1, max_size=6),
)
def test_termination_mask_properties(rows: list[list[bool]]):
    not_done = torch.tensor(rows, dtype=torch.float32)
    mask = losses.termination_mask(not_done)
    assert torch.all(mask[:, 0] == 1)
    # Non-increasing along the horizon, and 0 exactly after the first termination.
    assert torch.all(mask[:, 1:] <= mask[:, :-1])
    for b, row in enumerate(rows):
        first = row.index(False) if False in row else len(row)
        assert mask[b].tolist() == [1.0] * min(first + 1, 5) + [0.0] * (5 - min(first + 1, 5))


def test_info_nce_gradient_flows_to_pred_only_when_target_is_detached():
    pred = torch.randn(4, 3, requires_grad=True)
    target = torch.randn(4, 3)
    losses.info_nce(pred, target, 0.1).mean().backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()
