"""Networks: the solvers' actor-critic and Q-network, and the Bisimulator's observation map,
reward correction, reward model and metric network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from rl_nets import MLP
from torch import Tensor, nn

__all__ = ["DynamicsNet", "MetricNet", "ObservationMap", "RewardNet", "individual_input"]


def individual_input(feature: Tensor, group: Tensor, accepted: Tensor) -> Tensor:
    """``(B, D + 3)``: an applicant's feature ``(B, D)``, one-hot group and the decision."""
    return torch.cat(
        [feature, F.one_hot(group, 2).to(feature.dtype), accepted[:, None].to(feature.dtype)], -1
    )


class ObservationMap(nn.Module):
    """o_psi: a group-conditioned affine map of the applicant's feature, the identity at
    initialisation: ``o(x, g) = x W_g + b_g`` with ``W_g = I``, ``b_g = 0``.

    Lending: x is the one-hot credit cluster (D = 7), so row c of W_g is what the learner sees of
    a group-g applicant of cluster c. College: x is the test score (D = 1), W_g and b_g the
    per-group scale and shift of the score the jury thresholds.
    """

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(feature_dim).repeat(2, 1, 1))  # (2, D, D)
        self.bias = nn.Parameter(torch.zeros(2, feature_dim))  # (2, D)

    def forward(self, feature: Tensor, group: Tensor) -> Tensor:
        """``(B, D)`` features of ``(B,)`` groups -> ``(B, D)`` observed features."""
        w = self.weight[group]  # (B, D, D)
        return torch.einsum("bd,bde->be", feature, w) + self.bias[group]

    def deviation(self, feature: Tensor, group: Tensor) -> Tensor:
        """``(B,)`` squared distance of the observed feature from the true one."""
        return (self(feature, group) - feature).square().sum(-1)


class RewardNet(nn.Module):
    """A scalar function of (feature, group, decision): the reward correction delta_phi (last
    layer zero at initialisation, so r_phi = r exactly) or the expected-reward model R-hat."""

    def __init__(self, feature_dim: int, hidden: tuple[int, ...], *, zero_init: bool) -> None:
        super().__init__()
        self.net = MLP(feature_dim + 3, 1, hidden, activation="relu")
        if zero_init:
            last = [m for m in self.net.modules() if isinstance(m, nn.Linear)][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, feature: Tensor, group: Tensor, accepted: Tensor) -> Tensor:
        """``(B,)`` values."""
        return self.net(individual_input(feature, group, accepted)).squeeze(-1)


class MetricNet(nn.Module):
    """d_omega(u, v) >= 0, symmetric in its arguments: softplus of an MLP of ``|u - v|`` and
    ``u + v`` (observed features ``(B, D)`` each)."""

    def __init__(self, feature_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = MLP(2 * feature_dim, 1, hidden, activation="relu")

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        """``(B,)`` distances."""
        return F.softplus(self.net(torch.cat([(u - v).abs(), u + v], -1))).squeeze(-1)


class DynamicsNet(nn.Module):
    """The expected next feature of an applicant after a decision, ``E[x' | x, g, a]``, learned
    by regression on the observed (counterfactual) next features: for one-hot credit clusters it
    is the next-cluster distribution."""

    def __init__(self, feature_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = MLP(feature_dim + 3, feature_dim, hidden, activation="relu")

    def forward(self, feature: Tensor, group: Tensor, accepted: Tensor) -> Tensor:
        """``(B, D)`` expected next features."""
        return self.net(individual_input(feature, group, accepted))
