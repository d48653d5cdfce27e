"""Held-out fairness evaluation: E episodes side by side with the greedy policy on the original
MDP (true rewards; the Bisimulator's learner still sees through o_psi, which is part of it)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from fairbisim.agent import FairLearner, FairVecEnv, make_array_env
from fairbisim.config import FairBisimConfig
from fairbisim.envs import GroupCounts, LendingArrayEnv
from fairbisim.fairness import fairness_metrics

__all__ = ["evaluate_fairness"]


def evaluate_fairness(
    learner: FairLearner,
    cfg: FairBisimConfig,
    *,
    episodes: int,
    max_steps: int,
    seeds: list[int],
    device: torch.device,
    policy: str = "sample",
) -> dict[str, Any]:
    """Run ``episodes`` episodes of at most ``max_steps`` steps (one env each, reset from
    ``seeds``) and summarise the decisions. ``policy="sample"``: PPO's actions are sampled from
    its policy (a stochastic policy is what PPO learns; its argmax collapses to a threshold on
    the credit cluster), from a generator seeded by ``seeds[0]`` (the learner's own is left as
    it was); DQN acts greedily either way. ``"greedy"``: every learner's argmax.

    Returns:
        ``acceptance_rate_g0/g1``, ``acceptance_gap``, ``tpr_g0/g1``, ``tpr_gap`` (over every
        decision of every episode), ``utility`` (mean final bank cash / admission accuracy),
        ``return`` (mean true return), ``episode_length`` and, for lending,
        ``credit_distribution`` (the mean final per-group cluster distribution, 2 x 7) and
        ``credit_mean_g0/g1``.
    """
    if len(seeds) != episodes:
        raise ValueError(f"need one seed per episode, got {len(seeds)} for {episodes}")
    sub = dataclasses.replace(getattr(cfg, cfg.env_name), max_steps=max_steps)
    env = make_array_env(dataclasses.replace(cfg, **{cfg.env_name: sub}), episodes, device)
    fair_env = FairVecEnv(env, learner, reward="true")
    obs = fair_env.reset(seeds)
    explore = policy == "sample" and cfg.solver == "ppo"
    generator = learner.solver.generator
    saved = generator.get_state()
    generator.manual_seed(seeds[0])
    try:
        return _run(learner, env, fair_env, obs, explore, max_steps, episodes)
    finally:
        generator.set_state(saved)


def _run(
    learner: FairLearner,
    env: Any,
    fair_env: FairVecEnv,
    obs: torch.Tensor,
    explore: bool,
    max_steps: int,
    episodes: int,
) -> dict[str, Any]:
    alive = torch.ones(episodes, dtype=torch.bool, device=env.device)
    total = GroupCounts(*(torch.zeros(2, dtype=torch.float64) for _ in range(4)))
    returns = torch.zeros(episodes, dtype=torch.float64)
    lengths = torch.zeros(episodes, dtype=torch.int64)
    final_utility = torch.zeros(episodes, dtype=torch.float64)
    final_credit = None
    if isinstance(env, LendingArrayEnv):
        final_credit = torch.zeros(episodes, 2, env.cfg.num_clusters, dtype=torch.float64)
    for _ in range(max_steps):
        actions = learner.act(obs, explore=explore)
        fair_env._sync_map()
        raw_obs, reward, terminated, truncated = env.step(actions)
        ind = env.last_individuals
        assert ind is not None
        live = alive.cpu()
        step = GroupCounts.of(ind)
        total = total + GroupCounts(*(c.cpu()[live].sum(0) for c in step))
        returns += torch.where(live, reward.double().cpu(), 0.0)
        lengths += live.long()
        ended = (terminated | truncated).cpu() & live
        if bool(ended.any()):
            final_utility[ended] = env.utility().cpu()[ended]
            if final_credit is not None and isinstance(env, LendingArrayEnv):
                final_credit[ended] = env.probs.cpu()[ended]
        alive = alive & ~(terminated | truncated)
        obs = raw_obs
        if not bool(alive.any()):
            break
    live = alive.cpu()
    final_utility[live] = env.utility().cpu()[live]
    out: dict[str, Any] = {k: float(v) for k, v in fairness_metrics(total).items()}
    out["utility"] = float(final_utility.mean())
    out["return"] = float(returns.mean())
    out["episode_length"] = float(lengths.double().mean())
    if final_credit is not None:
        assert isinstance(env, LendingArrayEnv)
        final_credit[live] = env.probs.cpu()[live]
        dist = final_credit.mean(0)
        out["credit_distribution"] = dist.tolist()
        clusters = torch.arange(dist.shape[-1], dtype=torch.float64)
        for g in range(2):
            out[f"credit_mean_g{g}"] = float((dist[g] * clusters).sum())
    return out
