"""Optimiser and compilation helpers every method shares: fused Adam(W) and the compile switch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import torch
from torch import Tensor

__all__ = ["fused_adam", "maybe_compile"]

F = TypeVar("F", bound=Callable[..., Any])

_FUSED_DEVICE_TYPES = ("cpu", "cuda")
"""Device types with a fused Adam(W) kernel (one pass over all parameters)."""


def fused_adam(
    params: Iterable[Tensor],
    lr: float,
    *,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    device: torch.device | str,
) -> torch.optim.Optimizer:
    """Adam, or AdamW with ``decoupled=True``, using the fused kernel where ``device`` has one.

    The fused kernel (CPU and CUDA) gives the same update as the for-each one up to float
    rounding, in one pass over all parameters; other devices get the default implementation.

    Args:
        params: The parameters to optimise (all on ``device``).
        lr: Learning rate.
        weight_decay: L2 penalty added to the gradient (Adam) or, with ``decoupled``, the
            decoupled decay ``p <- p * (1 - lr * weight_decay)`` (AdamW). 0 disables either.
        decoupled: AdamW (Loshchilov and Hutter) instead of Adam.
        device: Where the parameters live (the caller chooses it; nothing is probed here).

    Returns:
        ``torch.optim.AdamW`` if ``decoupled``, else ``torch.optim.Adam``.
    """
    fused = torch.device(device).type in _FUSED_DEVICE_TYPES
    if decoupled:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def maybe_compile(fn: F, enabled: bool) -> F:
    """``torch.compile(fn)`` when ``enabled``, else ``fn`` itself.

    For an agent's pure loss computation: its randomness is drawn before the call and its
    metrics are detached tensors, so the compiled and the eager function compute the same thing.
    """
    return cast(F, torch.compile(fn)) if enabled else fn
