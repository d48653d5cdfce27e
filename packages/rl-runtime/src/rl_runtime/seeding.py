"""Seeding and RNG state capture, so that a resumed run continues bit for bit.

Environments are never pickled. Instead every episode's ``reset`` gets its own seed,
``episode_seed(seed, "train", k)`` for the k-th training episode and
``episode_seed(seed, "eval", i)`` for the i-th episode of every evaluation, and the action space
(used for uniform warm-up actions) is seeded once and its generator state is checkpointed.
With those, an environment can be rebuilt at any episode boundary from counters alone, and the
off-policy loop rebuilds a mid-episode state by replaying the episode's actions (see
:mod:`rl_runtime.offpolicy`).
"""

from __future__ import annotations

import random
from typing import Any

import gymnasium as gym
import numpy as np
import torch

__all__ = [
    "capture_rng",
    "derive_seed",
    "episode_seed",
    "restore_rng",
    "seed_everything",
    "seed_spaces",
    "set_space_rng_state",
    "space_rng_state",
]


def derive_seed(seed: int, stream: str, index: int = 0) -> int:
    """A 32-bit seed for one named stream of randomness, independent of the other streams.

    Args:
        seed: The run's seed (>= 0).
        stream: Name of the consumer, e.g. ``"train"``, ``"eval"``, ``"action_space"``, ``"buffer"``.
        index: Index within the stream (episode number, environment number).

    Returns:
        ``numpy.random.SeedSequence([seed, index, *stream.encode()])``'s first 32-bit word.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    entropy = [seed, index, *stream.encode()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def episode_seed(seed: int, stream: str, episode: int) -> int:
    """Seed passed to ``env.reset`` for episode ``episode`` of ``stream`` (``"train"``/``"eval"``)."""
    return derive_seed(seed, f"reset/{stream}", episode)


def seed_everything(seed: int, *envs: gym.Env[Any, Any]) -> None:
    """Seed python's ``random``, numpy's global RNG, torch (CPU and every CUDA device), and the
    action and observation spaces of ``envs``.

    Episode resets are seeded one by one with :func:`episode_seed` by whoever resets.

    Args:
        seed: The run's seed (>= 0).
        envs: Environments whose spaces to seed; the i-th gets stream index i.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global RNG other code may use
    torch.manual_seed(seed)  # seeds every CUDA device too
    seed_spaces(seed, *envs)


def seed_spaces(seed: int, *envs: gym.Env[Any, Any]) -> None:
    """Seed the action and observation spaces of ``envs`` (the i-th gets stream index i)."""
    for i, env in enumerate(envs):
        env.action_space.seed(derive_seed(seed, "action_space", i))
        env.observation_space.seed(derive_seed(seed, "observation_space", i))


def capture_rng() -> dict[str, Any]:
    """States of python's ``random``, numpy's global RNG, torch's CPU RNG and, if CUDA is in use,
    every CUDA device's RNG. Generators owned by agents and buffers travel in their state_dicts."""
    cuda = (
        torch.cuda.get_rng_state_all()
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else None
    )
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "torch": torch.get_rng_state(),
        "cuda": cuda,
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng`.

    Raises:
        ValueError: the state was captured with CUDA RNGs and this process has a different number
            of CUDA devices (the stream could not continue identically).
    """
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            raise ValueError(
                f"checkpoint holds RNG states for {len(cuda)} CUDA devices, "
                f"this process sees {torch.cuda.device_count()}"
            )
        torch.cuda.set_rng_state_all(cuda)


def space_rng_state(space: gym.Space[Any]) -> Any:
    """The state of a space's sampling generator (recursing into Tuple and Dict spaces)."""
    if isinstance(space, gym.spaces.Tuple):
        return [space_rng_state(s) for s in space.spaces]
    if isinstance(space, gym.spaces.Dict):
        return {k: space_rng_state(s) for k, s in space.spaces.items()}
    return space.np_random.bit_generator.state


def set_space_rng_state(space: gym.Space[Any], state: Any) -> None:
    """Restore a state returned by :func:`space_rng_state`."""
    if isinstance(space, gym.spaces.Tuple):
        for s, st in zip(space.spaces, state, strict=True):
            set_space_rng_state(s, st)
    elif isinstance(space, gym.spaces.Dict):
        if set(state) != set(space.spaces):
            raise ValueError(
                f"space RNG state has keys {sorted(state)}, space {sorted(space.spaces)}"
            )
        for k, s in space.spaces.items():
            set_space_rng_state(s, state[k])
    else:
        space.np_random.bit_generator.state = state
