"""LEO's loss against hand-computed values, the relabelling identity it rests on, done_g masking,
the epsilon schedule."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from leo.agent import LEOLearner, Rollout, UVFALearner
from leo.config import NetworkConfig, QConfig
from leo.envs import Gridworld
from leo.losses import (
    bc_loss,
    eps_greedy,
    epsilon,
    leo_loss,
    leo_targets,
    one_goal_targets,
    uvfa_loss,
)
from torch import Tensor, nn


def test_leo_targets_mask_bootstrap_per_goal() -> None:
    # 2 transitions, 3 goals. Transition 0 reaches goal 1; transition 1 ends its episode.
    achieved = torch.tensor([[False, True, False], [False, False, True]])
    done = torch.tensor([False, True])
    next_max = torch.tensor([[0.5, 0.9, 0.2], [0.7, 0.7, 0.7]])
    y = leo_targets(achieved, done, next_max, 0.9)
    expected = torch.tensor([[0.9 * 0.5, 1.0, 0.9 * 0.2], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(y, expected)


def test_leo_loss_by_hand() -> None:
    q = torch.tensor([[[0.1, 0.2], [0.3, 0.4]], [[0.5, 0.6], [0.7, 0.8]]])  # (B=2, G=2, A=2)
    actions = torch.tensor([1, 0])
    targets = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    loss, metrics = leo_loss(q, actions, targets)
    chosen = [0.2, 0.4, 0.5, 0.7]  # action 1 of env 0, action 0 of env 1, for each goal
    expected = 0.5 * sum((c - t) ** 2 for c, t in zip(chosen, [0, 1, 1, 0], strict=True)) / 4
    assert loss.item() == pytest.approx(expected)
    assert metrics["q_mean"].item() == pytest.approx(sum(chosen) / 4)


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 6),
    g=st.integers(1, 5),
    a=st.integers(1, 4),
    gamma=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_leo_loss_for_goal_g_is_the_uvfa_loss_relabelled_to_g(b, g, a, gamma, seed) -> None:
    """The identity LEO rests on: its per-goal term is the one-goal (UVFA) loss of the same
    transitions relabelled to that goal; the LEO loss is their mean over goals."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.rand(b, g, a, generator=gen, requires_grad=True)
    q_next = torch.rand(b, g, a, generator=gen)
    actions = torch.randint(0, a, (b,), generator=gen)
    achieved = torch.rand(b, g, generator=gen) < 0.3
    done = torch.rand(b, generator=gen) < 0.3
    y = leo_targets(achieved, done, q_next.amax(-1), gamma)
    total, _ = leo_loss(q, actions, y)
    per_goal = []
    for goal in range(g):
        y_g = one_goal_targets(achieved[:, goal].float(), done, q_next[:, goal].amax(-1), gamma)
        loss_g, _ = uvfa_loss(q[:, goal], actions, y_g)
        leo_g, _ = leo_loss(q[:, goal : goal + 1], actions, y[:, goal : goal + 1])
        torch.testing.assert_close(leo_g, loss_g)
        per_goal.append(loss_g)
    torch.testing.assert_close(total, torch.stack(per_goal).mean())
    # and the gradients agree
    (grad_leo,) = torch.autograd.grad(total, q)
    (grad_uvfa,) = torch.autograd.grad(torch.stack(per_goal).mean(), q)
    torch.testing.assert_close(grad_leo, grad_uvfa)


class _LEOAsUVFA(nn.Module):
    """A UVFA whose Q(s, g) is a LEO network's row g (Gridworld goal inputs are cells)."""

    def __init__(self, leo: nn.Module, cells: Tensor) -> None:
        super().__init__()
        self.leo, self.cells = leo, cells

    def forward(self, obs: Tensor, goal: Tensor) -> Tensor:
        index = (goal[:, None, :] == self.cells[None]).all(-1).float().argmax(-1)  # (B,)
        return self.leo(obs)[torch.arange(obs.shape[0]), index]


def test_all_goals_relabelling_gives_leos_targets() -> None:
    """PQN+HER with every goal (naive all-goals relabelling) on the same values computes, pair by
    pair, the targets LEO computes in one pass."""
    env = Gridworld(8, size=5, reset_ratio=8, seed=0)
    goals = env.goals
    net, q = NetworkConfig(width=16, dense_layers=1), QConfig(gamma=0.9)
    common = {"total_rollouts": 1, "batch": 24, "generator": torch.Generator().manual_seed(0),
              "device": torch.device("cpu")}  # fmt: skip
    leo = LEOLearner(env.layout, goals, 4, net, q, **common)
    uvfa = UVFALearner(env.layout, goals, 4, net, q, her="all", **common)
    uvfa.net = _LEOAsUVFA(leo.net, goals.table)  # pyright: ignore[reportAttributeAccessIssue]
    gen = torch.Generator().manual_seed(1)
    obs_t, act_t, goal_t, ach_t, done_t = [], [], [], [], []
    obs = env.reset(0)
    goal = torch.randint(0, len(goals), (8,), generator=gen)
    for _ in range(3):
        a = torch.randint(0, 4, (8,), generator=gen)
        res = env.step(a)
        obs_t.append(obs)
        act_t.append(a)
        goal_t.append(goal)
        ach_t.append(goals.achieved(res.next_obs))
        done_t.append(res.done)
        obs = res.obs
    obs_all = torch.stack(obs_t)
    q_all = leo.q_all(obs_all.reshape(-1, 2)).view(3, 8, len(goals), 4)
    goals_t = torch.stack(goal_t)
    acting = q_all.gather(2, goals_t[..., None, None].expand(3, 8, 1, 4)).squeeze(2)
    rollout = Rollout(obs_all, torch.stack(act_t), goals_t, torch.stack(ach_t),
                      torch.stack(done_t), obs, goal, torch.ones(len(goals), dtype=torch.bool),
                      {"leo_max_q": q_all.amax(-1), "uvfa_max_q": acting.amax(-1)})  # fmt: skip
    y_leo = leo.targets(rollout).reshape(24, -1)  # (T*N, G)
    pair_goals, rows, y = uvfa.targets(rollout)
    assert y.numel() == 24 * (1 + len(goals))
    torch.testing.assert_close(y, y_leo[rows, pair_goals])


@pytest.mark.parametrize(
    ("rollout", "expected"),
    [(0, 0.2), (10, 0.2 + 0.5 * (0.01 - 0.2)), (20, 0.01), (99, 0.01)],
)
def test_epsilon_decays_linearly_over_the_first_fifth(rollout: int, expected: float) -> None:
    assert epsilon(rollout, 100, 0.2, 0.01, 0.2) == pytest.approx(expected)


def test_eps_greedy_explores_at_rate_epsilon() -> None:
    q = torch.zeros(20_000, 4)
    q[:, 2] = 1.0
    gen = torch.Generator().manual_seed(0)
    assert bool((eps_greedy(q, 0.0, gen) == 2).all())
    actions = eps_greedy(q, 0.4, gen)
    # random with prob 0.4, and a random action is 2 a quarter of the time
    assert (actions != 2).float().mean().item() == pytest.approx(0.4 * 0.75, abs=0.015)


def test_bc_loss_is_the_log_prob_of_the_teachers_greedy_action() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    teacher = torch.tensor([[0.1, 0.9, 0.3]])
    expected = -torch.log_softmax(logits, -1)[0, 1]
    torch.testing.assert_close(bc_loss(logits, teacher), expected)


def test_shape_errors_name_the_arguments() -> None:
    with pytest.raises(ValueError, match="needs actions"):
        leo_loss(torch.zeros(2, 3, 4), torch.zeros(3, dtype=torch.int64), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="achieved"):
        leo_targets(torch.zeros(2, 3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool),
                    torch.zeros(2, 3), 0.9)  # fmt: skip
