"""Symlog/symexp and two-hot encoding of scalars over bins spaced evenly in symlog space."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from rl_nets._checks import check_finite_values, check_floating, check_last_dim

__all__ = ["TwoHot", "TwoHotInterpolation", "symexp", "symlog"]

TwoHotInterpolation = Literal["raw", "symlog"]
"""Where a value is placed between its two neighbouring bins.

* ``"raw"`` (MR.Q): linearly in the value's own units between ``symexp(b_i)`` and ``symexp(b_{i+1})``;
  decoding is ``Σ p_i · symexp(b_i)``.
* ``"symlog"`` (DreamerV3): linearly in symlog units between ``b_i`` and ``b_{i+1}``; decoding is
  ``symexp(Σ p_i · b_i)``.
"""


def symlog(x: Tensor) -> Tensor:
    """``sign(x) · log(1 + |x|)``, elementwise; the inverse of :func:`symexp`.

    Args:
        x: Float tensor of any shape.

    Returns:
        Tensor of the same shape.
    """
    check_floating("x", x)
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """``sign(x) · (exp(|x|) − 1)``, elementwise; the inverse of :func:`symlog`.

    Args:
        x: Float tensor of any shape.

    Returns:
        Tensor of the same shape.
    """
    check_floating("x", x)
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot(nn.Module):
    """Two-hot encoding of scalars over ``num_bins`` bins spaced evenly in symlog space.

    The bin centres are ``b = linspace(low, high, num_bins)`` in symlog units, i.e.
    ``symexp(b)`` in the value's units (MR.Q: 65 bins on [−10, 10], about ±22,025). A value
    becomes a distribution with its mass on the two bins around it, placed so that decoding the
    distribution returns the value. Values outside ``[symexp(low), symexp(high)]`` are clamped to
    the edge bins: all their mass goes to the first or last bin.

    The bins are non-persistent buffers: they follow ``.to(device)`` and are not saved in a
    ``state_dict`` (they are derived from the constructor arguments).

    Args:
        num_bins: Number of bins, at least 2.
        low: Lowest bin centre, in symlog units.
        high: Highest bin centre, in symlog units (> ``low``).
        interpolation: See :data:`TwoHotInterpolation`; ``"raw"`` matches MR.Q.
    """

    bins: Tensor
    symlog_bins: Tensor

    def __init__(
        self,
        num_bins: int = 65,
        low: float = -10.0,
        high: float = 10.0,
        *,
        interpolation: TwoHotInterpolation = "raw",
    ) -> None:
        super().__init__()
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"need finite low < high, got low={low!r}, high={high!r}")
        if interpolation not in ("raw", "symlog"):
            raise ValueError(f"interpolation must be 'raw' or 'symlog', got {interpolation!r}")
        self.num_bins = num_bins
        self.low = float(low)
        self.high = float(high)
        self.interpolation: TwoHotInterpolation = interpolation
        # Computed in float64 so that the float32 bins are correctly rounded.
        grid = torch.linspace(low, high, num_bins, dtype=torch.float64)
        self.register_buffer("symlog_bins", grid.float(), persistent=False)
        self.register_buffer("bins", symexp(grid).float(), persistent=False)

    def extra_repr(self) -> str:
        return (
            f"num_bins={self.num_bins}, low={self.low}, high={self.high}, "
            f"interpolation={self.interpolation!r}"
        )

    def _grid(self, dtype: torch.dtype) -> Tensor:
        """The bin centres in the interpolation space, ``(num_bins,)``."""
        grid = self.bins if self.interpolation == "raw" else self.symlog_bins
        return grid.to(dtype)

    def encode(self, x: Tensor) -> Tensor:
        """Two-hot distribution of each value.

        Args:
            x: ``(...)`` float tensor of values, in the value's own units (not symlog). NaN is
                rejected (a check that reads the values: one device sync per call in eager
                mode, skipped under ``torch.compile``); ±inf and other out-of-range values go
                to the edge bins.

        Returns:
            ``(..., num_bins)`` tensor of ``x``'s dtype: at most two adjacent non-zero entries
            per value, non-negative, summing to 1.
        """
        check_floating("x", x)
        check_finite_values("x", x)
        grid = self._grid(x.dtype)
        v = x if self.interpolation == "raw" else symlog(x)
        v = v.clamp(grid[0], grid[-1])
        # Index of the last bin <= v, kept in [0, num_bins - 2] so that idx + 1 is a bin; at the
        # top edge v == grid[-1] this gives weight 1 on the last bin.
        idx = torch.searchsorted(grid, v.detach().contiguous(), right=True) - 1
        idx = idx.clamp(0, self.num_bins - 2)
        lower, upper = grid[idx], grid[idx + 1]
        weight = ((v - lower) / (upper - lower)).clamp(0.0, 1.0)
        # (...) -> (..., 1) for scatter along the bin dimension.
        idx, weight = idx.unsqueeze(-1), weight.unsqueeze(-1)
        probs = torch.zeros(*x.shape, self.num_bins, dtype=x.dtype, device=x.device)
        probs = probs.scatter(-1, idx, 1.0 - weight)
        return probs.scatter_add(-1, idx + 1, weight)

    def decode_probs(self, probs: Tensor) -> Tensor:
        """Value represented by a distribution over the bins.

        Args:
            probs: ``(..., num_bins)`` float tensor of probabilities (each row summing to 1).

        Returns:
            ``(...)`` tensor of values in the value's own units.
        """
        check_floating("probs", probs)
        check_last_dim("probs", probs, self.num_bins)
        expected = (probs * self._grid(probs.dtype)).sum(dim=-1)
        return expected if self.interpolation == "raw" else symexp(expected)

    def decode(self, logits: Tensor) -> Tensor:
        """Value represented by unnormalised logits over the bins (softmax, then decode).

        Args:
            logits: ``(..., num_bins)`` float tensor.

        Returns:
            ``(...)`` tensor of values in the value's own units.
        """
        check_floating("logits", logits)
        check_last_dim("logits", logits, self.num_bins)
        return self.decode_probs(logits.softmax(dim=-1))

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy between ``softmax(logits)`` and the two-hot encoding of ``target``.

        Unreduced, so the caller can mask and average. ``target`` is treated as a label: no
        gradient flows into it.

        Args:
            logits: ``(..., num_bins)`` float tensor of predicted logits.
            target: ``(...)`` float tensor of target values (the batch shape of ``logits``).

        Returns:
            ``(...)`` tensor of per-element losses, ``-Σ_k twohot(target)_k · log_softmax(logits)_k``.
        """
        check_floating("logits", logits)
        check_last_dim("logits", logits, self.num_bins)
        check_floating("target", target)
        if target.shape != logits.shape[:-1]:
            raise ValueError(
                f"target must have the batch shape of logits {tuple(logits.shape[:-1])}, "
                f"got {tuple(target.shape)}"
            )
        labels = self.encode(target.detach().to(logits.dtype))
        return -(labels * logits.log_softmax(dim=-1)).sum(dim=-1)
