"""PettingZoo's simple_spread (``mpe2.simple_spread_v3``, continuous actions) and its offline
datasets.

``pettingzoo.mpe`` moved to the ``mpe2`` package; its parallel env gives every agent an
observation ``[vel (2), pos (2), landmark offsets (2 N), other agents' offsets (2 (N-1)),
communication (2 (N-1))]`` and a ``Box(0, 1, (5,))`` action ``[no-op, left, right, down, up]``
(the force is ``(right - left, up - down)``). Rewards: the global coverage reward (minus the sum
over landmarks of the nearest agent's distance) weighted ``1 - local_ratio``, plus each agent's
collision penalty weighted ``local_ratio``; episodes are truncated after ``max_cycles`` steps.

Behaviour policies: ``scripted`` sends agent i to landmark i with a damped proportional
controller; ``noisy`` adds Gaussian noise to it and plays a uniform random action with
probability ``random_prob``; ``random`` is uniform.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from rl_buffers.multiagent import stack_agents, unstack_agents
from rl_buffers.offline import Episode

from marl_lowrank.config import SpreadConfig

__all__ = [
    "ACTION_DIM",
    "collect_episodes",
    "evaluate_policy",
    "make_env",
    "obs_dim",
    "scripted_action",
]

ACTION_DIM = 5
"""Per-agent action size of continuous simple_spread."""

JointPolicy = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]
"""``(N, obs_dim)`` observations → ``(N, 5)`` actions in the env's ``[0, 1]`` box."""


def obs_dim(num_agents: int) -> int:
    """Per-agent observation size: ``4 + 2 N + 4 (N - 1)``."""
    return 4 + 2 * num_agents + 4 * (num_agents - 1)


def make_env(cfg: SpreadConfig) -> Any:
    """``mpe2.simple_spread_v3.parallel_env`` with continuous actions."""
    from mpe2 import simple_spread_v3

    return simple_spread_v3.parallel_env(
        N=cfg.num_agents,
        local_ratio=cfg.local_ratio,
        max_cycles=cfg.max_cycles,
        continuous_actions=True,
    )


def scripted_action(
    obs: npt.NDArray[np.float32], gain: float = 3.0, damping: float = 1.5
) -> npt.NDArray[np.float64]:
    """Agent i moves to landmark i: force ``gain * offset - damping * velocity``, split into the
    [0, 1] left/right/down/up components. ``(N, obs_dim)`` → ``(N, 5)``."""
    n = obs.shape[0]
    idx = np.arange(n)
    offset = obs[idx[:, None], 4 + 2 * idx[:, None] + np.arange(2)[None, :]]  # (N, 2)
    force = gain * offset - damping * obs[:, 0:2]
    action = np.zeros((n, ACTION_DIM))
    action[:, 1] = np.clip(-force[:, 0], 0.0, 1.0)  # left
    action[:, 2] = np.clip(force[:, 0], 0.0, 1.0)  # right
    action[:, 3] = np.clip(-force[:, 1], 0.0, 1.0)  # down
    action[:, 4] = np.clip(force[:, 1], 0.0, 1.0)  # up
    return action


def behaviour_policy(cfg: SpreadConfig, rng: np.random.Generator) -> JointPolicy:
    """The dataset's behaviour policy (module doc), drawing from ``rng``."""

    def policy(obs: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        n = obs.shape[0]
        random = rng.uniform(0.0, 1.0, (n, ACTION_DIM))
        if cfg.behaviour == "random":
            return random
        action = scripted_action(obs)
        if cfg.behaviour == "scripted":
            return action
        noisy = np.clip(action + cfg.noise_std * rng.standard_normal(action.shape), 0.0, 1.0)
        swap = rng.uniform(size=(n, 1)) < cfg.random_prob
        return np.where(swap, random, noisy)

    return policy


def _run_episode(env: Any, policy: JointPolicy, seed: int) -> Episode:
    agents = list(env.possible_agents)
    obs_dict, _ = env.reset(seed=seed)
    observations = [stack_agents(obs_dict, agents, field="obs").numpy()]
    actions: list[npt.NDArray[Any]] = []
    rewards: list[npt.NDArray[Any]] = []
    terms: list[bool] = []
    truncs: list[bool] = []
    while True:
        action = policy(observations[-1]).astype(np.float32)
        step = env.step({a: v.numpy() for a, v in unstack_agents(_tensor(action), agents).items()})
        obs_dict, reward, term, trunc, _ = step
        actions.append(action)
        rewards.append(stack_agents(reward, agents, field="reward").numpy().astype(np.float32))
        # The team ends together in simple_spread (every agent truncates at max_cycles).
        terms.append(bool(stack_agents(term, agents, field="terminations").any()))
        truncs.append(
            bool(stack_agents(trunc, agents, field="truncations").any()) and not terms[-1]
        )
        observations.append(stack_agents(obs_dict, agents, field="obs").numpy())
        if terms[-1] or truncs[-1]:
            break
    return Episode(
        observations=np.stack(observations).astype(np.float32),
        actions=np.stack(actions),
        rewards=np.stack(rewards),
        terminations=np.array(terms),
        truncations=np.array(truncs),
    )


def _tensor(x: npt.NDArray[Any]) -> Any:
    import torch

    return torch.as_tensor(x)


def collect_episodes(cfg: SpreadConfig, seed: int) -> list[Episode]:
    """``cfg.episodes`` episodes of ``cfg.behaviour``; episode k resets with seed ``seed + k``."""
    env = make_env(cfg)
    try:
        policy = behaviour_policy(cfg, np.random.default_rng(seed))
        return [_run_episode(env, policy, seed + k) for k in range(cfg.episodes)]
    finally:
        env.close()


def evaluate_policy(
    cfg: SpreadConfig, policy: JointPolicy, *, episodes: int, seed: int
) -> dict[str, float]:
    """Mean over ``episodes`` (reset seeds ``seed + k``) of the episode return, the sum over
    steps of the agents' mean reward; also its spread and the final mean distance of each
    landmark to its nearest agent."""
    env = make_env(cfg)
    returns: list[float] = []
    final: list[float] = []
    try:
        for k in range(episodes):
            ep = _run_episode(env, policy, seed + k)
            returns.append(float(ep.rewards.mean(axis=1).sum()))
            world = env.unwrapped.world
            dists = [
                min(float(np.linalg.norm(a.state.p_pos - lm.state.p_pos)) for a in world.agents)
                for lm in world.landmarks
            ]
            final.append(float(np.mean(dists)))
    finally:
        env.close()
    return {
        "return": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "landmark_distance": float(np.mean(final)),
    }
