"""Networks of DriftQL, FQL and BC: a noise-conditioned actor MLP and a two-member Q ensemble.

Both follow the official JAX code (``utils/networks.py`` of FQL, reused by DriftQL):

* Actor (``ActorVectorField``): ``concat(s, noise[, t]) -> 4 x 512 GELU -> Linear(A)``, no
  LayerNorm, no output squashing (callers clip to [-1, 1]).
* Critic (``Value`` with ``num_ensembles=2``): per member ``concat(s, a) -> 4 x (Linear -> GELU ->
  LayerNorm) -> Linear(1)``; the LayerNorm has a learnable scale and shift and eps 1e-6 (Flax's).
* Initialisation: Flax's ``variance_scaling(1, "fan_avg", "uniform")`` (= xavier-uniform with
  gain 1) for every weight, zero biases.

One deviation: GELU is the exact (erf) form; Flax's ``nn.gelu`` defaults to the tanh
approximation (they differ by < 1e-3 everywhere).
"""

from __future__ import annotations

import torch
from rl_nets import MLP, EnsembleMLP, init_weights
from torch import Tensor, nn

__all__ = ["Actor", "Critic"]

_FLAX_LN_EPS = 1e-6


class Actor(nn.Module):
    """``f(s, noise[, t]) -> action`` (unclipped), the policy of DriftQL/BC and FQL's two actors.

    Args:
        obs_dim: Observation features O.
        action_dim: Action features A.
        noise_dim: Width of the noise input (0: deterministic ``f(s)``, used by BC).
        time_input: Also read a time ``t`` of shape ``(..., 1)`` (FQL's flow velocity field).
        hidden_sizes: Hidden widths.
        layer_norm: LayerNorm after each hidden activation.
        generator: Source of the initial weights.

    Shapes:
        ``forward(obs (..., O), noise (..., noise_dim) | None, t (..., 1) | None) -> (..., A)``.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        noise_dim: int,
        *,
        time_input: bool = False,
        hidden_sizes: tuple[int, ...] = (512, 512, 512, 512),
        layer_norm: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if noise_dim < 0:
            raise ValueError(f"noise_dim must be >= 0, got {noise_dim}")
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.noise_dim = noise_dim
        self.time_input = time_input
        self.net = MLP(
            obs_dim + noise_dim + int(time_input),
            action_dim,
            hidden_sizes,
            activation="gelu",
            layer_norm="post_activation" if layer_norm else "none",
            norm_affine=True,
            norm_eps=_FLAX_LN_EPS,
        )
        init_weights(self.net, "xavier_uniform", gain=1.0, generator=generator)

    def forward(self, obs: Tensor, noise: Tensor | None = None, t: Tensor | None = None) -> Tensor:
        """Raw (unclipped) action or velocity.

        Args:
            obs: ``(..., O)``.
            noise: ``(..., noise_dim)``; must be ``None`` iff ``noise_dim == 0``.
            t: ``(..., 1)`` time in [0, 1]; required iff ``time_input``.

        Returns:
            ``(..., A)``.
        """
        parts = [obs]
        if self.noise_dim > 0:
            if noise is None:
                raise ValueError(f"Actor: noise of width {self.noise_dim} is required")
            parts.append(noise)
        elif noise is not None:
            raise ValueError("Actor: this actor is deterministic (noise_dim=0); got noise")
        if self.time_input:
            if t is None:
                raise ValueError("Actor: t of shape (..., 1) is required (time_input=True)")
            parts.append(t)
        return self.net(torch.cat(parts, dim=-1) if len(parts) > 1 else obs)


class Critic(nn.Module):
    """Ensemble of ``num_members`` Q networks evaluated as one batched network.

    Args:
        obs_dim: Observation features O.
        action_dim: Action features A.
        hidden_sizes: Hidden widths of each member.
        num_members: Ensemble size (official: 2).
        layer_norm: LayerNorm after each hidden GELU (official: on).
        generator: Source of the initial weights (each member gets its own draw).

    Shapes:
        ``forward(obs (B, O), action (B, A)) -> (num_members, B)``.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        *,
        hidden_sizes: tuple[int, ...] = (512, 512, 512, 512),
        num_members: int = 2,
        layer_norm: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.net = EnsembleMLP(
            num_members,
            obs_dim + action_dim,
            1,
            hidden_sizes,
            activation="gelu",
            layer_norm="post_activation" if layer_norm else "none",
            norm_affine=True,
            norm_eps=_FLAX_LN_EPS,
        )
        init_weights(self.net, "xavier_uniform", gain=1.0, generator=generator)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        """Q values of every member.

        Args:
            obs: ``(B, O)``.
            action: ``(B, A)``.

        Returns:
            ``(num_members, B)``.
        """
        # (B, O + A) shared by all members -> (N, B, 1) -> (N, B)
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)
