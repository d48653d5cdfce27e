"""Networks of LEO and its baselines (purejaxgcrl ``models/pqn_models_gc.py``,
``models/actor_critic_gc.py``, ``models/batch_renorm.py``), written in torch.

* :class:`Encoder`: the observation (and, for the goal-conditioned baselines, the goal mask laid
  out like an observation) split into the map part, ``(H, W, C)`` one-hot channels through Batch
  Renormalization, a 'same' conv, LayerNorm and ReLU, flattened, and the flat part through its
  own Batch Renormalization; the two concatenated. Without a map (Gridworld) only the flat part.
* :class:`LEONetwork`: the encoder, ``dense_layers`` x (Linear(width), LayerNorm, ReLU) with
  orthogonal init (gain sqrt 2, zero bias), and one head of ``G * A`` outputs (gain 1) reshaped
  to ``(B, G, A)`` and squashed by a sigmoid: Q-values for every goal at once, from the
  observation alone.
* :class:`UVFANetwork`: the same torso on (observation, goal), head ``A`` outputs with a sigmoid.
* :class:`ActorCritic`: goal-conditioned PPO's network: conv (ReLU, no norm), shared dense
  embedding, actor head (logits, gain 0.01) and critic head (gain 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from leo.config import NetworkConfig, PPOConfig
from leo.goals import ObsLayout

__all__ = ["ActorCritic", "BatchRenorm", "Encoder", "LEONetwork", "UVFANetwork"]


class BatchRenorm(nn.Module):
    """Batch Renormalization (Ioffe 2017) over the last dimension, as upstream's flax module:
    running statistics with momentum 0.999, ``r`` clipped to [1/3, 3] and ``d`` to [-5, 5], used
    only after 1,000 training batches (plain batch statistics before), affine scale and bias.

    In training mode it normalises with the (renormalised) batch statistics and updates the
    running ones; in eval mode it uses the running statistics.
    """

    running_mean: Tensor
    running_var: Tensor
    steps: Tensor

    def __init__(
        self,
        features: int,
        *,
        momentum: float = 0.999,
        eps: float = 1e-3,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup: int = 1000,
    ) -> None:
        super().__init__()
        self.momentum, self.eps, self.r_max, self.d_max, self.warmup = (
            momentum, eps, r_max, d_max, warmup,
        )  # fmt: skip
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            mean, var = self.running_mean, self.running_var
        else:
            dims = tuple(range(x.ndim - 1))
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            with torch.no_grad():
                std = torch.sqrt(var + self.eps)
                ra_std = torch.sqrt(self.running_var + self.eps)
                r = (std / ra_std).clamp(1.0 / self.r_max, self.r_max)
                d = ((mean - self.running_mean) / ra_std).clamp(-self.d_max, self.d_max)
                warmed = (self.steps >= self.warmup).to(x.dtype)
                self.running_mean.lerp_(mean.detach(), 1.0 - self.momentum)
                self.running_var.lerp_(var.detach(), 1.0 - self.momentum)
                self.steps += 1
            # Renormalised statistics (upstream: var / r^2 and mean - d * std / r), gradients
            # flowing through the batch mean and variance as in the paper.
            renorm_var = var / r**2
            renorm_mean = mean - d * torch.sqrt(var) / r
            var = warmed * renorm_var + (1.0 - warmed) * var
            mean = warmed * renorm_mean + (1.0 - warmed) * mean
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def _orthogonal(layer: nn.Linear | nn.Conv2d, gain: float) -> None:
    nn.init.orthogonal_(layer.weight, gain)
    assert layer.bias is not None
    nn.init.zeros_(layer.bias)


class _ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of ``(B, C, H, W)`` (flax's LayerNorm on NHWC)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Encoder(nn.Module):
    """Observation (and goal) encoder; see the module doc.

    Args:
        layout: Where the map and flat parts sit in an observation.
        copies: 1 (observation) or 2 (observation and an observation-shaped goal).
        conv_layers, conv_features, conv_kernel: The conv on the map.
        norm_input: Batch Renormalization on the inputs.
        conv_norm: LayerNorm after each conv (the Q networks; PPO has none).
        norm_momentum: Momentum of the input norms' running statistics.
    """

    def __init__(
        self,
        layout: ObsLayout,
        *,
        copies: int = 1,
        conv_layers: int = 1,
        conv_features: int = 32,
        conv_kernel: int = 3,
        norm_input: bool = True,
        conv_norm: bool = True,
        norm_momentum: float = 0.999,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.copies = copies
        c = layout.map_channels * copies
        m = norm_momentum
        self.map_norm = BatchRenorm(c, momentum=m) if norm_input and layout.map_hw else None
        flat = layout.flat_size * copies
        self.flat_norm = BatchRenorm(flat, momentum=m) if norm_input else None
        convs: list[nn.Module] = []
        channels = c
        if layout.map_hw is not None:
            for _ in range(conv_layers):
                conv = nn.Conv2d(channels, conv_features, conv_kernel, padding="same")
                convs.append(conv)
                if conv_norm:
                    convs.append(_ChannelLayerNorm(conv_features))
                convs.append(nn.ReLU())
                channels = conv_features
        self.convs = nn.Sequential(*convs)
        h, w = layout.map_hw or (0, 0)
        self.out_dim = h * w * channels + flat

    def forward(self, *inputs: Tensor) -> Tensor:
        """``copies`` tensors of ``(B, D)`` -> ``(B, out_dim)``."""
        lay = self.layout
        flats = [x[:, lay.map_size :] for x in inputs]
        flat = torch.cat(flats, dim=-1) if len(flats) > 1 else flats[0]
        if self.flat_norm is not None:
            flat = self.flat_norm(flat)
        if lay.map_hw is None:
            return flat
        h, w = lay.map_hw
        # (B, H*W*C) -> (B, H, W, C) per input, concatenated over channels (upstream's NHWC).
        maps = [x[:, : lay.map_size].reshape(-1, h, w, lay.map_channels) for x in inputs]
        image = torch.cat(maps, dim=-1) if len(maps) > 1 else maps[0]
        if self.map_norm is not None:
            image = self.map_norm(image)
        image = self.convs(image.permute(0, 3, 1, 2))  # (B, C', H, W)
        # flatten in NHWC order, as upstream's reshape after its NHWC conv
        image = image.permute(0, 2, 3, 1).reshape(image.shape[0], -1)
        return torch.cat([image, flat], dim=-1)


def _trunk(in_dim: int, width: int, layers: int, norm: bool) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers):
        lin = nn.Linear(in_dim, width)
        _orthogonal(lin, math.sqrt(2.0))
        mods += [lin, nn.LayerNorm(width)] if norm else [lin]
        mods.append(nn.ReLU())
        in_dim = width
    return nn.Sequential(*mods)


class LEONetwork(nn.Module):
    """``obs (B, D) -> Q (B, G, A)``: every goal's action values in one forward pass.

    Args:
        layout: The observation layout.
        num_goals: G.
        num_actions: A.
        cfg: Widths, conv and norms.
    """

    def __init__(self, layout: ObsLayout, num_goals: int, num_actions: int, cfg: NetworkConfig):
        super().__init__()
        self.num_goals, self.num_actions = num_goals, num_actions
        self.sigmoid = cfg.sigmoid
        self.encoder = Encoder(
            layout,
            conv_layers=cfg.conv_layers,
            conv_features=cfg.conv_features,
            conv_kernel=cfg.conv_kernel,
            norm_input=cfg.norm_input,
            norm_momentum=cfg.norm_momentum,
        )
        self.trunk = _trunk(self.encoder.out_dim, cfg.width, cfg.dense_layers, True)
        self.head = nn.Linear(cfg.width, num_goals * num_actions)
        _orthogonal(self.head, 1.0)

    def forward(self, obs: Tensor) -> Tensor:
        q = self.head(self.trunk(self.encoder(obs)))
        q = q.view(obs.shape[0], self.num_goals, self.num_actions)  # (B, G*A) -> (B, G, A)
        return torch.sigmoid(q) if self.sigmoid else q


class UVFANetwork(nn.Module):
    """``(obs (B, D), goal (B, D_g)) -> Q (B, A)``: the goal as an input (goal-conditioned PQN).

    On Craftax the goal input is the goal's observation mask, laid out like an observation and
    concatenated channel-wise to the map and feature-wise to the flat part; on the Gridworld it
    is the goal cell's coordinates, concatenated to the position.
    """

    def __init__(self, layout: ObsLayout, goal_dim: int, num_actions: int, cfg: NetworkConfig):
        super().__init__()
        self.sigmoid = cfg.sigmoid
        self.encoder = _goal_encoder(layout, goal_dim, cfg.conv_layers, cfg.conv_features,
                                     cfg.conv_kernel, cfg.norm_input, conv_norm=True,
                                     norm_momentum=cfg.norm_momentum)  # fmt: skip
        self.trunk = _trunk(self.encoder.out_dim, cfg.width, cfg.dense_layers, True)
        self.head = nn.Linear(cfg.width, num_actions)
        _orthogonal(self.head, 1.0)

    def forward(self, obs: Tensor, goal: Tensor) -> Tensor:
        q = self.head(self.trunk(self.encoder(obs, goal)))
        return torch.sigmoid(q) if self.sigmoid else q


def _goal_encoder(
    layout: ObsLayout,
    goal_dim: int,
    conv_layers: int,
    conv_features: int,
    conv_kernel: int,
    norm_input: bool,
    *,
    conv_norm: bool,
    norm_momentum: float = 0.999,
) -> Encoder:
    if goal_dim != layout.dim:
        raise ValueError(
            f"goal inputs ({goal_dim}) must be laid out as observations ({layout.dim})"
        )
    return Encoder(
        layout,
        copies=2,
        conv_layers=conv_layers,
        conv_features=conv_features,
        conv_kernel=conv_kernel,
        norm_input=norm_input,
        conv_norm=conv_norm,
        norm_momentum=norm_momentum,
    )


class ActorCritic(nn.Module):
    """Goal-conditioned PPO: ``(obs, goal) -> (logits (B, A), value (B,))`` (upstream
    ``ActorCriticConvSymbolicCraftaxGC``: no input norm, no LayerNorm)."""

    def __init__(
        self,
        layout: ObsLayout,
        goal_dim: int,
        num_actions: int,
        net: NetworkConfig,
        cfg: PPOConfig,
    ) -> None:
        super().__init__()
        self.encoder = _goal_encoder(layout, goal_dim, net.conv_layers, net.conv_features,
                                     net.conv_kernel, False, conv_norm=False)  # fmt: skip
        self.embed = _trunk(self.encoder.out_dim, net.width, cfg.embedding_layers, False)
        self.actor = _trunk(net.width, net.width, cfg.actor_layers, False)
        self.critic = _trunk(net.width, net.width, cfg.critic_layers, False)
        self.logits = nn.Linear(net.width, num_actions)
        _orthogonal(self.logits, 0.01)
        self.value = nn.Linear(net.width, 1)
        _orthogonal(self.value, 1.0)

    def forward(self, obs: Tensor, goal: Tensor) -> tuple[Tensor, Tensor]:
        z = self.embed(self.encoder(obs, goal))
        return self.logits(self.actor(z)), self.value(self.critic(z)).squeeze(-1)
