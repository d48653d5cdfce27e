"""Learning: MRS.Q beats a random policy clearly on a small task (slow).

The task is a point mass on a line (``x' = clip(x + 0.25 a, -2, 2)``, reward ``-|x|``, 30-step
episodes from ``x ~ U(-1.5, 1.5)``): small enough for a CPU test, and one where the planner's
model, critics and MPPI all have to work for the return to come near the optimum (about -1.1).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from mbsearch.agent import MRSQAgent
from mbsearch.config import Arm, arm, small_mrq
from mbsearch_testkit import SMALL_PLANNER
from mrq_drq import check_spaces, make_buffer
from mrq_drq.schedule import training_step
from rl_runtime.evaluation import agent_policy, evaluate, to_env_action


class PointMass(gym.Env[np.ndarray, np.ndarray]):
    observation_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1.5, 1.5)), 0
        return np.array([self.x], np.float32), {}

    def step(self, action: np.ndarray):
        self.x = float(np.clip(self.x + 0.25 * float(np.asarray(action).reshape(-1)[0]), -2, 2))
        self.t += 1
        return np.array([self.x], np.float32), -abs(self.x), False, self.t >= 30, {}


def _train(name: Arm, steps: int) -> tuple[float, float]:
    cfg = arm(name, small_mrq())
    cfg = dataclasses.replace(
        cfg,
        mrq=dataclasses.replace(
            cfg.mrq, schedule=dataclasses.replace(cfg.mrq.schedule, random_steps=150)
        ),
        planner=dataclasses.replace(
            SMALL_PLANNER,
            enabled=cfg.planner.enabled,
            value_reduction=cfg.planner.value_reduction,
        ),
    )
    env, eval_env = PointMass(), PointMass()
    env.action_space.seed(0)
    spec = check_spaces(env.observation_space, env.action_space)
    agent = MRSQAgent(cfg, spec, seed=0)
    buffer = make_buffer(cfg.mrq, spec)
    gen = torch.Generator().manual_seed(0)
    obs, _ = env.reset(seed=0)
    for t in range(steps):
        if t < cfg.mrq.schedule.random_steps:
            action = env.action_space.sample()
        else:
            action = to_env_action(agent.act(obs, explore=True), env.action_space)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, float(reward), next_obs, terminated, truncated)
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
        if t >= cfg.mrq.schedule.random_steps:
            training_step(agent.mrq, buffer, gen)
    policy = agent_policy(agent, eval_env.action_space, agent.device)
    trained = evaluate(policy, eval_env, episodes=10, seed=100).mean_return
    eval_env.action_space.seed(1)
    random = evaluate(lambda o: eval_env.action_space.sample(), eval_env, episodes=10, seed=100)
    return trained, random.mean_return


@pytest.mark.slow
def test_mrsq_learns_a_point_mass() -> None:
    torch.set_num_threads(1)
    # (MR.Q+MPC, the same run with --arm mpc, scored -37.4 here against -25.1 for random
    # actions: the paper's "search hurts MR.Q"; see the README.)
    trained, random = _train("mrsq", steps=600)
    print(f"mrsq: trained {trained:.1f}, random {random:.1f}")
    # Random actions wander (about -25 to -35); going straight to 0 and staying scores about -1.1.
    assert random < -18.0
    assert trained > -12.0, (trained, random)
