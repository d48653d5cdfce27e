"""The TD3 networks: a deterministic tanh actor and twin critics, on rl_nets blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rl_nets import MLP, EnsembleMLP
from torch import Tensor, nn

__all__ = ["Actor", "TwinCritic"]


class Actor(nn.Module):
    """``pi(s) = tanh(MLP(s))`` in ``[-1, 1]^A``.

    Args:
        obs_dim: Input features (the time to horizon included when used).
        action_dim: ``A``.
        hidden_sizes: Hidden widths (ReLU).

    Shapes:
        ``forward``: ``(B, obs_dim)`` -> ``(B, A)``.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.net = MLP(obs_dim, action_dim, hidden_sizes, activation="relu")

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs))


class TwinCritic(nn.Module):
    """Two independent ``Q(s, a)`` networks evaluated in one batched pass.

    Args:
        obs_dim: Observation features.
        action_dim: ``A``.
        hidden_sizes: Hidden widths (ReLU).

    Shapes:
        ``forward``: ``(B, obs_dim)``, ``(B, A)`` -> ``(2, B)``.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.net = EnsembleMLP(2, obs_dim + action_dim, 1, hidden_sizes, activation="relu")

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)  # (2, B, 1) -> (2, B)
