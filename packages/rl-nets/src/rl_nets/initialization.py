"""Weight initialisation for a whole module tree (xavier-uniform or orthogonal, zero biases)."""

from __future__ import annotations

import math
from typing import Literal, TypeVar

import torch
from torch import Tensor, nn

from rl_nets.ensemble import EnsembleLinear

__all__ = ["RELU_GAIN", "InitScheme", "init_weights"]

InitScheme = Literal["xavier_uniform", "orthogonal"]
"""Weight initialisation schemes understood by :func:`init_weights`."""

RELU_GAIN: float = math.sqrt(2.0)
"""``nn.init.calculate_gain("relu")``: MR.Q's gain for every layer."""

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_LAYER_TYPES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def _init_tensor(
    weight: Tensor, scheme: InitScheme, gain: float, generator: torch.Generator | None
) -> None:
    if scheme == "xavier_uniform":
        nn.init.xavier_uniform_(weight, gain=gain, generator=generator)
    else:
        nn.init.orthogonal_(weight, gain=gain, generator=generator)


def init_weights(
    module: ModuleT,
    scheme: InitScheme = "xavier_uniform",
    *,
    gain: float = RELU_GAIN,
    generator: torch.Generator | None = None,
) -> ModuleT:
    """Re-initialise every linear and convolutional layer in ``module`` (itself included).

    Weights of ``nn.Linear``, ``nn.Conv{1,2,3}d`` and ``nn.ConvTranspose{1,2,3}d`` get ``scheme``
    with ``gain``; :class:`~rl_nets.EnsembleLinear` weights get it **per member** (each member's
    ``(out, in)`` matrix separately, with its own fan-in/fan-out and its own draw). Biases are set
    to zero. Other parameters (LayerNorm scale/shift, ...) are left alone. The defaults reproduce
    MR.Q's ``weight_init``: xavier-uniform, gain √2, zero bias.

    Layers are visited in ``module.modules()`` order; with the same ``generator`` state (or global
    seed) the result is reproducible.

    Args:
        module: Root of the tree; modified in place.
        scheme: ``"xavier_uniform"`` (bound ``gain·√(6 / (fan_in + fan_out))``) or
            ``"orthogonal"`` (rows/columns orthogonal, scaled by ``gain``).
        gain: Scale factor, > 0 (e.g. ``RELU_GAIN``, 1.0, or 0.01 for a policy's last layer).
        generator: Optional source of randomness; the global RNG otherwise.

    Returns:
        ``module``, for chaining.
    """
    if scheme not in ("xavier_uniform", "orthogonal"):
        raise ValueError(f"scheme must be 'xavier_uniform' or 'orthogonal', got {scheme!r}")
    if not (math.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be a finite float > 0, got {gain!r}")
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, EnsembleLinear):
                for n in range(layer.num_members):
                    _init_tensor(layer.weight[n], scheme, gain, generator)
                if layer.bias is not None:
                    layer.bias.zero_()
            elif isinstance(layer, _LAYER_TYPES):
                _init_tensor(layer.weight, scheme, gain, generator)
                if layer.bias is not None:
                    layer.bias.zero_()
    return module
