"""The paper's measurements as pure functions (tensors or numbers in, numbers out).

* The squared norm of a task's policy gradient, ``||grad J_t||^2``, by the unbiased
  cross-product estimator over m independent micro-batch gradients ``g_1..g_m`` (each an
  unbiased estimate of ``grad J_t``)::

      est = 1/(m(m-1)) sum_{i != j} <g_i, g_j> = (||sum_i g_i||^2 - sum_i ||g_i||^2) / (m(m-1))

  Its expectation is ``||grad J_t||^2`` exactly, since ``E<g_i, g_j> = <E g_i, E g_j>`` for
  independent ``i != j``; the plain ``||mean_i g_i||^2`` overshoots by ``trace(Cov g) / m``. The
  estimate can be negative when the noise dominates. :class:`CrossProductAccumulator` keeps
  only the running sum and the sum of squared norms (two gradient-sized buffers, whatever m).
* The learning gain (the paper's definition): with training reward ``R_k`` at step k and
  window s, ``Gain(t) = mean(R_{t+1..t+s}) - mean(R_{t-s..t-1})``.
* GRPO's group-normalised advantages as TRL computes them, ``(r - mean_G) / (std_G + 1e-4)``
  with the unbiased std: a group whose rewards are all equal gets advantages of exactly 0.
* Gradient-proportional task probabilities with a floor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

import torch

__all__ = [
    "CrossProductAccumulator",
    "cross_product_sq_norm",
    "gradient_proportional_probs",
    "group_advantages",
    "learning_gain",
    "plain_sq_norm",
]


def cross_product_sq_norm(grads: torch.Tensor) -> torch.Tensor:
    """Unbiased estimate of ``||E g||^2`` from m independent draws.

    Args:
        grads: ``(m, d)`` float, row i the i-th independent gradient estimate; m >= 2.

    Returns:
        0-dim: ``(||sum_i g_i||^2 - sum_i ||g_i||^2) / (m (m - 1))`` (may be negative).
    """
    if grads.dim() != 2 or grads.shape[0] < 2:
        raise ValueError(f"grads must be (m, d) with m >= 2, got shape {tuple(grads.shape)}")
    m = grads.shape[0]
    total = grads.sum(0)
    return (total.square().sum() - grads.square().sum()) / (m * (m - 1))


def plain_sq_norm(grads: torch.Tensor) -> torch.Tensor:
    """``||mean_i g_i||^2`` of ``grads`` ``(m, d)``: biased up by ``trace(Cov g) / m``."""
    if grads.dim() != 2 or grads.shape[0] < 1:
        raise ValueError(f"grads must be (m, d) with m >= 1, got shape {tuple(grads.shape)}")
    return grads.mean(0).square().sum()


class CrossProductAccumulator:
    """The cross-product estimator over gradients given one at a time, as lists of tensors
    (one per parameter), in float64: memory of one gradient for the running sum, whatever m.
    """

    def __init__(self) -> None:
        self._sum: list[torch.Tensor] | None = None
        self._sum_sq = 0.0
        self.count = 0

    def add(self, grads: Sequence[torch.Tensor | None]) -> None:
        """Add one gradient estimate (``None`` entries: parameters it does not reach, zero)."""
        sq = 0.0
        parts: list[torch.Tensor] = []
        for g in grads:
            part = torch.zeros(()) if g is None else g.detach().to(torch.float64)
            sq += float(part.square().sum())
            parts.append(part)
        if self._sum is None:
            self._sum = [p.clone() for p in parts]
        else:
            self._sum = [s + p for s, p in zip(self._sum, parts, strict=True)]
        self._sum_sq += sq
        self.count += 1

    def _total_sq(self) -> float:
        assert self._sum is not None
        return sum(float(s.square().sum()) for s in self._sum)

    def estimate(self) -> float:
        """The unbiased estimate of the squared norm of the mean gradient (needs >= 2 adds)."""
        if self.count < 2:
            raise ValueError(f"the cross-product estimator needs >= 2 gradients, got {self.count}")
        m = self.count
        return (self._total_sq() - self._sum_sq) / (m * (m - 1))

    def plain(self) -> float:
        """``||mean g||^2``, the biased estimate (for comparison)."""
        if self.count < 1:
            raise ValueError("no gradient added")
        return self._total_sq() / self.count**2

    def mean_sq(self) -> float:
        """``mean_i ||g_i||^2`` (its excess over the estimate is the noise, ``trace(Cov)``)."""
        if self.count < 1:
            raise ValueError("no gradient added")
        return self._sum_sq / self.count


def _nanmean(values: Iterable[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def learning_gain(rewards: Sequence[float], t: int, window: int) -> float:
    """The paper's learning gain at step ``t``:
    ``mean(R[t+1..t+window]) - mean(R[t-window..t-1])``.

    Steps where the task was not trained on (NaN rewards, possible when tasks are sampled) are
    left out of their window's mean; a window outside ``rewards`` or without any value gives
    NaN.

    Args:
        rewards: ``R_0, R_1, ...``, the task's mean training reward at each step.
        t: The step the gain is centred on.
        window: s >= 1.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if t - window < 0 or t + window >= len(rewards):
        return math.nan
    after = _nanmean(rewards[t + 1 : t + window + 1])
    before = _nanmean(rewards[t - window : t])
    return after - before


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    scale: Literal["group", "batch", "none"] = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """GRPO's advantages as TRL computes them.

    Args:
        rewards: ``(N,)`` float, consecutive runs of ``group_size`` completions of one prompt.
        group_size: G >= 2.
        scale: ``group``: divide by the group's unbiased std + eps (GRPO); ``batch``: by the
            batch's; ``none``: centre only.
        eps: Added to the std (TRL: 1e-4).

    Returns:
        ``(N,)`` float: ``(r - mean_G) / (std + eps)``; exactly 0 where a group's rewards are
        all equal.
    """
    if rewards.dim() != 1 or rewards.numel() % group_size != 0 or group_size < 2:
        raise ValueError(
            f"rewards must be (N,) with N a multiple of group_size >= 2, got shape "
            f"{tuple(rewards.shape)} and group_size {group_size}"
        )
    grouped = rewards.view(-1, group_size)
    centred = (grouped - grouped.mean(1, keepdim=True)).reshape(-1)  # (N,)
    if scale == "none":
        return centred
    if scale == "group":
        std = grouped.std(1, unbiased=True).repeat_interleave(group_size)  # (N,)
    else:
        std = rewards.std(unbiased=True).expand_as(rewards)
    return centred / (std + eps)


def gradient_proportional_probs(estimates: Sequence[float], floor: float) -> list[float]:
    """Task probabilities proportional to the squared-gradient estimates, with a floor:
    ``p_t = floor + (1 - T floor) max(g_t, 0) / sum_u max(g_u, 0)``; uniform when no estimate
    is positive (or any is NaN).

    Raises:
        ValueError: ``T * floor > 1`` or no task.
    """
    n = len(estimates)
    if n == 0:
        raise ValueError("no task")
    if n * floor > 1.0 + 1e-12:
        raise ValueError(f"floor {floor} is impossible for {n} tasks (need T * floor <= 1)")
    if any(math.isnan(g) for g in estimates):
        return [1.0 / n] * n
    positive = [max(g, 0.0) for g in estimates]
    total = sum(positive)
    if total <= 0.0:
        return [1.0 / n] * n
    return [floor + (1.0 - n * floor) * g / total for g in positive]
