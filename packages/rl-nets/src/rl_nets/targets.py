"""Target networks: frozen copies, and soft (Polyak) or hard updates with strict matching."""

from __future__ import annotations

import copy
import math
from typing import Literal, TypeVar

import torch
from torch import Tensor, nn

__all__ = [
    "BufferUpdate",
    "TargetMismatchError",
    "check_target_matches",
    "frozen_copy",
    "hard_update",
    "soft_update",
]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

BufferUpdate = Literal["average", "copy", "ignore"]
"""What :func:`soft_update` does with buffers (e.g. BatchNorm running statistics).

* ``"average"``: floating-point buffers are averaged with ``tau`` like parameters; integer
  buffers (counters such as ``num_batches_tracked``) are copied.
* ``"copy"``: every buffer is copied from the source (Stable-Baselines3's choice for BatchNorm).
* ``"ignore"``: buffers are left alone (they must still match).
"""


class TargetMismatchError(ValueError):
    """A target network and its source do not have the same parameters or buffers."""


def _compare(
    kind: str, target: dict[str, Tensor], source: dict[str, Tensor]
) -> list[tuple[str, Tensor, Tensor]]:
    """Pair ``target`` and ``source`` tensors by name, raising on any difference."""
    missing = [name for name in source if name not in target]
    extra = [name for name in target if name not in source]
    if missing or extra:
        raise TargetMismatchError(
            f"target has {len(target)} {kind}s and source has {len(source)}; "
            f"in source only: {missing}; in target only: {extra}"
        )
    pairs: list[tuple[str, Tensor, Tensor]] = []
    for name, t in target.items():
        s = source[name]
        if t.shape != s.shape:
            raise TargetMismatchError(
                f"{kind} {name!r}: target shape {tuple(t.shape)} != source shape {tuple(s.shape)}"
            )
        if t.dtype != s.dtype:
            raise TargetMismatchError(
                f"{kind} {name!r}: target dtype {t.dtype} != source dtype {s.dtype}"
            )
        if t.device != s.device:
            raise TargetMismatchError(
                f"{kind} {name!r}: target device {t.device} != source device {s.device}"
            )
        pairs.append((name, t, s))
    return pairs


def check_target_matches(
    target: nn.Module, source: nn.Module
) -> tuple[list[tuple[str, Tensor, Tensor]], list[tuple[str, Tensor, Tensor]]]:
    """Check that ``target`` mirrors ``source`` and pair their tensors.

    Parameters and buffers must have the same names, shapes, dtypes and devices, and no target
    parameter may require grad (a target receives no gradient; this also catches swapped
    arguments).

    Args:
        target: The target network.
        source: The online network.

    Returns:
        ``(parameters, buffers)``: lists of ``(name, target_tensor, source_tensor)``.

    Raises:
        TargetMismatchError: Naming the first offending parameter or buffer.
    """
    if target is source:
        raise TargetMismatchError("target and source are the same module")
    params = _compare("parameter", dict(target.named_parameters()), dict(source.named_parameters()))
    for name, t, _ in params:
        if t.requires_grad:
            raise TargetMismatchError(
                f"target parameter {name!r} requires grad; make targets with frozen_copy() "
                "(or check that target and source are not swapped)"
            )
    buffers = _compare("buffer", dict(target.named_buffers()), dict(source.named_buffers()))
    return params, buffers


def _check_tau(tau: float) -> None:
    if not (math.isfinite(tau) and 0.0 <= tau <= 1.0):
        raise ValueError(f"tau must be in [0, 1], got {tau!r}")


@torch.no_grad()
def soft_update(
    target: nn.Module, source: nn.Module, tau: float, *, buffers: BufferUpdate = "average"
) -> None:
    """Polyak averaging in place: ``θ_target ← (1 − tau) · θ_target + tau · θ_source``.

    ``tau = 0`` leaves the target exactly unchanged (after checking it); ``tau = 1`` copies the
    source exactly.

    Args:
        target: Target network, updated in place; its parameters must not require grad.
        source: Online network (read only).
        tau: Step size in ``[0, 1]`` (e.g. 0.005 for TD3/SAC).
        buffers: What to do with buffers; see :data:`BufferUpdate`.

    Raises:
        TargetMismatchError: The networks' parameters or buffers differ (named in the message).
        ValueError: ``tau`` is outside ``[0, 1]`` or ``buffers`` is unknown.
    """
    _check_tau(tau)
    if buffers not in ("average", "copy", "ignore"):
        raise ValueError(f"buffers must be 'average', 'copy' or 'ignore', got {buffers!r}")
    params, bufs = check_target_matches(target, source)
    if tau == 0.0:
        return
    if tau == 1.0:
        # Exact copy: lerp with weight 1 can differ from the source by rounding.
        for _, t, s in params:
            t.copy_(s)
    else:
        for _, t, s in params:
            t.lerp_(s, tau)
    if buffers == "ignore":
        return
    for _, t, s in bufs:
        if buffers == "average" and t.dtype.is_floating_point and tau != 1.0:
            t.lerp_(s, tau)
        else:
            t.copy_(s)


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """Copy every parameter and buffer of ``source`` into ``target`` in place.

    Args:
        target: Target network; its parameters must not require grad.
        source: Online network (read only).

    Raises:
        TargetMismatchError: The networks' parameters or buffers differ (named in the message).
    """
    params, bufs = check_target_matches(target, source)
    for _, t, s in params + bufs:
        t.copy_(s)


def frozen_copy(module: ModuleT) -> ModuleT:
    """Deep copy of ``module`` whose parameters do not require grad: a fresh target network.

    The copy keeps the source's device, dtype and train/eval mode, and carries no ``.grad``.

    Args:
        module: The online network.

    Returns:
        An independent copy (no shared storage) with ``requires_grad=False`` everywhere.
    """
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.grad = None
        p.requires_grad_(False)
    return target
