"""The college-admission Stackelberg game, array-native (N envs as tensors).

Written from the specification of ml-fairness-gym's ``CollegeAdmissionsEnv`` (Google,
Apache-2.0), nothing copied. Each round (step):

1. ``num_applicants`` applicants wait, drawn at the previous step: group g with ``mix_weight``,
   test score x ~ N(mu_g, sigma_g) clipped to [0, 1], eligible when x >= mu_g (1 + 0.1);
2. the jury publishes a group-agnostic threshold theta and a random-accept probability eps;
3. gaming: an applicant below theta moves their score up to theta when that flips the outcome
   and pays, i.e. when ``0 <= 1 - cost - eps <= 1`` with ``cost = c_g (theta - x)`` (times
   ``subsidy_beta`` for a subsidised group 1), within ``gaming_control`` points; the cost is the
   applicant's individual burden whether they game or not;
4. an applicant is admitted with probability eps, else when the (manipulated) score is >= theta;
5. fresh applicants are drawn for the next round.

RL formulation (this package's; the paper does not give one): the action is an index into the
grid ``linspace(0, 1, num_thresholds) x epsilons``; the reward is the admission utility, +1 per
admitted eligible applicant and ``-false_positive_cost`` per admitted ineligible one, divided by
``num_applicants``; the observation is the last (threshold, eps), the running per-group
acceptance rates and the running per-group true-positive rates. The continuous ``(theta, eps)``
action of the specification is accepted too (``(N, 2)`` float actions).

Observation map. The jury may see a group-conditioned affine map of the score,
``o(x, g) = scale_g x + shift_g`` (identity by default; the Bisimulator's o_psi sets it), and
admits when ``o(x~, g) >= theta``; applicants best-respond to that rule, i.e. game up to the
true score x* with o(x*, g) = theta.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from fairbisim.config import CollegeConfig
from fairbisim.envs.common import GroupCounts, Individuals, rates
from fairbisim.envs.rng import StreamState, normal, uniform

__all__ = ["CollegeArrayEnv", "admit_probability", "gaming_cost_per_point"]

_MAX_CHANGE_COST = 100.0  # ml-fairness-gym's cap when gaming_control is inf
_TOLERANCE = 1e-6


def gaming_cost_per_point(cfg: CollegeConfig, group: Tensor) -> Tensor:
    """The cost of one score point for applicants of ``group`` (subsidy applied)."""
    cost = torch.tensor(cfg.group_cost, dtype=torch.float64, device=group.device)[group]
    if cfg.subsidize:
        cost = torch.where(group == 1, cost * cfg.subsidy_beta, cost)
    return cost


def admit_probability(
    cfg: CollegeConfig,
    score: Tensor,
    group: Tensor,
    threshold: Tensor,
    epsilon: Tensor,
    scale: Tensor,
    shift: Tensor,
    *,
    temperature: float,
) -> Tensor:
    """A smooth admission probability of applicants under published rules, for gradients.

    ``score`` ``(B,)`` (unmanipulated), ``group`` ``(B,)``, ``threshold`` and ``epsilon``
    ``(B, K)`` (K candidate rules), ``scale``/``shift`` ``(2,)`` the observation map. The hard
    rule (the env's) admits when the applicant's true score reaches ``x* - slack``, where
    ``x* = (theta - shift_g) / scale_g`` and ``slack = (1 - eps) / c_g`` (how far gaming carries
    them, capped by ``gaming_control``); here the step is a sigmoid of width ``temperature``.
    Returns ``(B, K)`` probabilities.
    """
    s = scale[group][:, None]
    b = shift[group][:, None]
    x_star = (threshold - b) / s  # (B, K) the true score the rule asks for
    x = score[:, None].to(x_star.dtype)
    if cfg.gaming:
        slack = (1.0 - epsilon) / gaming_cost_per_point(cfg, group)[:, None].to(x.dtype)
        if cfg.gaming_control != float("inf"):
            slack = slack.clamp_max(cfg.gaming_control)
        # Gaming cannot push a score past 1: beyond that no applicant reaches the rule.
        reachable = torch.sigmoid((1.0 - x_star) / temperature)
    else:
        slack = torch.zeros_like(x_star)
        reachable = torch.ones_like(x_star)
    by_rule = torch.sigmoid((x - x_star + slack) / temperature)
    by_rule = torch.maximum(by_rule * reachable, torch.sigmoid((x - x_star) / temperature))
    return epsilon + (1.0 - epsilon) * by_rule


class CollegeArrayEnv:
    """N college-admission environments as one :class:`rl_runtime.vecenv.ArrayEnv`.

    After each :meth:`step`, :attr:`last_individuals` holds the round's applicants,
    :attr:`counts` the per-group counts of each env's episode, :attr:`correct` and
    :attr:`decisions` the accuracy counts, :attr:`burden` the summed burden of eligible
    applicants per group (ml-fairness-gym's social burden).

    Args:
        cfg: Environment parameters.
        num_envs: N.
        device: Where the state lives.
    """

    reward_scale_per_applicant = True

    def __init__(
        self, cfg: CollegeConfig, num_envs: int, *, device: torch.device | str = "cpu"
    ) -> None:
        self.cfg = cfg
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.individuals_per_step = cfg.num_applicants
        self.reward_scale = 1.0 / cfg.num_applicants
        self.feature_dim = 1
        self.obs_dim = 6
        self.single_observation_space: gym.Space[Any] = gym.spaces.Box(
            0.0, 1.0, (self.obs_dim,), np.float32
        )
        self.single_action_space: gym.Space[Any] = gym.spaces.Discrete(cfg.num_actions)
        dev = self.device
        self.thresholds = torch.linspace(0.0, 1.0, cfg.num_thresholds, dtype=torch.float64).to(dev)
        self.epsilons = torch.tensor(cfg.epsilons, dtype=torch.float64, device=dev)
        mu = torch.tensor(cfg.mu, dtype=torch.float64, device=dev)
        self.true_thresholds = mu * (1.0 + cfg.true_threshold_factor)  # (2,)
        self.score_scale = torch.ones(2, dtype=torch.float64, device=dev)
        self.score_shift = torch.zeros(2, dtype=torch.float64, device=dev)
        n, i = num_envs, cfg.num_applicants
        self.rng = StreamState(n, dev)
        self.t = torch.zeros(n, dtype=torch.int64, device=dev)
        self.scores = torch.zeros(n, i, dtype=torch.float64, device=dev)
        self.groups = torch.zeros(n, i, dtype=torch.int64, device=dev)
        self.last_rule = torch.zeros(n, 2, dtype=torch.float64, device=dev)
        self.counts = GroupCounts.zeros(n, dev)
        self.correct = torch.zeros(n, dtype=torch.float64, device=dev)
        self.decisions = torch.zeros(n, dtype=torch.float64, device=dev)
        self.burden = torch.zeros(n, 2, dtype=torch.float64, device=dev)
        self.last_individuals: Individuals | None = None
        self.manipulated = torch.zeros(n, i, dtype=torch.bool, device=dev)
        """``(N, I)`` which applicants gamed at the last step."""

    def set_score_map(self, scale: Tensor, shift: Tensor) -> None:
        """The jury's observation map ``o(x, g) = scale[g] x + shift[g]`` (``(2,)`` each)."""
        scale = scale.detach().to(self.device, torch.float64).reshape(2)
        if bool((scale <= 0).any()):
            raise ValueError(f"the score map's scales must be > 0, got {scale.tolist()}")
        self.score_scale = scale
        self.score_shift = shift.detach().to(self.device, torch.float64).reshape(2)

    @property
    def eligible(self) -> Tensor:
        """``(N, I)`` bool ground truth of the waiting applicants."""
        return self.scores >= self.true_thresholds[self.groups]

    def _sample_applicants(self, mask: Tensor) -> None:
        cfg = self.cfg
        i = cfg.num_applicants
        u = uniform(self.rng, i)  # (N, I)
        groups = (u < cfg.mix_weight[1]).long()
        z = normal(self.rng, i)
        mu = torch.tensor(cfg.mu, dtype=torch.float64, device=self.device)[groups]
        sigma = torch.tensor(cfg.sigma, dtype=torch.float64, device=self.device)[groups]
        scores = (mu + sigma * z).clamp(0.0, 1.0)
        self.groups = torch.where(mask[:, None], groups, self.groups)
        self.scores = torch.where(mask[:, None], scores, self.scores)

    def _obs(self) -> Tensor:
        acc, tpr = rates(self.counts)
        return torch.cat([self.last_rule, acc, tpr], -1).float()  # (N, 6)

    def decode(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """``(threshold, epsilon)`` ``(N,)`` float64 from discrete ``(N,)`` indices or continuous
        ``(N, 2)`` actions."""
        if actions.dtype.is_floating_point:
            a = actions.to(self.device, torch.float64).reshape(self.num_envs, 2)
            if bool(((a < 0) | (a > 1)).any()):
                raise ValueError("college actions (threshold, epsilon_prob) must lie in [0, 1]")
            return a[:, 0], a[:, 1]
        idx = actions.to(self.device).reshape(self.num_envs).long()
        if bool(((idx < 0) | (idx >= self.cfg.num_actions)).any()):
            raise ValueError(
                f"college actions must be in [0, {self.cfg.num_actions}), got {idx.tolist()}"
            )
        k = self.cfg.num_thresholds
        return self.thresholds[idx % k], self.epsilons[idx // k]

    def reset(self, seeds: Tensor, mask: Tensor) -> Tensor:
        """Reset the envs of ``mask`` from ``seeds``; returns all N observations."""
        mask = mask.to(self.device)
        self.rng.reseed(seeds, mask)
        self.t = torch.where(mask, 0, self.t)
        self.last_rule = torch.where(mask[:, None], 0.0, self.last_rule)
        self.counts = self.counts.masked_reset(mask)
        for name in ("correct", "decisions"):
            setattr(self, name, torch.where(mask, 0.0, getattr(self, name)))
        self.burden = torch.where(mask[:, None], 0.0, self.burden)
        self._sample_applicants(mask)
        return self._obs()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One admission round with each env's published rule."""
        cfg = self.cfg
        theta, eps = self.decode(actions)  # (N,) each
        x, g = self.scores, self.groups  # (N, I)
        eligible = self.eligible
        scale, shift = self.score_scale[g], self.score_shift[g]
        th = theta[:, None]
        below = scale * x + shift < th
        if cfg.gaming:
            per_point = gaming_cost_per_point(cfg, g)
            changed = ((th - shift) / scale).clamp(0.0, 1.0)  # the true score the rule asks for
            cost = per_point * (changed - x)
            outcome = (scale * changed + shift >= th - 1e-12).double()
            gain = outcome - cost - eps[:, None]
            if cfg.gaming_control == float("inf"):
                max_cost = torch.full_like(cost, _MAX_CHANGE_COST)
            else:
                max_cost = per_point * cfg.gaming_control
            manipulate = below & (gain >= 0) & (gain <= 1) & (cost < max_cost + _TOLERANCE)
            observed = torch.where(manipulate, changed, x)
            burden = torch.where(below, cost, torch.zeros_like(cost))
        else:
            manipulate = torch.zeros_like(below)
            observed = x
            burden = torch.zeros_like(x)
        self.manipulated = manipulate
        u = uniform(self.rng, cfg.num_applicants)  # (N, I)
        admitted = (u < eps[:, None]) | (scale * observed + shift >= th - 1e-12)
        ind_reward = torch.where(
            admitted,
            torch.where(eligible, 1.0, -cfg.false_positive_cost),
            torch.zeros_like(x),
        ).float()
        reward = ind_reward.sum(1) * self.reward_scale  # (N,)
        feature = x.float()[..., None]  # (N, I, 1)
        ind = Individuals(
            feature=feature,
            score=x.float(),
            group=g,
            accepted=admitted,
            qualified=eligible,
            reward=ind_reward,
            next_feature_accept=feature,
            next_feature_reject=feature,
            individual_done=torch.ones_like(admitted),
        )
        self.last_individuals = ind
        self.counts = self.counts + GroupCounts.of(ind)
        self.correct = self.correct + (admitted == eligible).double().sum(1)
        self.decisions = self.decisions + cfg.num_applicants
        onehot = torch.nn.functional.one_hot(g, 2).double()
        self.burden = self.burden + (onehot * (burden * eligible.double())[..., None]).sum(1)
        self.last_rule = torch.stack([theta, eps], -1)
        self.t = self.t + 1
        truncated = self.t >= cfg.max_steps
        terminated = torch.zeros_like(truncated)
        self._sample_applicants(torch.ones_like(truncated))
        return self._obs(), reward.float(), terminated, truncated

    def state(self) -> dict[str, Any]:
        return {
            "key": self.rng.key,
            "counter": self.rng.counter,
            "t": self.t,
            "scores": self.scores,
            "groups": self.groups,
            "last_rule": self.last_rule,
            "counts": list(self.counts),
            "correct": self.correct,
            "decisions": self.decisions,
            "burden": self.burden,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.key = state["key"].to(self.device).clone()
        self.rng.counter = state["counter"].to(self.device).clone()
        for name in ("t", "scores", "groups", "last_rule", "correct", "decisions", "burden"):
            setattr(self, name, state[name].to(self.device).clone())
        self.counts = GroupCounts(*(c.to(self.device).clone() for c in state["counts"]))

    def utility(self) -> Tensor:
        """``(N,)`` admission accuracy of the episode so far."""
        return self.correct / self.decisions.clamp_min(1.0)
