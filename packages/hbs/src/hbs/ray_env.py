"""Rollouts from Ray actors: the batch of N envs split into shards, each an :class:`NLEVecEnv`
inside a Ray actor (on this machine or across a cluster), stepped in parallel as one
:class:`rl_runtime.vecenv.BatchedEnv`.

A step sends each actor its slice of the actions and gathers the raw results; envs whose episode
ended are then reset with the seeds the loop chooses (a second round trip, only when some
episode ended), so episodes are seeded exactly as in-process. Needs the ``ray`` extra
(``pip install "hbs[ray]"``); ``ray.init`` is the caller's (a local instance by default).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rl_runtime.errors import UsageError
from rl_runtime.vecenv import ResetSeed, StepResult
from torch import Tensor

from hbs.config import EnvConfig
from hbs.envs import NLEVecEnv, ObsLayout, PackedNLE, _check_actions, _step_result

__all__ = ["RayVecEnv"]


class _Shard:
    """An NLEVecEnv living in a Ray actor."""

    def __init__(self, cfg: EnvConfig, num_envs: int) -> None:
        self.env = NLEVecEnv(cfg, num_envs)

    def reset(self, seeds: list[int]) -> np.ndarray:
        return self.env.reset(seeds).numpy()

    def step_raw(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(a.copy() for a in self.env.step_raw(actions))

    def reset_rows(self, rows: list[int], seeds: list[int]) -> np.ndarray:
        return self.env.reset_rows(rows, seeds)

    def replay(self, seeds: list[int], actions: list[list[int]]) -> np.ndarray:
        return self.env.replay_np(seeds, actions)


class RayVecEnv:
    """N NLE envs over ``workers`` Ray actors (``num_envs / workers`` each).

    Args:
        cfg: The task.
        num_envs: N (a multiple of ``workers``).
        workers: Actors.
        device: Where observations are returned.
        num_cpus: CPUs each actor reserves.
    """

    def __init__(
        self,
        cfg: EnvConfig,
        num_envs: int,
        *,
        workers: int,
        device: torch.device | str = "cpu",
        num_cpus: float = 1.0,
    ) -> None:
        # Under `uv run`, Ray would start its workers with `uv run` in a copy of the working
        # directory (minutes, and another environment); they must use this interpreter. Ray
        # reads the switch when it is imported.
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        try:
            import ray
        except ImportError as e:  # pragma: no cover - the extra is installed in the workspace
            raise UsageError('--agent.source ray needs Ray: pip install "hbs[ray]"') from e
        if num_envs % workers:
            raise ValueError(f"--agent.workers ({workers}) must divide num-envs ({num_envs})")
        self._ray = ray
        self.layout = ObsLayout(cfg.observation_keys)
        self.per = num_envs // workers
        self._n = num_envs
        self._device = torch.device(device)
        probe = PackedNLE(cfg)
        self._obs_space, self._action_space = probe.observation_space, probe.action_space
        probe.close()
        actor = ray.remote(num_cpus=num_cpus)(_Shard)
        # Ray's actor handles are dynamically typed (their methods gain .remote)
        self.actors: list[Any] = [actor.remote(cfg, self.per) for _ in range(workers)]  # pyright: ignore[reportAttributeAccessIssue]

    @property
    def num_envs(self) -> int:
        return self._n

    @property
    def single_observation_space(self) -> gym.Space[Any]:
        return self._obs_space

    @property
    def single_action_space(self) -> gym.Space[Any]:
        return self._action_space

    @property
    def device(self) -> torch.device:
        return self._device

    def _split(self, values: Sequence[Any]) -> list[list[Any]]:
        return [list(values[i * self.per : (i + 1) * self.per]) for i in range(len(self.actors))]

    def reset(self, seeds: Sequence[int]) -> Tensor:
        parts = self._ray.get(
            [a.reset.remote(s) for a, s in zip(self.actors, self._split(seeds), strict=True)]
        )
        return torch.from_numpy(np.concatenate(parts)).to(self._device)

    def _reset_rows(self, rows: list[int], seeds: list[int]) -> np.ndarray:
        calls, order = [], []
        for w, actor in enumerate(self.actors):
            mine = [(r, s) for r, s in zip(rows, seeds, strict=True) if r // self.per == w]
            if mine:
                calls.append(actor.reset_rows.remote([r % self.per for r, _ in mine],
                                                     [s for _, s in mine]))  # fmt: skip
                order.extend(r for r, _ in mine)
        out = np.concatenate(self._ray.get(calls))
        # back to the order of ``rows``
        where = {r: j for j, r in enumerate(order)}
        return out[[where[r] for r in rows]]

    def step(self, actions: Tensor, reset_seed: ResetSeed) -> StepResult:
        a = _check_actions(actions, self._n)
        parts = self._ray.get(
            [
                actor.step_raw.remote(a[w * self.per : (w + 1) * self.per])
                for w, actor in enumerate(self.actors)
            ]
        )
        final, reward, terminated, truncated = (np.concatenate(x) for x in zip(*parts, strict=True))
        return _step_result(
            final, reward, terminated, truncated, reset_seed, self._reset_rows, self._device
        )

    def env_state(self) -> None:
        return None

    def load_env_state(self, state: Any) -> Tensor:
        raise NotImplementedError("NLE has no readable state; resume replays actions")

    def replay(self, seeds: Sequence[int], actions: Sequence[Sequence[Any]]) -> Tensor:
        acts = [[int(x) for x in a] for a in actions]
        parts = self._ray.get(
            [
                actor.replay.remote(s, ac)
                for actor, s, ac in zip(
                    self.actors, self._split(seeds), self._split(acts), strict=True
                )
            ]
        )
        return torch.from_numpy(np.concatenate(parts)).to(self._device)

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
