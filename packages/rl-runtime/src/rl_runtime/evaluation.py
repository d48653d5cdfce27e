"""The one seeded-episode loop: evaluation, reference scores, demonstrations and dataset rollouts.

:func:`rollout_episodes` runs a policy for a number of episodes, episode ``i`` starting from
``env.reset(seed=episode_seed(seed, stream, i))`` (one rule for every caller; the ``stream``
names the use, e.g. ``"eval"``, ``"demos"``, ``"datagen"``, so that uses of one seed are
independent). Callbacks see every reset and every step: :class:`EpisodeRecorder` keeps the
episodes' arrays for datasets, a method's own callback reads task-specific ``info`` (success
flags, privileged state). :func:`evaluate` is the loop with no callbacks and the ``"eval"``
stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch
from rl_buffers.offline import Episode, validate_episode

from rl_runtime.seeding import episode_seed

__all__ = [
    "ActingAgent",
    "EpisodeRecorder",
    "EvalResult",
    "Policy",
    "Step",
    "agent_policy",
    "evaluate",
    "obs_to_tensor",
    "rollout_episodes",
    "to_env_action",
]

Policy = Callable[[Any], Any]
"""Observation (as the environment returns it) -> action (as the environment takes it)."""


class ActingAgent(Protocol):
    """What :func:`agent_policy` needs from an agent."""

    def act(self, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        """Action tensor for one observation tensor."""
        ...


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Undiscounted returns and lengths of the episodes of a rollout."""

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


class Step(NamedTuple):
    """One environment step of :func:`rollout_episodes`, as its ``on_step`` callback sees it."""

    episode: int
    """Episode index in the stream (the ``i`` of ``episode_seed(seed, stream, i)``)."""
    obs: Any
    """Observation the action was chosen in, as the environment returned it."""
    action: Any
    """Action passed to ``env.step``."""
    reward: float
    """Reward of the step."""
    next_obs: Any
    """Observation after the step."""
    terminated: bool
    """The environment reached a terminal state."""
    truncated: bool
    """The environment truncated the episode, or ``max_steps`` / ``step_budget`` cut it here."""
    info: dict[str, Any]
    """The ``info`` dict ``env.step`` returned."""


def rollout_episodes(
    policy: Policy,
    env: gym.Env[Any, Any],
    *,
    episodes: int,
    seed: int,
    stream: str,
    first_episode: int = 0,
    max_steps: int | None = None,
    step_budget: int | None = None,
    on_reset: Callable[[int, Any, dict[str, Any]], None] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> EvalResult:
    """Run ``policy`` on ``env`` for seeded episodes, calling back at every reset and step.

    Episode ``i`` (``first_episode <= i < first_episode + episodes``) starts from
    ``env.reset(seed=episode_seed(seed, stream, i))``, so every call with the same seed and
    stream sees the same starts (successive evaluations of a run differ only by the policy).

    Args:
        policy: Observation -> action, called once per step (it may be stateful: a callback can
            feed it the step's ``info``).
        env: A plain (not autoresetting) environment; for evaluation not the training one.
        episodes: Number of episodes (>= 1); fewer run if ``step_budget`` ends first.
        seed: The run's (or collection's) seed.
        stream: What the episodes are for (``"eval"``, ``"demos"``, ...); seeds of different
            streams are independent.
        first_episode: Index of the first episode in the stream (a caller that runs episodes one
            call at a time passes its episode counter).
        max_steps: Cut episodes longer than this (counted as truncated); None relies on the
            environment's own time limit.
        step_budget: Stop after this many steps over all episodes, the episode in progress cut
            there (counted as truncated); None: no budget.
        on_reset: ``(episode, obs, info)`` after every reset, before the first action.
        on_step: Called with a :class:`Step` after every step.

    Returns:
        Returns and lengths of the episodes run.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if first_episode < 0:
        raise ValueError(f"first_episode must be >= 0, got {first_episode}")
    for name, limit in (("max_steps", max_steps), ("step_budget", step_budget)):
        if limit is not None and limit < 1:
            raise ValueError(f"{name} must be >= 1 or None, got {limit}")
    returns: list[float] = []
    lengths: list[int] = []
    taken = 0
    for i in range(first_episode, first_episode + episodes):
        if step_budget is not None and taken >= step_budget:
            break
        obs, info = env.reset(seed=episode_seed(seed, stream, i))
        if on_reset is not None:
            on_reset(i, obs, info)
        total, length, done = 0.0, 0, False
        while not done:
            action = policy(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            length += 1
            taken += 1
            cut = (max_steps is not None and length >= max_steps) or (
                step_budget is not None and taken >= step_budget
            )
            terminated = bool(terminated)
            truncated = bool(truncated) or (cut and not terminated)
            if on_step is not None:
                on_step(Step(i, obs, action, float(reward), next_obs, terminated, truncated, info))
            obs = next_obs
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    return EvalResult(tuple(returns), tuple(lengths))


def evaluate(
    policy: Policy,
    env: gym.Env[Any, Any],
    *,
    episodes: int,
    seed: int,
    max_steps: int | None = None,
    stream: str = "eval",
) -> EvalResult:
    """Run ``episodes`` episodes of ``policy`` on ``env``: :func:`rollout_episodes` without
    callbacks, on the ``"eval"`` stream by default.

    Episode ``i`` starts from ``env.reset(seed=episode_seed(seed, "eval", i))``.

    Args:
        policy: Observation (as the env returns it) -> action (as the env takes it).
        env: The evaluation environment (not the training one: evaluating would disturb it).
        episodes: Number of episodes (>= 1).
        seed: The run's seed.
        max_steps: Cut episodes longer than this (counted as truncated); None relies on the
            environment's own time limit.
        stream: Seed stream of the episodes.

    Returns:
        Returns and lengths of the episodes.
    """
    return rollout_episodes(
        policy, env, episodes=episodes, seed=seed, stream=stream, max_steps=max_steps
    )


class EpisodeRecorder:
    """Callbacks of :func:`rollout_episodes` that keep every episode's arrays, for datasets.

    Pass both: ``rollout_episodes(..., on_reset=rec.on_reset, on_step=rec.on_step)``. After the
    rollout, :attr:`episodes` holds one validated :class:`rl_buffers.offline.Episode` per
    finished episode (``episode_id`` = its index in the stream): observations ``(T + 1,
    *obs_shape)`` (copied when seen, so an environment that reuses its observation array cannot
    change them; in the environment's dtype or ``obs_dtype``), actions ``(T, *action_shape)`` as
    the environment took them, rewards float32, terminations and truncations bool.

    Args:
        keep_actions: Store the actions; False stores ``(T, 0)`` float32 actions (state-only
            data: nothing about the actions survives).
        obs_dtype: Observation dtype; None keeps the environment's.
        where: Prefix of the error if an episode fails :func:`rl_buffers.offline.validate_episode`
            (NaN in an observation, ...).
    """

    def __init__(
        self,
        *,
        keep_actions: bool = True,
        obs_dtype: npt.DTypeLike | None = None,
        where: str = "rollout",
    ) -> None:
        self.keep_actions = keep_actions
        self.obs_dtype = obs_dtype
        self.where = where
        self.episodes: list[Episode] = []
        self._clear()

    def _clear(self) -> None:
        self._obs: list[npt.NDArray[Any]] = []
        self._actions: list[npt.NDArray[Any]] = []
        self._rewards: list[float] = []
        self._terminated: list[bool] = []
        self._truncated: list[bool] = []

    def on_reset(self, episode: int, obs: Any, info: dict[str, Any]) -> None:
        """Start an episode from its first observation."""
        del episode, info
        self._clear()
        self._obs.append(np.array(obs, dtype=self.obs_dtype))

    def on_step(self, step: Step) -> None:
        """Record one step; close the episode when it ends."""
        if not self._obs:
            raise RuntimeError("EpisodeRecorder: pass on_reset=recorder.on_reset as well")
        self._obs.append(np.array(step.next_obs, dtype=self.obs_dtype))
        if self.keep_actions:
            self._actions.append(np.array(step.action))
        self._rewards.append(step.reward)
        self._terminated.append(step.terminated)
        self._truncated.append(step.truncated)
        if step.terminated or step.truncated:
            n = len(self._rewards)
            actions = np.stack(self._actions) if self.keep_actions else np.zeros((n, 0), np.float32)
            self.episodes.append(
                validate_episode(
                    np.stack(self._obs),
                    actions,
                    np.asarray(self._rewards, dtype=np.float32),
                    np.asarray(self._terminated, dtype=np.bool_),
                    np.asarray(self._truncated, dtype=np.bool_),
                    where=f"{self.where}, episode {step.episode}",
                    episode_id=step.episode,
                )
            )
            self._clear()


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


def agent_policy(agent: ActingAgent, space: gym.Space[Any], device: torch.device) -> Policy:
    """``obs -> env action`` with ``agent.act(obs_tensor, explore=False)`` under ``no_grad``."""

    def policy(obs: Any) -> Any:
        with torch.no_grad():
            action = agent.act(obs_to_tensor(obs, device), explore=False)
        return to_env_action(action, space)

    return policy
