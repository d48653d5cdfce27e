"""The delayed-impact lending environment, array-native (N envs as tensors).

Written from the specification of ml-fairness-gym's ``DelayedImpactEnv`` (Google,
Apache-2.0; after Liu et al. 2018, "Delayed Impact of Fair Machine Learning"), nothing copied:

* an applicant is drawn each step: group g with ``group_likelihoods``, credit cluster c from
  the group's current cluster distribution, repayment with ``success_probs[c]``;
* reject: nothing changes; accept: the bank loses ``loan_amount`` on a default, earns
  ``loan_amount * interest_rate`` on a repayment, and ``cluster_shift_increment`` of probability
  mass (at most what cluster c holds) moves from c to c + 1 (repaid) or c - 1 (defaulted) in
  group g's distribution, clipped at the ends: the population's credit evolves with the policy;
* the episode terminates when the bank holds less than ``loan_amount``; it is truncated after
  ``max_steps`` (POCAR / ELBERT's training episodes).

The RL formulation is POCAR's / ELBERT's: observation = one-hot cluster (7) + one-hot group (2)
(+ the two groups' running true-positive rates), action 0 reject / 1 accept, reward the change
in bank cash.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fairbisim.config import LendingConfig
from fairbisim.envs.common import GroupCounts, Individuals, rates
from fairbisim.envs.rng import StreamState, uniform

__all__ = ["LendingArrayEnv"]


class LendingArrayEnv:
    """N lending environments as one :class:`rl_runtime.vecenv.ArrayEnv`.

    After each :meth:`step`, :attr:`last_individuals` holds the applicants just decided on and
    :attr:`counts` the per-group counts of each env's episode so far.

    Args:
        cfg: Environment parameters.
        num_envs: N.
        device: Where the state lives.
    """

    individuals_per_step = 1
    reward_scale = 1.0

    def __init__(
        self, cfg: LendingConfig, num_envs: int, *, device: torch.device | str = "cpu"
    ) -> None:
        self.cfg = cfg
        self.num_envs = num_envs
        self.device = torch.device(device)
        k = cfg.num_clusters
        self.obs_dim = k + 2 + (2 if cfg.observe_tprs else 0)
        self.feature_dim = k
        self.single_observation_space: gym.Space[Any] = gym.spaces.Box(
            0.0, 1.0, (self.obs_dim,), np.float32
        )
        self.single_action_space: gym.Space[Any] = gym.spaces.Discrete(2)
        self._init_probs = torch.tensor(cfg.cluster_probs, dtype=torch.float64, device=self.device)
        self._success = torch.tensor(cfg.success_probs, dtype=torch.float64, device=self.device)
        n, dev = num_envs, self.device
        self.rng = StreamState(n, dev)
        self.probs = self._init_probs.expand(n, 2, k).clone()  # (N, 2, K) per-group cluster dist.
        self.cash = torch.full((n,), cfg.bank_starting_cash, dtype=torch.float64, device=dev)
        self.t = torch.zeros(n, dtype=torch.int64, device=dev)
        self.group = torch.zeros(n, dtype=torch.int64, device=dev)
        self.cluster = torch.zeros(n, dtype=torch.int64, device=dev)
        self.repay = torch.zeros(n, dtype=torch.bool, device=dev)
        self.counts = GroupCounts.zeros(n, dev)
        self.last_individuals: Individuals | None = None

    # -- the applicant -------------------------------------------------------------------------

    def _sample_applicants(self, mask: Tensor) -> None:
        """Draw a new applicant in the envs of ``mask`` (every env's stream advances by 3, so an
        env's numbers do not depend on which others are drawing)."""
        u = uniform(self.rng, 3)  # (N, 3)
        group = (u[:, 0] < self.cfg.group_likelihoods[1]).long()  # (N,)
        dist = self.probs.gather(1, group[:, None, None].expand(-1, 1, self.probs.shape[-1]))
        cdf = dist[:, 0].cumsum(-1)  # (N, K)
        # Inverse CDF: the first cluster whose cumulative mass exceeds u; clusters without mass
        # are never drawn (their cdf equals the previous one's).
        cluster = (cdf[:, :-1] <= u[:, 1:2]).sum(-1)  # (N,)
        repay = u[:, 2] < self._success[cluster]
        self.group = torch.where(mask, group, self.group)
        self.cluster = torch.where(mask, cluster, self.cluster)
        self.repay = torch.where(mask, repay, self.repay)

    def _obs(self) -> Tensor:
        k = self.cfg.num_clusters
        parts = [F.one_hot(self.cluster, k).float(), F.one_hot(self.group, 2).float()]
        if self.cfg.observe_tprs:
            parts.append(rates(self.counts)[1].float())
        return torch.cat(parts, -1)  # (N, obs_dim)

    # -- ArrayEnv -------------------------------------------------------------------------------

    def reset(self, seeds: Tensor, mask: Tensor) -> Tensor:
        """Reset the envs of ``mask`` from ``seeds``; returns all N observations."""
        mask = mask.to(self.device)
        self.rng.reseed(seeds, mask)
        self.probs = torch.where(mask[:, None, None], self._init_probs, self.probs)
        self.cash = torch.where(mask, self.cfg.bank_starting_cash, self.cash)
        self.t = torch.where(mask, 0, self.t)
        self.counts = self.counts.masked_reset(mask)
        self._sample_applicants(mask)
        return self._obs()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Decide on each env's applicant (``actions`` ``(N,)``: 1 accept, 0 reject)."""
        cfg = self.cfg
        a = actions.to(self.device).reshape(self.num_envs).long()
        if bool(((a < 0) | (a > 1)).any()):
            raise ValueError(f"lending actions must be 0 (reject) or 1 (accept), got {a.tolist()}")
        accept = a == 1
        gain = torch.where(self.repay, cfg.loan_amount * cfg.interest_rate, -cfg.loan_amount)
        reward = torch.where(accept, gain, torch.zeros_like(gain))  # (N,) change in bank cash
        self.cash = self.cash + reward

        # Credit shift of the accepted applicant's group: move mass from c to c +/- 1.
        k = cfg.num_clusters
        moved = (self.cluster + torch.where(self.repay, 1, -1)).clamp(0, k - 1)
        new_cluster = torch.where(accept, moved, self.cluster)
        flat = self.probs.reshape(self.num_envs, 2 * k)
        src = self.group * k + self.cluster  # (N,)
        dst = self.group * k + new_cluster
        mass = flat.gather(1, src[:, None])[:, 0].clamp_max(cfg.cluster_shift_increment)
        mass = torch.where(accept & (src != dst), mass, torch.zeros_like(mass))
        flat = flat.scatter_add(1, src[:, None], -mass[:, None])
        flat = flat.scatter_add(1, dst[:, None], mass[:, None])
        self.probs = flat.reshape(self.num_envs, 2, k)

        feature = F.one_hot(self.cluster, k).float()[:, None]  # (N, 1, K)
        ind = Individuals(
            feature=feature,
            score=self.cluster.float()[:, None],
            group=self.group[:, None],
            accepted=accept[:, None],
            qualified=self.repay[:, None],
            reward=reward.float()[:, None],
            next_feature_accept=F.one_hot(moved, k).float()[:, None],
            next_feature_reject=feature,
            individual_done=torch.zeros(self.num_envs, 1, dtype=torch.bool, device=self.device),
        )
        self.last_individuals = ind
        self.counts = self.counts + GroupCounts.of(ind)
        self.t = self.t + 1
        terminated = self.cash < cfg.loan_amount
        truncated = (self.t >= cfg.max_steps) & ~terminated
        self._sample_applicants(torch.ones_like(accept))
        return self._obs(), reward.float(), terminated, truncated

    def state(self) -> dict[str, Any]:
        return {
            "key": self.rng.key,
            "counter": self.rng.counter,
            "probs": self.probs,
            "cash": self.cash,
            "t": self.t,
            "group": self.group,
            "cluster": self.cluster,
            "repay": self.repay,
            "counts": list(self.counts),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.key = state["key"].to(self.device).clone()
        self.rng.counter = state["counter"].to(self.device).clone()
        for name in ("probs", "cash", "t", "group", "cluster", "repay"):
            setattr(self, name, state[name].to(self.device).clone())
        self.counts = GroupCounts(*(c.to(self.device).clone() for c in state["counts"]))

    # -- reporting -------------------------------------------------------------------------------

    def credit_distribution(self) -> Tensor:
        """``(N, 2, K)`` each group's current credit-cluster distribution."""
        return self.probs

    def utility(self) -> Tensor:
        """``(N,)`` bank cash."""
        return self.cash
