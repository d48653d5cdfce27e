"""Policy evaluation on a separate environment with fixed per-episode seeds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rl_runtime.seeding import episode_seed

__all__ = ["EvalResult", "agent_policy", "evaluate", "obs_to_tensor", "to_env_action"]


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Undiscounted returns and lengths of evaluation episodes."""

    returns: tuple[float, ...]
    """Return of each episode, in episode order."""
    lengths: tuple[int, ...]
    """Length (steps) of each episode."""

    @property
    def mean_return(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        """Population standard deviation (ddof=0) of the episode returns."""
        return float(np.std(self.returns))

    @property
    def mean_length(self) -> float:
        """Mean episode length."""
        return float(np.mean(self.lengths))

    def metrics(self) -> dict[str, float]:
        """``eval/return``, ``eval/return_std``, ``eval/length``, ``eval/episodes``."""
        return {
            "eval/return": self.mean_return,
            "eval/return_std": self.std_return,
            "eval/length": self.mean_length,
            "eval/episodes": float(len(self.returns)),
        }


def evaluate(
    policy: Callable[[Any], Any],
    env: gym.Env[Any, Any],
    *,
    episodes: int,
    seed: int,
    max_steps: int | None = None,
) -> EvalResult:
    """Run ``episodes`` episodes of ``policy`` on ``env``.

    Episode ``i`` starts from ``env.reset(seed=episode_seed(seed, "eval", i))``, so every call
    with the same seed sees the same starts: successive evaluations of a run differ only by the
    policy, which makes learning curves less noisy.

    Args:
        policy: Observation (as the env returns it) -> action (as the env takes it).
        env: The evaluation environment (not the training one: evaluating would disturb it).
        episodes: Number of episodes (>= 1).
        seed: The run's seed.
        max_steps: Cut episodes longer than this (counted as truncated); None relies on the
            environment's own time limit.

    Returns:
        Returns and lengths of the episodes.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    returns: list[float] = []
    lengths: list[int] = []
    for i in range(episodes):
        obs, _ = env.reset(seed=episode_seed(seed, "eval", i))
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            length += 1
            done = terminated or truncated or (max_steps is not None and length >= max_steps)
        returns.append(total)
        lengths.append(length)
    return EvalResult(tuple(returns), tuple(lengths))


def obs_to_tensor(obs: Any, device: torch.device) -> torch.Tensor:
    """An environment observation as a tensor on ``device`` (float64 becomes float32)."""
    t = torch.as_tensor(np.asarray(obs))
    if t.dtype == torch.float64:
        t = t.float()
    return t.to(device)


def to_env_action(action: torch.Tensor, space: gym.Space[Any]) -> Any:
    """An agent's action tensor as the action ``space`` takes it.

    Raises:
        ValueError: the action's shape does not match the space.
    """
    a = action.detach().cpu().numpy()
    if isinstance(space, gym.spaces.Discrete):
        if a.size != 1:
            raise ValueError(f"Discrete action space: expected one action, got shape {a.shape}")
        return int(a.reshape(()))
    if isinstance(space, gym.spaces.Box | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        if a.shape != space.shape:
            raise ValueError(
                f"action shape {a.shape} does not match the action space shape {space.shape}"
            )
        return a.astype(space.dtype, copy=False)
    raise TypeError(f"unsupported action space {space}")


def agent_policy(agent: Any, space: gym.Space[Any], device: torch.device) -> Callable[[Any], Any]:
    """``obs -> env action`` with ``agent.act(obs_tensor, explore=False)`` under ``no_grad``."""

    def policy(obs: Any) -> Any:
        with torch.no_grad():
            action = agent.act(obs_to_tensor(obs, device), explore=False)
        return to_env_action(action, space)

    return policy
