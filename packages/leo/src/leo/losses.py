"""Losses and schedules of LEO and its baselines: pure functions, tensors in, ``(loss, metrics)``
or tensors out.

LEO's all-goals one-step target (purejaxgcrl ``leo.py``), for transition ``(s, a, s')`` and every
goal ``g``::

    r_g    = achieved_g(s')                      (0/1)
    done_g = achieved_g(s') or episode ended      (reaching a goal ends it)
    y_g    = r_g + gamma * max_a' Q(s', g, a') * (1 - done_g)
    loss   = 0.5 * mean_{b, g} (Q(s_b, g, a_b) - y_{b, g})^2

with the behaviour action's value gathered for every goal. The UVFA (goal-conditioned PQN)
one-step loss is the same for one goal per transition; relabelling a transition to goal ``g``
and taking the UVFA loss gives LEO's loss term for ``g`` (the tests check the identity).
"""

from __future__ import annotations

import torch
from rl_buffers.goals import all_goals_from_achievements
from torch import Tensor

__all__ = [
    "bc_loss",
    "eps_greedy",
    "epsilon",
    "leo_loss",
    "leo_targets",
    "linear_anneal",
    "one_goal_targets",
    "uvfa_loss",
]


def epsilon(rollout: int, total_rollouts: int, start: float, finish: float, decay: float) -> float:
    """Epsilon after ``rollout`` rollouts: linear from ``start`` to ``finish`` over the first
    ``decay * total_rollouts`` rollouts, then ``finish`` (upstream's ``optax.linear_schedule`` on
    the update count)."""
    steps = decay * total_rollouts
    if steps <= 0:
        return finish
    frac = min(max(rollout, 0) / steps, 1.0)
    return start + frac * (finish - start)


def linear_anneal(value: float, step: int, total: int) -> float:
    """``value * (1 - step / total)``, floored at 0 (learning rates and the BC weight)."""
    if total <= 0:
        return value
    return value * max(0.0, 1.0 - step / total)


def eps_greedy(q: Tensor, eps: float, generator: torch.Generator) -> Tensor:
    """``(N,)`` int64 actions: greedy on ``q`` ``(N, A)``, uniformly random with probability eps
    (one draw per env, on ``generator``'s device)."""
    n, num_actions = q.shape
    dev = generator.device
    greedy = q.argmax(dim=-1)
    explore = torch.rand(n, generator=generator, device=dev).to(q.device) < eps
    random = torch.randint(0, num_actions, (n,), generator=generator, device=dev).to(q.device)
    return torch.where(explore, random, greedy)


def leo_targets(achieved: Tensor, done: Tensor, next_max_q: Tensor, gamma: float) -> Tensor:
    """All-goals one-step targets.

    Args:
        achieved: ``(..., G)`` bool: goals achieved by each transition's next observation.
        done: ``(...)`` bool: the episode ended at the transition.
        next_max_q: ``(..., G)`` float: ``max_a Q(s', g, a)`` (its value where ``done_g`` holds
            is ignored).
        gamma: Discount.

    Returns:
        ``(..., G)`` targets ``r_g + gamma * next_max_q * (1 - done_g)``.
    """
    if achieved.shape != next_max_q.shape or achieved.shape[:-1] != done.shape:
        raise ValueError(
            f"achieved {tuple(achieved.shape)}, done {tuple(done.shape)} and next_max_q "
            f"{tuple(next_max_q.shape)} must be (..., G), (...), (..., G)"
        )
    g = achieved.shape[-1]
    t = all_goals_from_achievements(achieved.reshape(-1, g), done.reshape(-1))
    # done_g = achieved_g or episode end: the goal's own termination masks the bootstrap
    y = t.reward + gamma * next_max_q.reshape(-1, g).float() * t.not_done
    return y.view(achieved.shape)


def one_goal_targets(reward: Tensor, done: Tensor, next_max_q: Tensor, gamma: float) -> Tensor:
    """One-step targets for one goal per transition: ``r + gamma * next_max_q * (1 - done_g)``
    with ``done_g = r > 0 or done`` (all ``(B,)``)."""
    done_g = (reward > 0) | done
    return reward.float() + gamma * next_max_q.float() * (~done_g).float()


def leo_loss(q_all: Tensor, actions: Tensor, targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """LEO's loss: ``0.5 * mean_{b,g} (Q(s_b, g, a_b) - y_{b,g})^2``.

    Args:
        q_all: ``(B, G, A)`` Q-values of every goal.
        actions: ``(B,)`` int64 behaviour actions (the same action for every goal).
        targets: ``(B, G)`` targets (constants).

    Returns:
        ``(loss, {"critic_loss", "q_mean"})``.
    """
    b, g, _ = q_all.shape
    if actions.shape != (b,) or targets.shape != (b, g):
        raise ValueError(
            f"q_all (B, G, A) = {tuple(q_all.shape)} needs actions ({b},) and targets ({b}, {g}), "
            f"got {tuple(actions.shape)} and {tuple(targets.shape)}"
        )
    index = actions.view(b, 1, 1).expand(b, g, 1)  # the behaviour action, for every goal
    chosen = q_all.gather(-1, index).squeeze(-1)  # (B, G)
    loss = 0.5 * (chosen - targets.detach()).square().mean()
    return loss, {"critic_loss": loss.detach(), "q_mean": chosen.detach().mean()}


def uvfa_loss(q: Tensor, actions: Tensor, targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """The goal-conditioned one-step loss: ``0.5 * mean_b (Q(s_b, g_b, a_b) - y_b)^2``
    (``q`` ``(B, A)``, ``actions`` and ``targets`` ``(B,)``)."""
    if q.ndim != 2 or actions.shape != q.shape[:1] or targets.shape != q.shape[:1]:
        raise ValueError(
            f"q must be (B, A) with actions and targets (B,), got {tuple(q.shape)}, "
            f"{tuple(actions.shape)}, {tuple(targets.shape)}"
        )
    chosen = q.gather(-1, actions[:, None]).squeeze(-1)
    loss = 0.5 * (chosen - targets.detach()).square().mean()
    return loss, {"critic_loss": loss.detach(), "q_mean": chosen.detach().mean()}


def bc_loss(logits: Tensor, teacher_q: Tensor) -> Tensor:
    """Dual LEO (PPO)'s behaviour cloning: ``mean_b -log pi(argmax_a Q_leo(s_b, g_b, a) | s_b)``
    (``logits`` and ``teacher_q`` ``(B, A)``; the teacher is a constant)."""
    target = teacher_q.detach().argmax(dim=-1)
    return torch.nn.functional.cross_entropy(logits, target)
