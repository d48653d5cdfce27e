"""Losses as pure functions: tensors in, ``(loss, metrics)`` out (metrics detached, 0-dim)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "alignment_loss",
    "appo_advantages",
    "metric_td_loss",
    "pair_backup",
    "q_regression_loss",
]


def pair_backup(
    weights: Tensor,
    reward0: Tensor,
    reward1: Tensor,
    next_distance: Tensor,
    not_done: Tensor,
    discount: float,
) -> Tensor:
    """``(B,)`` the one-step group-conditioned pi-bisimulation backup of matched pairs, with the
    action coupled across the pair (the same decision for both applicants):

    ``sum_a w(a) (|r(s0, a) - r(s1, a)| + discount * not_done * d(s0'_a, s1'_a))``

    where ``w(a)`` is the policy's weight on action a for the pair (``(pi(a|s0) + pi(a|s1)) / 2``)
    and ``s'_a`` the applicant's next state after a. The Bisimulator minimises it over r_phi and
    o_psi; the metric regresses on it.

    Args:
        weights: ``(B, A)`` action weights (rows sum to 1).
        reward0, reward1: ``(B, A)`` rewards of each action for each side.
        next_distance: ``(B, A)`` distances of the next states after each action.
        not_done: ``(B,)`` 0 where either applicant leaves the process.
        discount: The metric's gamma.
    """
    per_action = (reward0 - reward1).abs() + discount * not_done[:, None] * next_distance
    return (weights * per_action).sum(-1)


def metric_td_loss(distance: Tensor, backup: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """TD regression of the metric: ``mean((d(s0, s1) - backup)^2)``, the backup (computed with
    the target network for the next states) getting no gradient. The sampled next states of the
    pair stand for the Kantorovich coupling, as in MICo."""
    backup = backup.detach()
    loss = (distance - backup).square().mean()
    return loss, {"metric_loss": loss.detach(), "metric_distance": distance.detach().mean()}


def alignment_loss(observed0: Tensor, observed1: Tensor, distance: Tensor) -> Tensor:
    """DBC-style observation alignment: the L1 distance between the observations of a matched
    pair, ``(B, D)`` each, regressed on their bisimulation distance ``(B,)`` (no gradient to it):
    bisimilar applicants look alike to the learner."""
    gap = (observed0 - observed1).abs().sum(-1)
    return (gap - distance.detach()).square().mean()


def appo_advantages(
    advantages: Tensor,
    gap: Tensor,
    gap_change_advantage: Tensor,
    *,
    beta0: float,
    beta1: float,
    beta2: float,
    omega: float,
) -> Tensor:
    """POCAR's regularised advantage (Yu et al. 2022, eq. 3), ``(B,)`` each:
    ``beta0 A + beta1 min(0, omega - gap(s)) + beta2 1[gap(s) > omega] min(0, -A_gap(s, a))``,
    where ``A_gap`` is the advantage of the action on the change of the fairness gap (positive:
    the action widens the gap)."""
    value_threshold = torch.clamp(omega - gap, max=0.0)
    decrease = torch.where(
        gap > omega, torch.clamp(-gap_change_advantage, max=0.0), torch.zeros_like(gap)
    )
    return beta0 * advantages + beta1 * value_threshold + beta2 * decrease


def q_regression_loss(q_taken: Tensor, returns: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """``0.5 mean((Q(s, a) - G)^2)`` towards the rollout's Q(lambda) returns (no gradient)."""
    loss = 0.5 * (q_taken - returns.detach()).square().mean()
    return loss, {"critic_loss": loss.detach(), "q_mean": q_taken.detach().mean()}
