"""n-step returns against hand-computed numbers, and the one-hot helper."""

from __future__ import annotations

import pytest
import torch
from rl_buffers import n_step_returns, one_hot

torch.set_num_threads(1)


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> None:
    # (torch.testing.assert_close spends ~10 s importing on its first call)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=1e-6, atol=atol), (a, b)


def test_hand_computed_terminal_case() -> None:
    # Episode rewards 1..6, terminating at the 6th (index 5); the next episode starts with 100.
    # Windows of n = 3 starting at 3, 4, 5 (per-step not_done flags, the first terminal at j):
    rewards = torch.tensor([[4.0, 5.0, 6.0], [5.0, 6.0, 100.0], [6.0, 100.0, 0.0]])
    not_done = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    ret, boot, disc = n_step_returns(rewards, not_done, 0.99)
    # 4 + .99*5 + .9801*6 = 14.8306 ; 5 + .99*6 = 10.94 ; 6
    assert_close(ret, torch.tensor([14.8306, 10.94, 6.0]))
    assert_close(boot, torch.zeros(3))
    assert_close(disc, torch.tensor([0.99**3, 0.99**2, 0.99]))
    # The official MR.Q formula (each reward times its own flag) on its buffer layout (one extra
    # zero-reward slot after each terminal) gives 8.95, 5.00, 98.01 for the same starts.
    mrq_rewards = torch.tensor([[4.0, 5.0, 6.0], [5.0, 6.0, 0.0], [6.0, 0.0, 100.0]])
    mrq_not_done = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    mrq = (mrq_rewards * mrq_not_done * 0.99 ** torch.arange(3.0)).sum(1)
    assert_close(mrq, torch.tensor([8.95, 5.0, 98.01]))
    ours, _, _ = n_step_returns(mrq_rewards, mrq_not_done, 0.99)
    assert_close(ours, ret)


def test_no_terminal_bootstraps_with_gamma_n() -> None:
    r = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    ret, boot, disc = n_step_returns(r, torch.ones(1, 4), 0.5)
    assert ret.item() == pytest.approx(1 + 1 + 0.75 + 0.5)
    assert boot.item() == 1.0
    assert disc.item() == pytest.approx(0.5**4)


def test_cumulative_and_per_step_not_done_agree() -> None:
    g = torch.Generator().manual_seed(0)
    r = torch.randn(64, 5, generator=g)
    per_step = (torch.rand(64, 5, generator=g) > 0.3).float()
    cumulative = torch.cumprod(per_step, 1)
    for a, b in zip(
        n_step_returns(r, per_step, 0.9), n_step_returns(r, cumulative, 0.9), strict=True
    ):
        assert_close(a, b)
    # bool flags are accepted too
    for a, b in zip(
        n_step_returns(r, per_step.bool(), 0.9), n_step_returns(r, per_step, 0.9), strict=True
    ):
        assert_close(a, b)


def test_bad_shapes_and_gamma() -> None:
    with pytest.raises(ValueError, match=r"rewards \(B, n\)"):
        n_step_returns(torch.zeros(3), torch.zeros(3), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        n_step_returns(torch.zeros(2, 3), torch.zeros(2, 3), 1.5)


def test_one_hot() -> None:
    out = one_hot(torch.tensor([[2, 0]]), 3)
    assert out.dtype == torch.float32
    assert out.tolist() == [[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]
    with pytest.raises(TypeError, match="int64"):
        one_hot(torch.tensor([1.0]), 3)
