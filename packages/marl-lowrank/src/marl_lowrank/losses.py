"""Losses: pure functions, tensors in, ``(loss, metrics)`` out (metrics detached, 0-dim)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["critic_loss", "td3bc_actor_loss"]


def critic_loss(qs: Sequence[Tensor], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over critics of the mean squared error to the (detached) target.

    Args:
        qs: Each critic's ``(B, N)`` values.
        target: ``(B, N)`` TD targets (or rewards, for one-step games).

    Returns:
        The loss and ``critic_loss``, ``q_mean``.
    """
    loss = torch.stack([F.mse_loss(q, target) for q in qs]).sum()
    return loss, {"critic_loss": loss.detach(), "q_mean": qs[0].detach().mean()}


def td3bc_actor_loss(
    q: Tensor, pi: Tensor, data_action: Tensor, alpha: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """TD3+BC's actor loss, averaged over agents: ``-lambda mean Q + mean (pi - a)^2`` with
    ``lambda = alpha / mean |Q|`` (detached).

    Args:
        q: ``(B, N)`` each agent's critic at its own policy action.
        pi: ``(B, N, A)`` the policy's actions.
        data_action: ``(B, N, A)`` the dataset's actions.
        alpha: TD3+BC's alpha.

    Returns:
        The loss and ``actor_loss``, ``bc_loss``, ``lambda``.
    """
    lmbda = alpha / q.detach().abs().mean().clamp_min(1e-6)
    bc = F.mse_loss(pi, data_action)
    loss = -lmbda * q.mean() + bc
    return loss, {"actor_loss": loss.detach(), "bc_loss": bc.detach(), "lambda": lmbda.detach()}
