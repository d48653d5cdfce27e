"""Small typed helpers shared by the modules of this package."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt
import torch
from torch import Tensor

__all__ = ["from_numpy", "is_int"]


def from_numpy(arr: npt.NDArray[Any]) -> Tensor:
    """``torch.from_numpy`` (shares memory) with a precise type for pyright."""
    return torch.from_numpy(arr)  # pyright: ignore[reportUnknownMemberType]


def is_int(x: object) -> bool:
    """Whether ``x`` is an int and not a bool (``True`` is an ``int`` in Python)."""
    return isinstance(x, int) and not isinstance(x, bool)
