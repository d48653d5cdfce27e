"""MR.Q's networks: encoder (f, action embedding, g, MDP head), policy, and twin Q heads.

All hidden layers are ``Linear → LayerNorm (no affine) → activation``; weights are xavier-uniform
with gain √2 and zero biases (:func:`rl_nets.init_weights`), as in the official code.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from rl_nets import (
    MLP,
    EnsembleMLP,
    FastLinear,
    PixelEncoder,
    SimNorm,
    init_weights,
    make_activation,
)
from torch import Tensor, nn

from mrq_drq.config import EncoderConfig, PolicyConfig, ValueConfig
from mrq_drq.envs import EnvSpec

__all__ = ["Encoder", "ModelPrediction", "Policy", "Value"]


class ModelPrediction(NamedTuple):
    """Output of the linear MDP head on zsa.

    Attributes:
        done: ``(...)`` predicted terminal flag (regressed onto {0, 1}).
        next_zs: ``(..., zs_dim)`` predicted next-state embedding.
        reward_logits: ``(..., num_bins)`` two-hot reward logits.
    """

    done: Tensor
    next_zs: Tensor
    reward_logits: Tensor


class Encoder(nn.Module):
    """State encoder f, action embedding, state-action encoder g and the linear MDP head.

    * ``zs = f(s)``: for vectors ``MLP(obs → h → h → zs)`` then LayerNorm + activation; for
      pixels MR.Q's conv stack (:class:`rl_nets.PixelEncoder`).
    * ``za = act(Linear(a))``.
    * ``zsa = g(zs, za) = MLP(zs ‖ za → h → h → zsa)`` with a linear output.
    * ``Linear(zsa → 1 + zs_dim + num_bins)`` split into (done, next zs, reward logits).

    Args:
        spec: Observation / action description (:func:`mrq_drq.envs.check_spaces`).
        cfg: Encoder config.
        latent_simnorm: Hook for methods built on MR.Q (MRS.Q's simplicial embeddings): a group
            size V makes zs ``SimNorm_V(LN(Linear(...)))`` instead of ``act(LN(Linear(...)))``
            (pixels: SimNorm after the conv encoder's output) and applies the same SimNorm to the
            predicted next zs. ``None`` (default) is MR.Q, unchanged.
    """

    def __init__(
        self, spec: EnvSpec, cfg: EncoderConfig, *, latent_simnorm: int | None = None
    ) -> None:
        super().__init__()
        if latent_simnorm is not None and cfg.zs_dim % latent_simnorm != 0:
            raise ValueError(
                f"latent_simnorm={latent_simnorm} must divide encoder.zs_dim={cfg.zs_dim}"
            )
        self.zs_dim = cfg.zs_dim
        self.num_bins = cfg.num_bins
        self.pixels = spec.pixels
        self.state_encoder: nn.Module
        if spec.pixels:
            channels, size = spec.obs_shape[0], spec.obs_shape[1]
            self.state_encoder = PixelEncoder(channels, size, cfg.zs_dim, activation=cfg.activation)
        else:
            self.state_encoder = MLP(
                spec.obs_shape[0],
                cfg.zs_dim,
                (cfg.hidden_dim, cfg.hidden_dim),
                activation=cfg.activation,
                layer_norm="pre_activation",
                output_layer_norm=True,
                output_activation=cfg.activation if latent_simnorm is None else None,
            )
        # Parameter-free, so MR.Q's state dict is the same with or without it.
        self.latent_norm: nn.Module = (
            nn.Identity() if latent_simnorm is None else SimNorm(latent_simnorm)
        )
        self.action_embed = FastLinear(spec.action_dim, cfg.za_dim)
        self.action_act = make_activation(cfg.activation)
        self.sa_encoder = MLP(
            cfg.zs_dim + cfg.za_dim,
            cfg.zsa_dim,
            (cfg.hidden_dim, cfg.hidden_dim),
            activation=cfg.activation,
            layer_norm="pre_activation",
        )
        self.model_head = FastLinear(cfg.zsa_dim, 1 + cfg.zs_dim + cfg.num_bins)

    def zs(self, obs: Tensor) -> Tensor:
        """State embedding.

        Args:
            obs: ``(..., obs_dim)`` float or ``(..., C, H, W)`` uint8.

        Returns:
            ``(..., zs_dim)``.
        """
        return self.latent_norm(self.state_encoder(obs))

    def za(self, action: Tensor) -> Tensor:
        """Action embedding of ``(..., action_dim)`` actions (one-hot if discrete) → ``(..., za_dim)``."""
        return self.action_act(self.action_embed(action))

    def zsa_from_za(self, zs: Tensor, za: Tensor) -> Tensor:
        """State-action embedding from embedded actions: ``(..., zs_dim), (..., za_dim) → (..., zsa_dim)``."""
        return self.sa_encoder(torch.cat([zs, za], dim=-1))

    def zsa(self, zs: Tensor, action: Tensor) -> Tensor:
        """State-action embedding: ``(..., zs_dim), (..., action_dim) → (..., zsa_dim)``."""
        return self.zsa_from_za(zs, self.za(action))

    def model(self, zsa: Tensor) -> ModelPrediction:
        """Apply the linear MDP head to ``(..., zsa_dim)``."""
        out = self.model_head(zsa)
        # (..., 1 + zs_dim + num_bins) -> done (...), next zs (..., zs_dim), logits (..., num_bins)
        return ModelPrediction(
            out[..., 0],
            self.latent_norm(out[..., 1 : 1 + self.zs_dim]),
            out[..., 1 + self.zs_dim :],
        )


class Policy(nn.Module):
    """Deterministic policy on zs: ``MLP(zs → h → h → A)``, then tanh or Gumbel-softmax.

    Args:
        zs_dim: Input width.
        action_dim: Continuous action dimension, or number of discrete actions.
        discrete: Gumbel-softmax (relaxed one-hot, temperature ``cfg.gumbel_tau``) instead of tanh.
        cfg: Policy config.
    """

    def __init__(self, zs_dim: int, action_dim: int, discrete: bool, cfg: PolicyConfig) -> None:
        super().__init__()
        self.discrete = discrete
        self.gumbel_tau = cfg.gumbel_tau
        self.net = MLP(
            zs_dim,
            action_dim,
            (cfg.hidden_dim, cfg.hidden_dim),
            activation=cfg.activation,
            layer_norm="pre_activation",
        )

    def forward(self, zs: Tensor, gumbel_noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Action and pre-activation.

        Args:
            zs: ``(B, zs_dim)``.
            gumbel_noise: ``(B, A)`` standard Gumbel samples, required for discrete actions (drawn
                by the caller from its own generator, so the step stays deterministic and
                compilable); ignored for continuous actions.

        Returns:
            ``(action, pre_activation)``, both ``(B, A)``: ``tanh(pre)`` in [-1, 1], or
            ``softmax((pre + gumbel) / tau)`` (a point on the simplex).
        """
        pre = self.net(zs)
        if not self.discrete:
            return torch.tanh(pre), pre
        if gumbel_noise is None:
            raise ValueError("discrete policy needs gumbel_noise of shape (B, num_actions)")
        return F.softmax((pre + gumbel_noise) / self.gumbel_tau, dim=-1), pre


class Value(nn.Module):
    """Twin Q heads on zsa.

    Each head is ``MLP(zsa → h → h → h → 1)`` with LayerNorm + activation on every hidden layer
    (the official ``ValueNetwork``: a 3-layer MLP, then LayerNorm + activation, then a linear
    output). The heads are separate :class:`rl_nets.MLP` s rather than one
    :class:`rl_nets.EnsembleMLP`: on CPU two plain GEMM chains are faster than the batched
    matmuls (see the README's speed notes).

    Args:
        zsa_dim: Input width.
        cfg: Value config.
        num_heads: Number of Q heads (2; a hook for critic ensembles, e.g. MRS.Q's 10).
        batched: Hook: hold the heads as one :class:`rl_nets.EnsembleMLP` (every head in one
            batched forward) instead of separate MLPs; same architecture, other parameter names.
    """

    def __init__(
        self, zsa_dim: int, cfg: ValueConfig, num_heads: int = 2, *, batched: bool = False
    ) -> None:
        super().__init__()
        sizes = (cfg.hidden_dim, cfg.hidden_dim, cfg.hidden_dim)
        self.heads = nn.ModuleList(
            MLP(zsa_dim, 1, sizes, activation=cfg.activation, layer_norm="pre_activation")
            for _ in range(0 if batched else num_heads)
        )
        self.ensemble = (
            EnsembleMLP(
                num_heads, zsa_dim, 1, sizes, activation=cfg.activation, layer_norm="pre_activation"
            )
            if batched
            else None
        )

    def forward(self, zsa: Tensor) -> Tensor:
        """``(..., zsa_dim) → (num_heads, ...)`` Q values."""
        if self.ensemble is not None:
            return self.ensemble(zsa).squeeze(-1)  # (N, ..., 1) -> (N, ...)
        return torch.stack([head(zsa).squeeze(-1) for head in self.heads])


def build_networks(
    spec: EnvSpec,
    encoder_cfg: EncoderConfig,
    value_cfg: ValueConfig,
    policy_cfg: PolicyConfig,
    *,
    generator: torch.Generator,
    num_critics: int = 2,
    batched_critics: bool = False,
    latent_simnorm: int | None = None,
) -> tuple[Encoder, Value, Policy]:
    """Build and initialise the three online networks (MR.Q init, drawn from ``generator``).

    The keyword hooks (defaults: MR.Q) are those of :class:`Encoder` and :class:`Value`.
    """
    encoder = init_weights(
        Encoder(spec, encoder_cfg, latent_simnorm=latent_simnorm), generator=generator
    )
    value = init_weights(
        Value(encoder_cfg.zsa_dim, value_cfg, num_critics, batched=batched_critics),
        generator=generator,
    )
    policy = init_weights(
        Policy(encoder_cfg.zs_dim, spec.action_dim, spec.discrete, policy_cfg),
        generator=generator,
    )
    return encoder, value, policy
