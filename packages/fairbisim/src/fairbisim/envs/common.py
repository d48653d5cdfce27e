"""What both fairness environments report besides the observation: the individuals decided
on at a step, and the per-group counts of the episode so far."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["GroupCounts", "Individuals", "rates"]


class Individuals(NamedTuple):
    """The applicants of one vector step: N envs x I applicants each (lending I = 1,
    college I = num_applicants).

    Attributes:
        feature: ``(N, I, D)`` float32 the applicant's raw feature (lending: one-hot credit
            cluster, D = 7; college: the unmanipulated test score, D = 1).
        score: ``(N, I)`` float32 the scalar the quantile matching ranks (credit cluster index,
            test score).
        group: ``(N, I)`` int64 group id (0 advantaged, 1 disadvantaged).
        accepted: ``(N, I)`` bool the decision (loan granted, admitted).
        qualified: ``(N, I)`` bool the true label (would repay, is eligible).
        reward: ``(N, I)`` float32 the applicant's share of the step's true reward (before the
            env's reward scale).
        next_feature_accept: ``(N, I, D)`` float32 the applicant's feature after an accept
            (lending: one cluster up if they repay, down if they default; college: unchanged),
            whatever the decision was: the counterfactual the action-coupled metric needs.
        next_feature_reject: ``(N, I, D)`` float32 the feature after a reject (unchanged).
        individual_done: ``(N, I)`` bool the applicant leaves the process after this step (the
            metric's next-state term is 0 there).
    """

    feature: Tensor
    score: Tensor
    group: Tensor
    accepted: Tensor
    qualified: Tensor
    reward: Tensor
    next_feature_accept: Tensor
    next_feature_reject: Tensor
    individual_done: Tensor


class GroupCounts(NamedTuple):
    """Per-group counts, ``(..., 2)`` float64 each: applicants, accepted, qualified (true
    positives possible) and true positives (accepted and qualified)."""

    applicants: Tensor
    accepted: Tensor
    qualified: Tensor
    true_positives: Tensor

    @staticmethod
    def zeros(num_envs: int, device: torch.device) -> GroupCounts:
        z = torch.zeros(num_envs, 2, dtype=torch.float64, device=device)
        return GroupCounts(z, z.clone(), z.clone(), z.clone())

    @staticmethod
    def of(ind: Individuals) -> GroupCounts:
        """The counts of one step's individuals, ``(N, 2)``."""
        onehot = torch.nn.functional.one_hot(ind.group, 2).double()  # (N, I, 2)
        acc = ind.accepted.double()[..., None]
        qual = ind.qualified.double()[..., None]
        return GroupCounts(
            onehot.sum(1),
            (onehot * acc).sum(1),
            (onehot * qual).sum(1),
            (onehot * acc * qual).sum(1),
        )

    def __add__(self, other: GroupCounts) -> GroupCounts:  # type: ignore[override]
        return GroupCounts(*(a + b for a, b in zip(self, other, strict=True)))

    def masked_reset(self, mask: Tensor) -> GroupCounts:
        """Zero the counts of the envs in ``mask`` (``(N,)`` bool)."""
        m = mask[:, None]
        return GroupCounts(*(torch.where(m, torch.zeros_like(c), c) for c in self))


def rates(counts: GroupCounts) -> tuple[Tensor, Tensor]:
    """``(acceptance rate, true-positive rate)`` per group, ``(..., 2)`` each; 0 where a group has
    no applicant (no qualified applicant for the TPR)."""
    acc = counts.accepted / counts.applicants.clamp_min(1.0)
    tpr = counts.true_positives / counts.qualified.clamp_min(1.0)
    return acc, tpr
