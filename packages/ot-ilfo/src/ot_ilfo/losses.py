"""TD3's losses as pure functions: tensors in, ``(loss, metrics)`` out."""

from __future__ import annotations

import torch
from torch import Tensor

from ot_ilfo.config import CriticLoss

__all__ = ["actor_loss", "critic_loss", "pal", "td_target"]


def pal(td: Tensor, *, alpha: float, min_priority: float) -> Tensor:
    """PAL's per-sample loss (Fujimoto, Meger, Precup 2020), averaged.

    ``min_priority^alpha * td^2 / 2`` where ``|td| < min_priority``, else
    ``min_priority * |td|^(1 + alpha) / (1 + alpha)``: the loss whose uniform-sampling gradient
    equals LAP's prioritised one.

    Args:
        td: ``(B,)`` TD errors.
        alpha: Priority exponent.
        min_priority: Switch point between the quadratic and the power branch.

    Returns:
        ``()`` mean loss.
    """
    a = td.abs()
    quadratic = (min_priority**alpha) * 0.5 * td.pow(2)
    power = min_priority * a.pow(1.0 + alpha) / (1.0 + alpha)
    return torch.where(a < min_priority, quadratic, power).mean()


def td_target(reward: Tensor, not_done: Tensor, next_q: Tensor, discount: float) -> Tensor:
    """``r + discount * not_done * min_i Q'_i(s', a')``.

    Args:
        reward: ``(B,)``.
        not_done: ``(B,)`` 0 where bootstrapping stops, else 1.
        next_q: ``(2, B)`` target critics at the smoothed target action.
        discount: gamma.

    Returns:
        ``(B,)`` targets (no gradient is taken through them by the caller).
    """
    return reward + discount * not_done * next_q.min(dim=0).values


def critic_loss(
    q: Tensor, target: Tensor, *, kind: CriticLoss, alpha: float, min_priority: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Twin-critic loss against a shared target.

    ``mse``: ``sum_i mean (Q_i - y)^2`` (TD3). ``pal``: ``sum_i PAL(Q_i - y)`` divided by the
    batch's mean priority ``mean(max(max_i |Q_i - y|, min_priority)^alpha)`` (detached), as the
    LAP/PAL code does.

    Args:
        q: ``(2, B)`` online critics at the batch's actions.
        target: ``(B,)`` TD targets (detached).
        kind: ``"pal"`` or ``"mse"``.
        alpha: PAL exponent.
        min_priority: PAL minimum priority.

    Returns:
        ``(loss, metrics)``: ``q_mean``, ``td_abs_mean`` (detached 0-dim).
    """
    td = q - target.unsqueeze(0)  # (2, B)
    if kind == "mse":
        loss = td.pow(2).mean(dim=1).sum()
    else:
        loss = sum(
            (pal(td[i], alpha=alpha, min_priority=min_priority) for i in range(td.shape[0])),
            start=torch.zeros((), device=q.device),
        )
        priority = td.abs().max(dim=0).values.clamp(min=min_priority).pow(alpha)  # (B,)
        loss = loss / priority.mean().detach()
    metrics = {"q_mean": q.detach().mean(), "td_abs_mean": td.detach().abs().mean()}
    return loss, metrics


def actor_loss(q1: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Deterministic policy gradient through the first critic: ``-mean Q_1(s, pi(s))``.

    Args:
        q1: ``(B,)``.

    Returns:
        ``(loss, {})``.
    """
    return -q1.mean(), {}
