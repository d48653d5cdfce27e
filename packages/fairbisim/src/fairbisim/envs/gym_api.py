"""The two environments as single gymnasium envs (one env of the array-native batch), for
``gym.make`` and ``gymnasium.utils.env_checker``; training uses the batched versions through
:class:`rl_runtime.vecenv.ArrayVecEnv`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from fairbisim.config import CollegeConfig, LendingConfig
from fairbisim.envs.college import CollegeArrayEnv
from fairbisim.envs.common import rates
from fairbisim.envs.lending import LendingArrayEnv

__all__ = ["CollegeEnv", "LendingEnv"]

_ONE = torch.ones(1, dtype=torch.bool)


class _SingleEnv(gym.Env[np.ndarray, Any]):
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    inner: LendingArrayEnv | CollegeArrayEnv

    def _setup(self) -> None:
        self.observation_space = self.inner.single_observation_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        # The episode's stream comes from gymnasium's seeded np_random: same seed, same episode.
        stream = int(self.np_random.integers(0, 2**62))
        obs = self.inner.reset(torch.tensor([stream]), _ONE)
        return obs[0].numpy(), self._info()

    def _info(self) -> dict[str, Any]:
        acc, tpr = rates(self.inner.counts)
        info: dict[str, Any] = {
            "acceptance_rate": acc[0].numpy(),
            "tpr": tpr[0].numpy(),
            "utility": float(self.inner.utility()[0]),
        }
        ind = self.inner.last_individuals
        if ind is not None:
            info["individuals"] = {k: v[0].numpy() for k, v in ind._asdict().items()}
        return info

    def _action_tensor(self, action: Any) -> torch.Tensor:
        raise NotImplementedError

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in the action space {self.action_space}")
        obs, reward, terminated, truncated = self.inner.step(self._action_tensor(action))
        return (
            obs[0].numpy(),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            self._info(),
        )


class LendingEnv(_SingleEnv):
    """``fairbisim/Lending-v0``: delayed-impact lending (see :mod:`fairbisim.envs.lending`).

    Args:
        **params: :class:`fairbisim.config.LendingConfig` fields.
    """

    def __init__(self, **params: Any) -> None:
        self.cfg = LendingConfig(**params)
        self.lending = LendingArrayEnv(self.cfg, 1)
        self.inner = self.lending
        self.action_space = gym.spaces.Discrete(2)
        self._setup()

    def _action_tensor(self, action: Any) -> torch.Tensor:
        return torch.tensor([int(action)])

    def _info(self) -> dict[str, Any]:
        info = super()._info()
        info["bank_cash"] = float(self.lending.cash[0])
        info["credit_distribution"] = self.lending.probs[0].numpy().copy()
        return info


class CollegeEnv(_SingleEnv):
    """``fairbisim/College-v0`` (action ``(threshold, epsilon_prob)`` in [0, 1]^2, as
    ml-fairness-gym) or ``fairbisim/CollegeDiscrete-v0`` (an index into the threshold x epsilon
    grid, the RL formulation): see :mod:`fairbisim.envs.college`.

    Args:
        discrete: Discrete grid actions instead of the continuous pair.
        **params: :class:`fairbisim.config.CollegeConfig` fields.
    """

    def __init__(self, discrete: bool = False, **params: Any) -> None:
        self.cfg = CollegeConfig(**params)
        self.inner = CollegeArrayEnv(self.cfg, 1)
        self.discrete = discrete
        if discrete:
            self.action_space = gym.spaces.Discrete(self.cfg.num_actions)
        else:
            self.action_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self._setup()

    def _action_tensor(self, action: Any) -> torch.Tensor:
        if self.discrete:
            return torch.tensor([int(action)])
        return torch.as_tensor(np.asarray(action, dtype=np.float64)).reshape(1, 2)
