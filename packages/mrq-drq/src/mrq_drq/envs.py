"""Environment construction and preprocessing for Gym MuJoCo, DMC and Atari, as MR.Q uses them.

:func:`make_env` returns a ``gymnasium.Env`` whose observations are what the agent consumes:

* Gym: the environment unchanged except float32 observations and, for a ``Box`` action space
  whose bounds are not ``[-1, 1]``, an affine rescaling of actions to ``[-1, 1]``.
* DMC (``dm_control``, extra ``dmc``): a small dm_env → gymnasium adapter. Action repeat 2 with
  summed rewards; proprioceptive observations are the task's observation dict flattened in order
  (float32); visual observations are ``(3·history, 84, 84)`` uint8 renders (camera 0, camera 2 for
  quadruped) with the last ``history`` frames stacked as ``(history, 3, 84, 84)``. Episodes are 1000 frames (500 agent steps)
  and end with ``truncated=True``.
* Atari (``ale-py``, extra ``atari``): sticky actions 0.25, grayscale, frame skip 4 with a max-pool
  over the last two frames, area-resized to 84×84, history 4 (``(4, 1, 84, 84)``), no life-loss terminal, no reward
  clipping, no no-op starts, truncation after 108k emulator frames. The evaluation environment
  takes a random action with probability 1e-3 (only the evaluation one; the official code's
  ``eval`` builtin bug made the training environment do it too).

:func:`check_spaces` is the single gate every entry point uses: it returns an :class:`EnvSpec`
describing what the agent needs, or raises :class:`UnsupportedSpaceError` naming the space.

Seeding follows gymnasium: pass ``seed=`` to the first ``reset()``; :func:`make_env` seeds the
action space (used for the random warm-up actions) with the same seed.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from mrq_drq.config import EnvConfig

__all__ = [
    "AtariEnv",
    "DMCEnv",
    "EnvSpec",
    "UnsupportedSpaceError",
    "check_spaces",
    "make_env",
]


class UnsupportedSpaceError(ValueError):
    """An observation or action space MR.Q cannot handle (the message names it and why)."""


@dataclass(frozen=True)
class EnvSpec:
    """What the agent needs to know about an environment's spaces.

    Attributes:
        obs_shape: Network input shape: ``(obs_dim,)`` for vectors, ``(history·C, H, W)`` for
            pixels (stacked frames concatenated along the channels, MR.Q's layout).
        pixels: Whether observations are uint8 images.
        discrete: Whether actions are ``Discrete`` indices (else a continuous ``Box``).
        action_dim: Number of discrete actions, or the continuous action dimension.
        action_low: ``(action_dim,)`` lower bounds of a continuous action (``None`` if discrete).
        action_high: ``(action_dim,)`` upper bounds of a continuous action (``None`` if discrete).
    """

    obs_shape: tuple[int, ...]
    pixels: bool
    discrete: bool
    action_dim: int
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    history: int = 1
    """Stacked frames in one environment observation (pixels only; 1 for vectors)."""

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame as a replay buffer stores it: ``(obs_dim,)`` or ``(C, H, W)``."""
        if not self.pixels:
            return self.obs_shape
        channels, height, width = self.obs_shape
        return (channels // self.history, height, width)

    @property
    def env_obs_shape(self) -> tuple[int, ...]:
        """Shape of an environment observation: ``frame_shape``, or ``(history, *frame_shape)``."""
        return self.frame_shape if self.history == 1 else (self.history, *self.frame_shape)


def check_spaces(observation_space: spaces.Space[Any], action_space: spaces.Space[Any]) -> EnvSpec:
    """Validate an environment's spaces for MR.Q / DR.Q and describe them.

    Supported observations: a 1-D numeric ``Box`` (state vector), a 3-D ``uint8`` ``Box``
    ``(C, H, W)`` (pixels, channels first), or a 4-D ``uint8`` ``Box`` ``(history, C, H, W)``
    (stacked frames, the layout of :func:`make_env` and of ``rl_buffers``). Supported actions: ``Discrete(n)`` with ``n >= 2`` and
    ``start == 0``, or a 1-D ``Box`` with finite bounds and ``low < high``.

    Args:
        observation_space: The environment's observation space.
        action_space: The environment's action space.

    Returns:
        The :class:`EnvSpec`.

    Raises:
        UnsupportedSpaceError: Naming the space and the reason (e.g. ``Dict`` observations,
            ``MultiDiscrete`` actions, infinite action bounds, channels-last images).
    """
    if not isinstance(observation_space, spaces.Box):
        raise UnsupportedSpaceError(
            f"observation space must be a Box (state vector or uint8 image), got "
            f"{type(observation_space).__name__}: {observation_space}; flatten Dict/Tuple "
            "observations first"
        )
    shape = tuple(int(s) for s in observation_space.shape)
    history = 1
    if len(shape) == 1:
        if not np.issubdtype(observation_space.dtype, np.number):
            raise UnsupportedSpaceError(
                f"vector observation space must be numeric, got dtype {observation_space.dtype}"
            )
        pixels = False
    elif len(shape) in (3, 4):
        if observation_space.dtype != np.uint8:
            raise UnsupportedSpaceError(
                f"image observation space must be uint8 (C, H, W) or (history, C, H, W), got "
                f"dtype {observation_space.dtype} and shape {shape}"
            )
        if shape[-1] != shape[-2]:
            raise UnsupportedSpaceError(
                f"image observations must be channels-first and square (..., C, H, H), got {shape}"
            )
        if len(shape) == 4:
            # (history, C, H, W) -> network input (history * C, H, W)
            history = shape[0]
            shape = (shape[0] * shape[1], shape[2], shape[3])
        pixels = True
    else:
        raise UnsupportedSpaceError(
            f"observation space must be 1-D (state), 3-D (C, H, W) or 4-D (history, C, H, W) "
            f"images, got shape {shape}"
        )

    if isinstance(action_space, spaces.Discrete):
        n = int(action_space.n)
        if n < 2:
            raise UnsupportedSpaceError(f"Discrete action space needs n >= 2, got n={n}")
        if int(action_space.start) != 0:
            raise UnsupportedSpaceError(
                f"Discrete action space must start at 0, got start={int(action_space.start)}"
            )
        return EnvSpec(obs_shape=shape, pixels=pixels, discrete=True, action_dim=n, history=history)
    if isinstance(action_space, spaces.Box):
        if len(action_space.shape) != 1:
            raise UnsupportedSpaceError(
                f"Box action space must be 1-D, got shape {tuple(action_space.shape)}"
            )
        low = np.asarray(action_space.low, dtype=np.float64)
        high = np.asarray(action_space.high, dtype=np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise UnsupportedSpaceError(
                f"Box action space must have finite bounds, got low={low}, high={high}"
            )
        if not np.all(low < high):
            raise UnsupportedSpaceError(
                f"Box action space needs low < high in every dimension, got low={low}, high={high}"
            )
        return EnvSpec(
            obs_shape=shape,
            pixels=pixels,
            discrete=False,
            action_dim=int(action_space.shape[0]),
            action_low=tuple(float(x) for x in low),
            action_high=tuple(float(x) for x in high),
            history=history,
        )
    raise UnsupportedSpaceError(
        f"action space must be Discrete or a 1-D Box, got {type(action_space).__name__}: "
        f"{action_space}"
    )


# --------------------------------------------------------------------------------------------------
# Gym
# --------------------------------------------------------------------------------------------------


class _Float32Obs(gymnasium.ObservationWrapper[NDArray[np.float32], Any, Any]):
    """Cast vector observations to float32 (MuJoCo returns float64)."""

    def __init__(self, env: gymnasium.Env[Any, Any]) -> None:
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, spaces.Box)
        self.observation_space = spaces.Box(
            low=space.low.astype(np.float32),
            high=space.high.astype(np.float32),
            shape=space.shape,
            dtype=np.float32,
        )

    def observation(self, observation: Any) -> NDArray[np.float32]:
        return np.asarray(observation, dtype=np.float32)


def _make_gym(cfg: EnvConfig) -> gymnasium.Env[Any, Any]:
    env: gymnasium.Env[Any, Any] = gymnasium.make(cfg.env_id)
    spec = check_spaces(env.observation_space, env.action_space)
    if spec.pixels:
        raise UnsupportedSpaceError(
            f"{cfg.env_id}: pixel observations from Gym environments are not supported "
            "(use suite 'dmc' with pixels=True or suite 'atari')"
        )
    if cfg.action_repeat != 1 or cfg.history != 1:
        raise ValueError("suite 'gym' uses action_repeat=1 and history=1 (as MR.Q)")
    env = _Float32Obs(env)
    if not spec.discrete and (
        spec.action_low != (-1.0,) * spec.action_dim or spec.action_high != (1.0,) * spec.action_dim
    ):
        # The policy acts in [-1, 1]; map that affinely onto the env's bounds (MR.Q divides by
        # high[0], which is the same map for the symmetric bounds of every MuJoCo task).
        env = gymnasium.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return env


# --------------------------------------------------------------------------------------------------
# DMC
# --------------------------------------------------------------------------------------------------


class DMCEnv(gymnasium.Env[NDArray[Any], NDArray[np.float32]]):
    """DeepMind Control Suite task as a gymnasium environment, preprocessed as in MR.Q.

    Args:
        domain: DMC domain (``"cheetah"``).
        task: DMC task (``"run"``).
        pixels: Observe ``(3·history, size, size)`` uint8 renders instead of the state vector.
        action_repeat: Physics control steps per agent step (rewards summed).
        history: Frames stacked along the channel axis (pixels; 1 keeps the state vector).
        image_size: Render size.

    Observations: ``(obs_dim,)`` float32, or uint8 renders ``(3, size, size)`` (history 1) /
    ``(history, 3, size, size)``, oldest frame first.
    Actions: ``(action_dim,)`` in ``[-1, 1]``, mapped affinely onto the task's bounds.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        pixels: bool = False,
        action_repeat: int = 2,
        history: int = 1,
        image_size: int = 84,
    ) -> None:
        # Headless rendering: dm_control reads MUJOCO_GL when it first renders; EGL needs no
        # display. A value set by the user wins.
        os.environ.setdefault("MUJOCO_GL", "egl")
        # Mesa's EGL and triton (imported by torch._dynamo, which every torch optimizer imports)
        # both load LLVM; importing triton *after* EGL is initialised segfaults, before is fine.
        import torch._dynamo  # noqa: F401  # pyright: ignore[reportUnusedImport]

        try:
            from dm_control import suite
        except ImportError as err:  # pragma: no cover - depends on the installed extras
            raise ImportError("DMC needs dm_control: install the extra `mrq-drq[dmc]`") from err
        if (domain, task) not in suite.ALL_TASKS:
            raise ValueError(f"unknown DMC task {domain}-{task}")
        self._env = suite.load(domain, task, visualize_reward=False)
        self.domain, self.task_name = domain, task
        self.pixels = pixels
        self.action_repeat = action_repeat
        self.history = history
        self.image_size = image_size
        self.camera_id = 2 if domain == "quadruped" else 0

        act_spec = self._env.action_spec()
        self._act_low = np.asarray(act_spec.minimum, dtype=np.float64)
        self._act_high = np.asarray(act_spec.maximum, dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=act_spec.shape, dtype=np.float32)
        if pixels:
            frame = (3, image_size, image_size)
            shape = frame if history == 1 else (history, *frame)
            self.observation_space = spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        else:
            if history != 1:
                raise ValueError("DMC proprioceptive observations use history=1 (as MR.Q)")
            dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
            self.observation_space = spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        self._frames: collections.deque[NDArray[Any]] = collections.deque(maxlen=history)

    def _observe(self, time_step: Any) -> NDArray[Any]:
        if self.pixels:
            # (H, W, 3) -> (3, H, W)
            frame = self._env.physics.render(
                self.image_size, self.image_size, camera_id=self.camera_id
            )
            return np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.uint8)
        return np.concatenate(
            [np.asarray(v, dtype=np.float32).reshape(-1) for v in time_step.observation.values()]
        )

    def _stacked(self) -> NDArray[Any]:
        # history frames -> (history, *frame), oldest first; a single frame stays as it is.
        return self._frames[0].copy() if self.history == 1 else np.stack(list(self._frames))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[Any], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            # dm_control draws initial states from the task's RandomState.
            self._env.task.random.seed(seed)
        time_step = self._env.reset()
        obs = self._observe(time_step)
        for _ in range(self.history):
            self._frames.append(obs)
        return self._stacked(), {}

    def step(
        self, action: NDArray[np.float32]
    ) -> tuple[NDArray[Any], SupportsFloat, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        a = self._act_low + (a + 1.0) * 0.5 * (self._act_high - self._act_low)
        reward = 0.0
        time_step = None
        for _ in range(self.action_repeat):
            time_step = self._env.step(a.astype(np.float32))
            reward += float(time_step.reward or 0.0)
            if time_step.last():
                break
        assert time_step is not None
        self._frames.append(self._observe(time_step))
        last = bool(time_step.last())
        # DMC suite episodes end by time limit (discount 1); a zero discount would be a true end.
        terminated = last and float(time_step.discount) == 0.0
        return self._stacked(), reward, terminated, last and not terminated, {}


# --------------------------------------------------------------------------------------------------
# Atari
# --------------------------------------------------------------------------------------------------


class AtariEnv(gymnasium.Env[NDArray[np.uint8], np.int64]):
    """Atari game with MR.Q's preprocessing (see the module docstring).

    Args:
        game: ALE game name in CamelCase (``"Pong"``).
        action_repeat: Emulator frames per agent step (rewards summed).
        history: Stacked frames.
        image_size: Output side.
        grayscale: One grayscale channel per frame (else RGB).
        sticky_action_prob: ALE's repeat-action probability.
        max_episode_frames: Emulator frames before ``truncated``.
        pool_last_two_frames: Max-pool the last two frames of a step (Atari flicker).
        random_action_prob: Probability of replacing the agent's action by a random one (the
            evaluation environment's epsilon; 0 for training).

    Observations: uint8 ``(history, channels, size, size)`` (oldest first), or
    ``(channels, size, size)`` when ``history == 1``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        game: str,
        *,
        action_repeat: int = 4,
        history: int = 4,
        image_size: int = 84,
        grayscale: bool = True,
        sticky_action_prob: float = 0.25,
        max_episode_frames: int = 108_000,
        pool_last_two_frames: bool = True,
        random_action_prob: float = 0.0,
    ) -> None:
        try:
            import ale_py
            import cv2
        except ImportError as err:  # pragma: no cover - depends on the installed extras
            raise ImportError("Atari needs ale-py and opencv: install `mrq-drq[atari]`") from err
        gymnasium.register_envs(ale_py)
        self._resize_area = cv2.INTER_AREA
        self._cv2_resize = cv2.resize
        self._env: gymnasium.Env[Any, Any] = gymnasium.make(
            f"ALE/{game}-v5",
            frameskip=1,
            obs_type="grayscale" if grayscale else "rgb",
            repeat_action_probability=sticky_action_prob,
            full_action_space=False,
            max_num_frames_per_episode=max_episode_frames,
        )
        self.action_repeat = action_repeat
        self.history = history
        self.image_size = image_size
        self.channels = 1 if grayscale else 3
        self.max_episode_frames = max_episode_frames
        self.pool_last_two_frames = pool_last_two_frames
        self.random_action_prob = random_action_prob
        self.action_space = self._env.action_space
        frame = (self.channels, image_size, image_size)
        shape = frame if history == 1 else (history, *frame)
        self.observation_space = spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        self._pool: collections.deque[NDArray[np.uint8]] = collections.deque(maxlen=2)
        self._frames: collections.deque[NDArray[np.uint8]] = collections.deque(maxlen=history)
        self._episode_frames = 0

    def _observe(self) -> NDArray[np.uint8]:
        if self.pool_last_two_frames and self.action_repeat > 1:
            frame = np.maximum(self._pool[0], self._pool[1])
        else:
            frame = self._pool[-1]
        small = self._cv2_resize(
            frame, (self.image_size, self.image_size), interpolation=self._resize_area
        )
        # (H, W) or (H, W, 3) -> (C, H, W)
        small = np.asarray(small, dtype=np.uint8).reshape(self.image_size, self.image_size, -1)
        return np.ascontiguousarray(small.transpose(2, 0, 1))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.uint8], dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self._env.reset(seed=seed)
        self._episode_frames = 0
        for _ in range(2):
            self._pool.append(np.asarray(obs, dtype=np.uint8))
        frame = self._observe()
        for _ in range(self.history):
            self._frames.append(frame)
        return self._stacked(), dict(info)

    def step(
        self, action: np.int64 | int
    ) -> tuple[NDArray[np.uint8], SupportsFloat, bool, bool, dict[str, Any]]:
        if self.random_action_prob > 0 and self.np_random.uniform() < self.random_action_prob:
            action = int(self.np_random.integers(int(self.action_space.n)))  # type: ignore[attr-defined]
        reward = 0.0
        terminated = truncated = False
        info: dict[str, Any] = {}
        for _ in range(self.action_repeat):
            obs, frame_reward, terminated, truncated, info = self._env.step(int(action))
            self._episode_frames += 1
            reward += float(frame_reward)
            self._pool.append(np.asarray(obs, dtype=np.uint8))
            if terminated or truncated:
                break
        truncated = bool(truncated) or self._episode_frames >= self.max_episode_frames
        self._frames.append(self._observe())
        return self._stacked(), reward, bool(terminated), truncated, info

    def _stacked(self) -> NDArray[np.uint8]:
        # history frames -> (history, C, H, W), oldest first; a single frame stays (C, H, W).
        return self._frames[0].copy() if self.history == 1 else np.stack(list(self._frames))

    def close(self) -> None:
        self._env.close()


# --------------------------------------------------------------------------------------------------


def make_env(cfg: EnvConfig, *, seed: int, evaluation: bool = False) -> gymnasium.Env[Any, Any]:
    """Build and preprocess the environment ``cfg`` names.

    Args:
        cfg: Environment config (suite, id, preprocessing).
        seed: Seeds the action space (random warm-up actions); pass it to the first ``reset()``
            too (gymnasium convention).
        evaluation: Build the evaluation variant (Atari: epsilon-random actions with
            ``cfg.eval_random_action_prob``; identical otherwise).

    Returns:
        A gymnasium environment whose spaces pass :func:`check_spaces`.

    Raises:
        UnsupportedSpaceError: The environment's spaces are not supported.
        ValueError: Malformed ``env_id`` for the suite, or settings the suite does not use.
        ImportError: The suite's optional dependencies are missing (extras ``dmc`` / ``atari``).
    """
    env: gymnasium.Env[Any, Any]
    if cfg.suite == "gym":
        env = _make_gym(cfg)
    elif cfg.suite == "dmc":
        domain, sep, task = cfg.env_id.partition("-")
        if not sep or not task:
            raise ValueError(
                f"DMC env_id must be 'domain-task' (e.g. 'cheetah-run'), got {cfg.env_id!r}"
            )
        if not cfg.pixels and cfg.history != 1:
            raise ValueError("DMC proprioceptive observations use history=1 (as MR.Q)")
        env = DMCEnv(
            domain,
            task,
            pixels=cfg.pixels,
            action_repeat=cfg.action_repeat,
            history=cfg.history,
            image_size=cfg.image_size,
        )
    else:
        env = AtariEnv(
            cfg.env_id,
            action_repeat=cfg.action_repeat,
            history=cfg.history,
            image_size=cfg.image_size,
            grayscale=cfg.grayscale,
            sticky_action_prob=cfg.sticky_action_prob,
            max_episode_frames=cfg.max_episode_frames,
            pool_last_two_frames=cfg.pool_last_two_frames,
            random_action_prob=cfg.eval_random_action_prob if evaluation else 0.0,
        )
    check_spaces(env.observation_space, env.action_space)
    env.action_space.seed(seed)
    return env
