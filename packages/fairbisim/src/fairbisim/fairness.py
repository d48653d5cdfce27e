"""Quantile matching across groups and the fairness measures (demographic parity, equal
opportunity) of a set of decisions."""

from __future__ import annotations

import torch
from torch import Tensor

from fairbisim.envs.common import GroupCounts, rates

__all__ = ["fairness_metrics", "quantile_pairs"]


def quantile_pairs(
    score0: Tensor, score1: Tensor, num_quantiles: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Pair group 0's and group 1's samples at the same quantiles of their own distributions.

    Quantile ``q_k = (k + 0.5) / K`` of a group with ``n`` samples is its sample of rank
    ``floor(q_k n)`` in ascending score order. Ties (discrete credit clusters) are broken at
    random with ``generator``, so equal scores share the matches; with ``generator=None`` ties
    keep their input order.

    Args:
        score0: ``(n0,)`` scores of group 0's samples (n0 >= 1).
        score1: ``(n1,)`` scores of group 1's samples (n1 >= 1).
        num_quantiles: K.
        generator: Random tie-breaking.

    Returns:
        ``(idx0, idx1)``, ``(K,)`` int64 indices into ``score0`` and ``score1``.
    """
    if score0.ndim != 1 or score1.ndim != 1 or len(score0) == 0 or len(score1) == 0:
        raise ValueError(
            "quantile_pairs needs non-empty (n,) scores for both groups, got "
            f"{tuple(score0.shape)} and {tuple(score1.shape)}"
        )
    if num_quantiles < 1:
        raise ValueError(f"num_quantiles must be >= 1, got {num_quantiles}")
    q = (torch.arange(num_quantiles, dtype=torch.float64, device=score0.device) + 0.5) / (
        num_quantiles
    )

    def ranked(score: Tensor) -> Tensor:
        n = len(score)
        if generator is None:
            perm = torch.arange(n, device=score.device)
        else:
            perm = torch.randperm(n, generator=generator, device="cpu").to(score.device)
        order = perm[torch.sort(score[perm], stable=True).indices]  # ascending, ties shuffled
        rank = (q * n).floor().long().clamp_max(n - 1)
        return order[rank]

    return ranked(score0), ranked(score1)


def fairness_metrics(counts: GroupCounts) -> dict[str, Tensor]:
    """Acceptance rates and TPRs per group and their absolute gaps, from summed counts
    (``(2,)`` each). Keys: ``acceptance_rate_g0/g1``, ``acceptance_gap`` (demographic parity),
    ``tpr_g0/g1``, ``tpr_gap`` (equal opportunity)."""
    acc, tpr = rates(counts)
    return {
        "acceptance_rate_g0": acc[0],
        "acceptance_rate_g1": acc[1],
        "acceptance_gap": (acc[0] - acc[1]).abs(),
        "tpr_g0": tpr[0],
        "tpr_g1": tpr[1],
        "tpr_gap": (tpr[0] - tpr[1]).abs(),
    }
