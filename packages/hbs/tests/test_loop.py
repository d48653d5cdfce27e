"""The hierarchical loop: options end at their length or with the episode, decisions happen only
at option boundaries, the controller's chain targets, and a short run writes what it should."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hbs.agent import Decision, HBSAgent
from hbs.config import HBSConfig, smoke
from hbs.envs import BL_GOLD, BL_SCORE, BL_TIME
from hbs.loop import _Decisions, train_hbs
from hbs_testkit import LAYOUT, make_obs
from rl_runtime.config import RunConfig
from rl_runtime.run import open_run
from rl_runtime.vecenv import ResetSeed, StepResult
from torch import Tensor

EPISODE = (7, 11, 30)  # env i's episodes last EPISODE[i] steps, then terminate


class CountingEnv:
    """A BatchedEnv whose observation says which env, which episode and which step it is
    (blstats GOLD, SCORE, TIME); env i's episodes terminate after EPISODE[i] steps."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.t = [0] * n
        self.episode = [0] * n

    num_envs = property(lambda self: self.n)
    single_observation_space = gym.spaces.Box(-(2**31), 2**31 - 1, (LAYOUT.size,), np.int32)
    single_action_space = gym.spaces.Discrete(23)
    device = torch.device("cpu")

    def _obs(self, i: int) -> Tensor:
        return make_obs(blstats={BL_GOLD: i, BL_SCORE: self.episode[i], BL_TIME: self.t[i]}, seen=3)

    def reset(self, seeds: Sequence[int]) -> Tensor:
        self.t = [0] * self.n
        return torch.stack([self._obs(i) for i in range(self.n)])

    def step(self, actions: Tensor, reset_seed: ResetSeed) -> StepResult:
        final, obs, term = [], [], []
        for i in range(self.n):
            self.t[i] += 1
            final.append(self._obs(i))
            done = self.t[i] == EPISODE[i]
            if done:
                reset_seed(i)
                self.t[i], self.episode[i] = 0, self.episode[i] + 1
            term.append(done)
            obs.append(self._obs(i))
        terminated = torch.tensor(term)
        return StepResult(torch.stack(obs), torch.ones(self.n), terminated,
                          torch.zeros_like(terminated), torch.stack(final))  # fmt: skip

    def env_state(self) -> None:
        return None

    def load_env_state(self, state: Any) -> Tensor:
        raise NotImplementedError

    def replay(self, seeds: Sequence[int], actions: Sequence[Sequence[Any]]) -> Tensor:
        self.t = [len(a) for a in actions]
        return torch.stack([self._obs(i) for i in range(self.n)])

    def close(self) -> None:
        return None


class RecordingAgent(HBSAgent):
    """Records (env, episode, step in episode, chosen length) of every decision."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[tuple[int, int, int, int]] = []

    def decide_and_value(
        self,
        obs: Tensor,
        value_obs: Tensor | None = None,
        value_cond: Tensor | None = None,
        *,
        explore: bool = True,
    ) -> tuple[Decision, Tensor | None]:
        d, extra = super().decide_and_value(obs, value_obs, value_cond, explore=explore)
        bl = LAYOUT.split(obs).blstats
        for row, j in enumerate(d.length_index.tolist()):
            self.log.append((int(bl[row, BL_GOLD]), int(bl[row, BL_SCORE]),
                             int(bl[row, BL_TIME]), 2**j))  # fmt: skip
        return d, extra


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    env: str = "counting"
    agent: HBSConfig = dataclasses.field(default_factory=smoke)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)


def _train(tmp_path: Path, algo: str, steps: int = 3 * 16 * 6) -> tuple[RecordingAgent, Path]:
    base = smoke()
    agent_cfg = dataclasses.replace(
        base, algo=algo, ppo=dataclasses.replace(base.ppo, num_envs=3, num_steps=16)
    )
    run_cfg = RunConfig(total_steps=steps, eval_episodes=0, log_every=48, checkpoint_every=10_000,
                        root=tmp_path, name=algo, quiet=True, tensorboard=False)  # fmt: skip
    cfg = LoopConfig(agent=agent_cfg, run=run_cfg)
    with open_run("hbs-test", cfg) as run:
        agent = RecordingAgent(agent_cfg, LAYOUT, 23, seed=1)
        env = CountingEnv(3)
        train_hbs(run, envs=env, agent=agent, cfg=agent_cfg, layout=LAYOUT)  # type: ignore[arg-type]
        return agent, run.dir


@pytest.mark.parametrize("algo", ["hbs", "options"])
def test_decisions_only_at_option_boundaries(tmp_path: Path, algo: str) -> None:
    agent, _ = _train(tmp_path, algo)
    assert agent.log
    for env in range(3):
        mine = [(ep, t, length) for e, ep, t, length in agent.log if e == env]
        episodes = sorted({ep for ep, _, _ in mine})
        for ep in episodes:
            times = [(t, length) for e2, t, length in mine if e2 == ep]
            # every episode starts with a decision: an ended episode ends its option
            assert times[0][0] == 0, (env, ep, times)
            for (t0, length), (t1, _) in itertools.pairwise(times):
                # the next decision comes exactly when the option's length runs out
                assert t1 == t0 + length, (env, ep, times)
            # and none is missing before the episode's end
            last_t, last_len = times[-1]
            complete = ep < max(episodes)
            if complete:
                assert last_t + last_len >= EPISODE[env], (env, ep, times)


def test_flat_never_decides(tmp_path: Path) -> None:
    agent, run = _train(tmp_path, "flat")
    assert agent.log == []
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["train/decisions"] == 0
    assert "train/episode_return" in lines[-1]


def test_run_logs_exploration_and_option_metrics(tmp_path: Path) -> None:
    _, run = _train(tmp_path, "hbs")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*lines)
    for key in ("train/depth", "train/levels", "train/branches", "train/glyphs", "train/turns",
                "train/score", "train/option_length", "train/weight_scout",
                "train/reward_scout", "train/controller_actor_loss", "train/actor_loss"):  # fmt: skip
        assert key in keys, key
    assert lines[-1]["train/decisions"] > 0


def test_controller_chain_targets_by_hand() -> None:
    d = _Decisions()
    t, f = torch.tensor([True]), torch.tensor([False])
    one = {"obs": torch.zeros(1, LAYOUT.size, dtype=torch.int32), "weights": torch.zeros(1, 8),
           "length": torch.zeros(1, dtype=torch.int64), "log_prob": torch.zeros(1)}  # fmt: skip
    # env 0: d0 (V 1, R 2) -> d1 (V 3, R 1, terminated); env 1: one decision (V .5, R 1, next 4)
    d.add(env=torch.tensor([0]), step=torch.tensor([5]), value=torch.tensor([3.0]),
          reward=torch.tensor([1.0]), terminated=t, episode_end=t, next_value=torch.tensor([9.0]),
          **one)  # fmt: skip
    d.add(env=torch.tensor([1]), step=torch.tensor([0]), value=torch.tensor([0.5]),
          reward=torch.tensor([1.0]), terminated=f, episode_end=f, next_value=torch.tensor([4.0]),
          **one)  # fmt: skip
    d.add(env=torch.tensor([0]), step=torch.tensor([1]), value=torch.tensor([1.0]),
          reward=torch.tensor([2.0]), terminated=f, episode_end=f, next_value=torch.tensor([3.0]),
          **one)  # fmt: skip
    b = d.batch(gamma=0.9, lam=0.5)
    assert b is not None
    # chains in order env 0 (d0, d1), env 1
    assert b.values.tolist() == [1.0, 3.0, 0.5]
    # d1: -2; d0: 2 + .9 * 3 - 1 + .9 * .5 * (-2) = 2.8; env 1: 1 + .9 * 4 - .5 = 4.1
    assert torch.allclose(b.advantages, torch.tensor([2.8, -2.0, 4.1]))
    assert torch.allclose(b.returns, b.advantages + b.values)
