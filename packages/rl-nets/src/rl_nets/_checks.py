"""Input validation shared by the blocks: every error names the argument and what was expected."""

from __future__ import annotations

import torch
from torch import Tensor


def check_tensor(name: str, x: object) -> Tensor:
    """Return ``x`` if it is a tensor, else raise a TypeError naming ``name``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_floating(name: str, x: Tensor) -> None:
    """Raise a TypeError unless ``x`` has a floating-point dtype."""
    check_tensor(name, x)
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}")


def check_last_dim(name: str, x: Tensor, expected: int) -> None:
    """Raise a ValueError unless ``x`` has at least one dimension and its last one is ``expected``."""
    if x.dim() == 0 or x.shape[-1] != expected:
        raise ValueError(f"{name} must have shape (..., {expected}), got {tuple(x.shape)}")


def check_positive_int(name: str, value: int) -> None:
    """Raise a ValueError unless ``value`` is an int (not a bool) greater than zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_finite_values(name: str, x: Tensor) -> None:
    """Raise a ValueError if ``x`` holds NaN (checked eagerly; skipped while torch.compile traces).

    This reads the tensor's values, so on an accelerator it synchronises with the device.
    """
    if torch.compiler.is_compiling():
        return
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN")
