"""Environment wrapper for the paper's time-to-horizon input."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import numpy.typing as npt

__all__ = ["TimeToHorizon"]


class TimeToHorizon(gym.Wrapper[npt.NDArray[np.float32], Any, Any, Any]):
    """Append the time to horizon ``(T - t) / T`` to a flat Box observation, as float32.

    The paper's TD3 conditions actor and critic on it (the value of a fixed-horizon episode
    depends on the time left); the first observation has 1.0 and the observation after step
    ``T`` has 0.0, where :class:`ot_ilfo.agent.TD3Agent` stops bootstrapping.

    Args:
        env: An environment with a 1-D Box observation space.
        horizon: ``T``; default the environment's ``spec.max_episode_steps``.

    Raises:
        ValueError: the observation space is not a 1-D Box, or no horizon is known.
    """

    def __init__(self, env: gym.Env[Any, Any], horizon: int | None = None) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"TimeToHorizon needs a 1-D Box observation space, got {space}")
        if horizon is None:
            horizon = env.spec.max_episode_steps if env.spec is not None else None
        if horizon is None or horizon < 1:
            raise ValueError(
                f"TimeToHorizon needs a horizon >= 1 (the env has no max_episode_steps), got {horizon}"
            )
        self.horizon = int(horizon)
        self._t = 0
        low = np.append(space.low, 0.0).astype(np.float32)
        high = np.append(space.high, 1.0).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def _augment(self, obs: Any) -> npt.NDArray[np.float32]:
        # Clamped at 0: an env whose time limit exceeds the horizon keeps seeing 0.
        left = max(self.horizon - self._t, 0) / self.horizon
        return np.append(np.asarray(obs, dtype=np.float32), np.float32(left))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._t = 0
        return self._augment(obs), info

    def step(
        self, action: Any
    ) -> tuple[npt.NDArray[np.float32], SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        return self._augment(obs), reward, terminated, truncated, info
