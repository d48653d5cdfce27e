"""The one network of the controller and the worker (SOL's design: a single network with a
conditioning input says which policy it is).

Inputs: the packed observation (:class:`hbs.envs.ObsLayout`) and a conditioning vector
``c = [w_1..w_K, is_controller]``: the worker gets its option's weights (HBS: the controller's
weight vector; options: a one-hot; flat: the one-hot of the task reward) and 0, the controller
gets zeros and 1. Encoders, all cheap enough for a CPU:

* glyphs: an egocentric ``crop x crop`` window around the agent (blstats X, Y), embedded, then
  two 3x3 convolutions, or flattened straight into the torso with ``conv_channels=0`` (the CPU
  presets: the convolutions cost more than NetHack's step); SOL's glyph net crops 12 around the
  agent and also reads the whole map;
* blstats: ``sign(x) log(1 + |x|)`` then a linear layer (scale-free: score and turn counts
  reach the thousands);
* message: a bag of hashed byte bigrams (mean of their embeddings);
* the conditioning vector, as it is (the torso's first layer is its encoder).

Their concatenation goes through an MLP torso (``rl_nets.MLP``) to four heads: worker action
logits, one value ``V(s, c)`` (the controller's value when ``c`` is the controller's), the
controller's weight head (grid: K x levels logits; dirichlet: K concentrations; options: K
logits) and its option-length logits.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from rl_nets import MLP
from torch import Tensor, nn

from hbs.config import HBSConfig
from hbs.envs import BL_X, BL_Y, GLYPH_SHAPE, ObsLayout

__all__ = ["HBSNetwork", "Heads"]

_NUM_GLYPHS = 5976  # nle.nethack.MAX_GLYPH; index 5976 (NO_GLYPH) pads the crop


class Heads(NamedTuple):
    """Network outputs for a batch of B (observation, condition) pairs.

    Attributes:
        action_logits: ``(B, A)`` worker action logits.
        value: ``(B,)`` ``V(s, c)``.
        weight_params: ``(B, K, levels)`` grid logits, ``(B, K)`` Dirichlet pre-activations or
            option logits.
        length_logits: ``(B, L)`` option-length logits.
    """

    action_logits: Tensor
    value: Tensor
    weight_params: Tensor
    length_logits: Tensor


class HBSNetwork(nn.Module):
    """See the module doc.

    Args:
        cfg: The whole config (network widths, K, the weight distribution, lengths).
        layout: The packed observation's layout.
        num_actions: A.
    """

    def __init__(self, cfg: HBSConfig, layout: ObsLayout, num_actions: int) -> None:
        super().__init__()
        n, o = cfg.network, cfg.options
        self.layout = layout
        self.crop = n.crop
        self.buckets = n.message_buckets
        k = o.num_rewards
        self.num_rewards = k
        self.weight_shape = (
            (k, o.weight_levels) if cfg.algo == "hbs" and (o.weights_dist == "grid") else (k,)
        )
        self.glyph_embed = nn.Embedding(_NUM_GLYPHS + 1, n.glyph_embed)
        self.conv: nn.Sequential | None = None
        width = n.glyph_embed * n.crop * n.crop
        if n.conv_channels:
            self.conv = nn.Sequential(
                nn.Conv2d(n.glyph_embed, n.conv_channels, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(n.conv_channels, n.conv_channels, 3, padding=1),
                nn.ReLU(),
            )
            width = n.conv_channels * n.crop * n.crop
        self.blstats = nn.Sequential(nn.Linear(27, n.blstats_hidden), nn.ReLU())
        width += n.blstats_hidden
        self.message: nn.EmbeddingBag | None = None
        if "message" in layout.keys:
            self.message = nn.EmbeddingBag(
                n.message_buckets + 1, n.message_embed, mode="mean", padding_idx=n.message_buckets
            )
            width += n.message_embed
        width += k + 1  # the condition enters the torso as it is
        self.torso = MLP(width, n.hidden[-1], n.hidden[:-1], activation="relu")
        h = n.hidden[-1]
        self.actor = nn.Linear(h, num_actions)
        self.critic = nn.Linear(h, 1)
        self.weights_head = nn.Linear(h, int(torch.Size(self.weight_shape).numel()))
        self.length_head = nn.Linear(h, o.num_lengths)
        # Small initial policy logits (near-uniform first policies), as CleanRL's PPO heads.
        for head in (self.actor, self.weights_head, self.length_head):
            nn.init.orthogonal_(head.weight, 0.01)
            nn.init.zeros_(head.bias)

    def _crop(self, glyphs: Tensor, blstats: Tensor) -> Tensor:
        """``(B, crop * crop)`` int64 glyph window centred on the agent, padded with NO_GLYPH."""
        r = self.crop // 2
        padded = F.pad(glyphs, (r, r, r, r), value=_NUM_GLYPHS)  # (B, 21+2r, 79+2r)
        width = padded.shape[2]
        y = blstats[:, BL_Y].clamp(0, GLYPH_SHAPE[0] - 1)
        x = blstats[:, BL_X].clamp(0, GLYPH_SHAPE[1] - 1)
        offsets = torch.arange(self.crop, device=glyphs.device, dtype=y.dtype)
        # Flat index of padded[y + i, x + j] (the agent's square is padded[y + r, x + r]).
        flat = (y[:, None, None] + offsets[:, None]) * width + x[:, None, None] + offsets
        return padded.flatten(1).gather(1, flat.flatten(1).long()).long()

    def _message_bag(self, message: Tensor) -> Tensor:
        m = message  # (B, 256) int32 bytes
        bigram = (m[:, :-1] * 257 + m[:, 1:]) % self.buckets  # (B, 255) hashed byte pairs
        # Bigrams past the message's end (a 0 byte first) are padding, left out of the mean.
        bigram = torch.where(m[:, :-1] == 0, self.buckets, bigram)
        assert self.message is not None
        return self.message(bigram.long())

    def forward(self, obs: Tensor, cond: Tensor) -> Heads:
        """Heads for ``(B, D)`` packed observations and ``(B, K + 1)`` conditions."""
        v = self.layout.split(obs)
        crop = self.glyph_embed(self._crop(v.glyphs, v.blstats))  # (B, crop * crop, E)
        if self.conv is None:
            parts = [crop.flatten(1)]  # (B, crop * crop * E)
        else:
            image = crop.reshape(-1, self.crop, self.crop, crop.shape[-1]).permute(0, 3, 1, 2)
            parts = [self.conv(image).flatten(1)]  # (B, C * crop * crop)
        bl = v.blstats.float()
        parts.append(self.blstats(bl.sign() * bl.abs().log1p()))
        if self.message is not None:
            assert v.message is not None
            parts.append(self._message_bag(v.message))
        parts.append(cond.float())
        h = torch.relu(self.torso(torch.cat(parts, dim=1)))
        return Heads(
            action_logits=self.actor(h),
            value=self.critic(h).squeeze(-1),
            weight_params=self.weights_head(h).reshape(-1, *self.weight_shape),
            length_logits=self.length_head(h),
        )
