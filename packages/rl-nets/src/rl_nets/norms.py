"""Feature normalisations without parameters: AvgL1Norm (TD7) and SimNorm (simplicial embeddings)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from rl_nets._checks import check_floating, check_positive_int

__all__ = ["AvgL1Norm", "SimNorm", "avg_l1_norm", "simnorm"]


def _check_eps(eps: float) -> None:
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite float > 0, got {eps!r}")


def avg_l1_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Divide each feature vector by its mean absolute value (TD7's AvgL1Norm).

    ``y = x / max(mean(|x|, -1), eps)``, so every row of the result has mean absolute value 1
    (unless it was all below ``eps``). Positive scaling of a row leaves the result unchanged.

    Args:
        x: ``(..., d)`` float tensor, ``d >= 1``.
        eps: Lower bound of the divisor; a zero row maps to zeros instead of NaN.

    Returns:
        ``(..., d)`` tensor.
    """
    check_floating("x", x)
    _check_eps(eps)
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have shape (..., d) with d >= 1, got {tuple(x.shape)}")
    return x / x.abs().mean(dim=-1, keepdim=True).clamp_min(eps)


class AvgL1Norm(nn.Module):
    """Module form of :func:`avg_l1_norm`.

    Args:
        eps: Lower bound of the divisor.

    Shapes:
        ``forward``: ``(..., d)`` → ``(..., d)``.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        _check_eps(eps)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalise the last dimension; see :func:`avg_l1_norm`."""
        return avg_l1_norm(x, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def _check_temperature(temperature: float) -> None:
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite float > 0, got {temperature!r}")


def simnorm(x: Tensor, group_size: int = 8, temperature: float = 1.0) -> Tensor:
    """Simplicial normalisation: softmax within consecutive groups of the last dimension.

    The last dimension ``d`` is split into ``d // group_size`` groups of ``group_size`` features;
    each group becomes ``softmax(group / temperature)``, a point on a simplex (TD-MPC2's SimNorm,
    the "simplicial embedding" of MRS.Q).

    Args:
        x: ``(..., d)`` float tensor with ``d`` a multiple of ``group_size``.
        group_size: Features per group (V).
        temperature: Softmax temperature; lower is sharper.

    Returns:
        ``(..., d)`` tensor; every group is non-negative and sums to 1.

    Raises:
        ValueError: ``d`` is not a multiple of ``group_size``, or a setting is out of range.
    """
    check_floating("x", x)
    check_positive_int("group_size", group_size)
    _check_temperature(temperature)
    if x.dim() == 0 or x.shape[-1] == 0 or x.shape[-1] % group_size != 0:
        raise ValueError(
            f"x must have shape (..., d) with d a positive multiple of group_size={group_size}, "
            f"got {tuple(x.shape)}"
        )
    # (..., d) -> (..., d // V, V): softmax over each group of V, then back.
    groups = x.reshape(*x.shape[:-1], x.shape[-1] // group_size, group_size)
    return (groups / temperature).softmax(dim=-1).reshape(x.shape)


class SimNorm(nn.Module):
    """Module form of :func:`simnorm`.

    Args:
        group_size: Features per group (V).
        temperature: Softmax temperature.

    Shapes:
        ``forward``: ``(..., d)`` → ``(..., d)``, ``d % group_size == 0``.
    """

    def __init__(self, group_size: int = 8, temperature: float = 1.0) -> None:
        super().__init__()
        check_positive_int("group_size", group_size)
        _check_temperature(temperature)
        self.group_size = group_size
        self.temperature = temperature

    def forward(self, x: Tensor) -> Tensor:
        """Softmax within each group of the last dimension; see :func:`simnorm`."""
        return simnorm(x, self.group_size, self.temperature)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, temperature={self.temperature}"
