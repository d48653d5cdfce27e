"""Expert demonstrations: roll out a policy, save STATE-ONLY trajectories as Minari, load them.

The saved dataset has the environment's observation space and a zero-width action space
``Box(-1, 1, (0,))``: every episode's ``actions`` array is ``(T, 0)``, so no action
information can leak to the learner. Rewards are the environment's (they record how good the
expert was; the learner never reads them).

Scripted experts (:data:`SCRIPTED`, for tasks where a hand-written controller is good enough to
imitate) live in :mod:`ot_ilfo.scripted`, which imports neither gymnasium nor torch; they are
re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from rl_buffers.offline import DatasetError, Episode, load_minari, save_minari
from rl_runtime.evaluation import EpisodeRecorder, rollout_episodes

from ot_ilfo.scripted import SCRIPTED, Policy, pendulum_swingup

__all__ = [
    "SCRIPTED",
    "STATE_ONLY_ACTION_SPACE",
    "episode_return",
    "load_expert_states",
    "pendulum_swingup",
    "rollout_states",
    "save_demos",
]

STATE_ONLY_ACTION_SPACE = gym.spaces.Box(-1.0, 1.0, (0,), np.float32)
"""The action space of a state-only dataset: zero-width, so ``actions`` carry nothing."""


def rollout_states(
    env: gym.Env[Any, Any], policy: Policy, *, episodes: int, seed: int
) -> list[Episode]:
    """Run ``policy`` for ``episodes`` episodes and keep the states (no actions).

    The episodes are :func:`rl_runtime.evaluation.rollout_episodes`' on the ``"demos"`` stream:
    episode ``i`` starts from ``env.reset(seed=episode_seed(seed, "demos", i))``.

    Args:
        env: A 1-D Box observation environment.
        policy: Observation (as the env returns it) -> action (as the env takes it).
        episodes: Number of episodes (>= 1).
        seed: Seed of the demonstrations.

    Returns:
        One :class:`rl_buffers.Episode` per episode: ``observations`` ``(T + 1, d)`` float32,
        ``actions`` ``(T, 0)``, the env's ``rewards``, terminations and truncations.

    Raises:
        ValueError: ``episodes < 1`` or a non-flat observation space.
    """
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"rollout_states needs a 1-D Box observation space, got {space}")
    states = EpisodeRecorder(keep_actions=False, obs_dtype=np.float32, where="demonstration")
    rollout_episodes(
        policy,
        env,
        episodes=episodes,
        seed=seed,
        stream="demos",
        on_reset=states.on_reset,
        on_step=states.on_step,
    )
    return states.episodes


def episode_return(episode: Episode) -> float:
    """Undiscounted environment return of an episode."""
    return float(np.sum(episode.rewards, dtype=np.float64))


def save_demos(
    episodes: list[Episode],
    dataset_id: str,
    *,
    env_id: str,
    observation_space: gym.spaces.Box,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    algorithm_name: str | None = None,
    description: str | None = None,
) -> Path:
    """Write state-only episodes as a Minari dataset, atomically (``rl_buffers.save_minari``).

    Args:
        episodes: From :func:`rollout_states` (``actions`` must be ``(T, 0)``).
        dataset_id: Minari id, ``(namespace/)name-v<version>``.
        env_id: The environment they come from (stored as the dataset's env spec).
        observation_space: The environment's observation space.
        root: Datasets root (None: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``).
        overwrite: Replace an existing dataset with this id.
        algorithm_name: Who produced the episodes (``"scripted:pendulum-swingup"``...).
        description: Free text; the expert's mean return is appended.

    Returns:
        The dataset directory.

    Raises:
        FileExistsError: the dataset exists and ``overwrite`` is False.
        ValueError: an episode carries actions (the dataset would not be state-only).
    """
    for i, ep in enumerate(episodes):
        if ep.actions.ndim != 2 or ep.actions.shape[1] != 0:
            raise ValueError(
                f"episode {i}: actions have shape {ep.actions.shape}; a state-only dataset "
                "takes (T, 0) actions (use rollout_states)"
            )
    mean_return = float(np.mean([episode_return(ep) for ep in episodes]))
    text = f"State-only demonstrations (no actions). Mean expert return {mean_return:.2f}."
    return save_minari(
        episodes,
        dataset_id,
        observation_space=observation_space,
        action_space=STATE_ONLY_ACTION_SPACE,
        env=env_id,
        eval_env=env_id,
        algorithm_name=algorithm_name,
        description=text if description is None else f"{description} {text}",
        root=root,
        overwrite=overwrite,
    )


def load_expert_states(
    dataset_id: str,
    *,
    root: str | os.PathLike[str] | None = None,
    state_dim: int | None = None,
    num_trajectories: int | None = None,
) -> list[npt.NDArray[np.float32]]:
    """Read expert state trajectories back from a Minari dataset (local only).

    Any Minari dataset with flat observations loads (its actions, if any, are not returned).

    Args:
        dataset_id: Minari id.
        root: Datasets root (None: Minari's rule).
        state_dim: Expected state dimension ``d`` (the environment's); checked.
        num_trajectories: Use the first N episodes; None: all.

    Returns:
        One ``(T_i + 1, d)`` float32 array per trajectory.

    Raises:
        rl_buffers.DatasetNotFoundError: the dataset is not under the root.
        rl_buffers.DatasetError: malformed, non-flat, wrong-dimension or NaN observations.
        ValueError: ``num_trajectories`` is < 1 or more than the dataset holds.
    """
    if num_trajectories is not None and num_trajectories < 1:
        raise ValueError(f"num_trajectories must be >= 1, got {num_trajectories}")
    episodes = load_minari(
        dataset_id, root=root, obs_shape=None if state_dim is None else (state_dim,)
    )
    if num_trajectories is not None:
        if num_trajectories > len(episodes):
            raise ValueError(
                f"dataset {dataset_id!r} holds {len(episodes)} trajectories, "
                f"{num_trajectories} were asked for"
            )
        episodes = episodes[:num_trajectories]
    out: list[npt.NDArray[np.float32]] = []
    for ep in episodes:
        obs = ep.observations
        if obs.ndim != 2 or obs.dtype.kind != "f":
            raise DatasetError(
                f"dataset {dataset_id!r}, episode {ep.episode_id}: key 'observations' must be "
                f"flat float states (T + 1, d), got {obs.shape} {obs.dtype}"
            )
        out.append(obs.astype(np.float32, copy=False))
    return out
