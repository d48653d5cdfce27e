"""Critic classes: hand-computed values, the deviation contract, gradient isolation, and what
each class can fit."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from marl_lowrank.config import CriticConfig
from marl_lowrank.networks import IR2Critic, deviation_actions, make_critic
from torch import nn

KINDS = ["ir1", "ir2", "irk", "joint", "independent"]


def _hand_made_ir2(n: int) -> IR2Critic:
    """f(a_i, a_j) = relu(a_i + a_j) exactly: one hidden unit, identity output."""
    critic = IR2Critic(n, 1, 1, CriticConfig(kind="ir2", hidden_sizes=(1,), agent_id=False))
    term = critic.term
    with torch.no_grad():
        term.x_in.weight.copy_(torch.tensor([[0.0, 1.0]]))  # [obs, a_i]
        term.x_in.bias.zero_()
        term.y_in.weight.copy_(torch.tensor([[0.0, 1.0]]))  # [obs, a_j]
        out: nn.Linear = term.rest.out  # pyright: ignore[reportAssignmentType]
        out.weight.fill_(1.0)
        out.bias.zero_()
    return critic


def test_ir2_equals_the_explicit_pair_sum_by_hand() -> None:
    critic = _hand_made_ir2(3)
    obs = torch.zeros(1, 3, 1)
    a = torch.tensor([[[0.5], [-1.0], [0.2]]])
    # Q^0 = relu(1.0) + relu(-0.5) + relu(0.7); Q^1 = 0; Q^2 = relu(0.7) + relu(-0.8) + relu(0.4)
    torch.testing.assert_close(critic(obs, a), torch.tensor([[1.7, 0.0, 1.1]]))
    # Each agent alone deviates to +1: Q^0 = relu(2) + relu(0) + relu(1.2) = 3.2,
    # Q^1 = relu(1.5) + relu(2) + relu(1.2) = 4.7, Q^2 = relu(1.5) + relu(0) + relu(2) = 3.5.
    own = torch.ones(1, 3, 1)
    torch.testing.assert_close(critic(obs, a, own=own), torch.tensor([[3.2, 4.7, 3.5]]))
    torch.testing.assert_close(critic.forward_looped(obs, a), critic(obs, a))


def test_vectorised_ir2_equals_the_per_agent_loop() -> None:
    torch.manual_seed(0)
    critic = make_critic(CriticConfig(kind="ir2", hidden_sizes=(16, 8)), 7, 3, 2)
    assert isinstance(critic, IR2Critic)
    obs, a = torch.randn(5, 7, 3), torch.rand(5, 7, 2) * 2 - 1
    torch.testing.assert_close(critic(obs, a), critic.forward_looped(obs, a))


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(KINDS), n=st.integers(2, 5), seed=st.integers(0, 1000))
def test_a_deviation_equals_the_joint_action_with_that_agent_replaced(
    kind: str, n: int, seed: int
) -> None:
    torch.manual_seed(seed)
    critic = make_critic(CriticConfig(kind=kind, hidden_sizes=(8,), k=2), n, 2, 2)
    obs, a, own = torch.randn(3, n, 2), torch.rand(3, n, 2), torch.rand(3, n, 2)
    got = critic(obs, a, own=own)
    rows = deviation_actions(a, own)  # (B, N, N, A): row i is agent i's joint action
    for i in range(n):  # the reference: one full evaluation per deviating agent
        torch.testing.assert_close(got[:, i], critic(obs, rows[:, i])[:, i])


@pytest.mark.parametrize("kind", KINDS)
def test_agent_i_value_moves_only_with_agent_i_own_action(kind: str) -> None:
    n = 4
    torch.manual_seed(1)
    critic = make_critic(CriticConfig(kind=kind, hidden_sizes=(8,), k=2), n, 2, 1)
    obs = torch.randn(2, n, 2)
    own = torch.rand(2, n, 1, requires_grad=True)
    q = critic(obs, own.detach(), own=own)
    for i in range(n):
        (grad,) = torch.autograd.grad(q[:, i].sum(), own, retain_graph=True)
        others = [j for j in range(n) if j != i]
        assert bool((grad[:, others] == 0).all()), (kind, i)


def _fit(kind: str, n: int, steps: int, seed: int = 0) -> float:
    """Least squares of r_i = sum_j a_i a_j / N (uniform actions, no noise); returns the MSE on
    fresh samples."""
    torch.manual_seed(seed)
    critic = make_critic(CriticConfig(kind=kind, hidden_sizes=(64,), k=2), n, 1, 1)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)

    def batch(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = torch.rand(m, n, 1, generator=gen) * 2 - 1
        v = a[..., 0]
        return torch.zeros(m, n, 1), a, v * v.sum(dim=-1, keepdim=True) / n

    for _ in range(steps):
        obs, a, r = batch(128)
        loss = (critic(obs, a) - r).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    obs, a, r = batch(4096)
    with torch.no_grad():
        return float((critic(obs, a) - r).pow(2).mean())


def test_least_squares_on_ir2_data_fits_with_ir2_and_not_with_ir1() -> None:
    n = 4
    # The best IR-1 fit keeps a_i^2 / N and misses every cross term a_i a_j / N: its error is at
    # least Var(sum_{j != i} a_i a_j) / N^2 = (N - 1) E[a^2]^2 / N^2 = 3 / 144 for U[-1, 1].
    floor = (n - 1) / (9 * n**2)
    ir2 = _fit("ir2", n, 500)
    ir1 = _fit("ir1", n, 500)
    assert ir2 < 0.05 * floor, ir2
    assert ir1 > 0.9 * floor, ir1
    # The general K = 2 class contains these pair terms too (and more), so it fits as well.
    irk = _fit("irk", n, 500)
    assert irk < 0.1 * floor, irk
