"""NetHack (``nle``) as N environments stepped as one batch (:class:`rl_runtime.vecenv.BatchedEnv`).

One observation is the chosen keys packed into one int32 vector (:class:`ObsLayout`): glyphs
``(21, 79)`` flattened, blstats ``(27,)``, message ``(256,)`` bytes, in the order of
``EnvConfig.observation_keys``. One tensor per step keeps the runtime's protocol (and its
rollout storage) as it is; :meth:`ObsLayout.split` gives the views back.

NLE facts this module handles (measured on nle 1.3.0, ``shared/research/stack_probe.md``):

* ``reset(seed=...)`` does not seed NetHack. Episode ``k`` of env ``i`` is seeded with
  ``env.seed(core, disp, reseed=False)`` right before its ``reset()``; ``core`` and ``disp`` are
  derived from the loop's per-episode seed, and ``fix_moon_phase`` takes the moon phase, Friday
  13th and night from the seed instead of the clock. Same seed and actions, same episode.
* NLE reuses its observation arrays across steps: each step is copied into this module's own
  buffers (int32) before anything keeps it.
* Truncation is this module's step count (``max_episode_steps``): NLE's own limit is set past
  it, because NLE reports its limit as a terminal step with a blank observation.
* The step that ends in death returns a blank observation (all-zero blstats): :func:`is_blank`
  finds it, and the loop and the rewards use the observation before it in its place.

Sources: :class:`NLEVecEnv` (in-process, default), :func:`make_subprocess_env` (gymnasium's
async vector env of :class:`PackedNLE`, one worker process per env) and
``hbs.ray_env.RayVecEnv`` (Ray actors, each an :class:`NLEVecEnv` shard).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from rl_runtime.vecenv import GymVectorEnv, ResetSeed, StepResult, make_gym_vector_env
from torch import Tensor

from hbs.config import EnvConfig, check_observation_keys

__all__ = [
    "BLSTATS",
    "GLYPH_SHAPE",
    "MESSAGE_LEN",
    "NLEObs",
    "NLEVecEnv",
    "ObsLayout",
    "PackedNLE",
    "is_blank",
    "make_batched_env",
    "make_subprocess_env",
    "nle_seeds",
]

GLYPH_SHAPE = (21, 79)
"""NetHack's map, rows x columns."""
BLSTATS = 27
"""Length of NLE's bottom-line statistics."""
MESSAGE_LEN = 256
"""Bytes of NLE's message line."""
_SIZES = {"glyphs": GLYPH_SHAPE[0] * GLYPH_SHAPE[1], "blstats": BLSTATS, "message": MESSAGE_LEN}

# blstats indices (nle.nethack.NLE_BL_*; fixed by NLE's C struct, checked in the tests)
BL_X, BL_Y, BL_SCORE, BL_HP, BL_HPMAX, BL_DEPTH, BL_GOLD = 0, 1, 9, 10, 11, 12, 13
BL_AC, BL_TIME, BL_HUNGER, BL_DNUM, BL_DLEVEL = 16, 20, 21, 23, 24


class NLEObs(NamedTuple):
    """Views of a packed ``(N, D)`` int32 observation batch.

    Attributes:
        glyphs: ``(N, 21, 79)`` int32 glyph ids.
        blstats: ``(N, 27)`` int32 bottom-line statistics (``nle.nethack.NLE_BL_*``).
        message: ``(N, 256)`` int32 bytes of the message line, or None without that key.
    """

    glyphs: Tensor
    blstats: Tensor
    message: Tensor | None


class ObsLayout:
    """Where each key lives in the packed int32 vector.

    Args:
        keys: Observation keys in packing order (glyphs and blstats required).

    Raises:
        hbs.config.ObservationKeyError: a key this package does not read.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        check_observation_keys(tuple(keys))
        self.keys = tuple(keys)
        self.offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for key in self.keys:
            self.offsets[key] = (start, start + _SIZES[key])
            start += _SIZES[key]
        self.size = start

    def split(self, packed: Tensor) -> NLEObs:
        """``(N, D)`` packed observations as :class:`NLEObs` views (no copy)."""
        if packed.ndim != 2 or packed.shape[1] != self.size:
            raise ValueError(
                f"packed observations must be (N, {self.size}) for keys {self.keys}, got "
                f"{tuple(packed.shape)}"
            )

        def part(key: str) -> Tensor:
            a, b = self.offsets[key]
            return packed[:, a:b]

        return NLEObs(
            glyphs=part("glyphs").reshape(-1, *GLYPH_SHAPE),
            blstats=part("blstats"),
            message=part("message") if "message" in self.offsets else None,
        )

    def pack_into(self, out: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        """Copy one NLE observation dict into the ``(D,)`` int32 row ``out``."""
        for key in self.keys:
            a, b = self.offsets[key]
            out[a:b] = obs[key].reshape(-1)


def is_blank(blstats: Tensor) -> Tensor:
    """``(N,)`` bool: the observation is NLE's blank end-of-game one (all blstats 0; a live
    character always has a positive maximum HP)."""
    return blstats[:, BL_HPMAX] == 0


def nle_seeds(seed: int) -> tuple[int, int]:
    """NetHack's ``(core, disp)`` RNG seeds for an episode seed."""
    core, disp = np.random.SeedSequence(seed).generate_state(2)
    return int(core), int(disp)


_TASK_IDS = {"score": "NetHackScore-v0", "challenge": "NetHackChallenge-v0"}


class PackedNLE(gym.Env[np.ndarray, int]):
    """One NLE task with packed int32 observations, seeded through NetHack's own RNG seeds,
    truncated by its own step count. A gymnasium env (for the subprocess source) that also
    steps into a caller's buffer row (for the batched ones)."""

    def __init__(self, cfg: EnvConfig) -> None:
        from nle.env import tasks  # lazily: only the env processes need NetHack

        self.cfg = cfg
        self.layout = ObsLayout(cfg.observation_keys)
        kwargs: dict[str, Any] = {
            "observation_keys": tuple(cfg.observation_keys),
            # NLE's own limit ends with a blank terminal observation: keep it out of the way.
            "max_episode_steps": cfg.max_episode_steps + 1,
            "fix_moon_phase": cfg.fix_moon_phase,
        }
        if cfg.task == "score":
            self.nle = tasks.NetHackScore(character=cfg.character, **kwargs)
        else:
            self.nle = tasks.NetHackChallenge(**kwargs)
        self.observation_space = gym.spaces.Box(
            np.iinfo(np.int32).min, np.iinfo(np.int32).max, (self.layout.size,), np.int32
        )
        self.action_space = gym.spaces.Discrete(int(self.nle.action_space.n))  # pyright: ignore[reportAttributeAccessIssue]
        self.steps = 0

    def reset_into(self, seed: int, out: np.ndarray) -> None:
        """Start the episode of ``seed`` (or of ``cfg.fixed_seed``) and write its first
        observation into ``out``."""
        core, disp = nle_seeds(seed if self.cfg.fixed_seed is None else self.cfg.fixed_seed)
        self.nle.seed(core, disp, reseed=False)
        obs, _ = self.nle.reset()
        self.steps = 0
        self.layout.pack_into(out, obs)

    def step_into(self, action: int, out: np.ndarray) -> tuple[float, bool, bool]:
        """Step; write the next observation into ``out``; return (reward, terminated,
        truncated)."""
        obs, reward, done, nle_truncated, _ = self.nle.step(action)
        self.steps += 1
        self.layout.pack_into(out, obs)
        truncated = bool(nle_truncated) or self.steps >= self.cfg.max_episode_steps
        return float(reward), bool(done) and not bool(nle_truncated), truncated

    # gymnasium API (the subprocess source)
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        del options
        out = np.empty(self.layout.size, np.int32)
        self.reset_into(0 if seed is None else int(seed), out)
        return out, {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        out = np.empty(self.layout.size, np.int32)
        reward, terminated, truncated = self.step_into(int(action), out)
        return out, reward, terminated, truncated, {}

    def close(self) -> None:
        self.nle.close()


class NLEVecEnv:
    """N NLE environments in this process as a :class:`rl_runtime.vecenv.BatchedEnv`.

    Same-step autoreset with a seed per episode (the runtime's contract). Observations are
    packed int32 ``(N, D)`` tensors (:class:`ObsLayout`).

    Args:
        cfg: The task and observation keys.
        num_envs: N.
        device: Where observations and rewards are returned.
    """

    def __init__(self, cfg: EnvConfig, num_envs: int, *, device: torch.device | str = "cpu"):
        if num_envs < 1:
            raise ValueError(f"--agent.ppo.num-envs must be >= 1, got {num_envs}")
        self.cfg = cfg
        self.layout = ObsLayout(cfg.observation_keys)
        self.envs = [PackedNLE(cfg) for _ in range(num_envs)]
        self._device = torch.device(device)
        self._final = np.zeros((num_envs, self.layout.size), np.int32)
        self._reward = np.zeros(num_envs, np.float32)
        self._terminated = np.zeros(num_envs, np.bool_)
        self._truncated = np.zeros(num_envs, np.bool_)

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    @property
    def single_observation_space(self) -> gym.Space[Any]:
        return self.envs[0].observation_space

    @property
    def single_action_space(self) -> gym.Space[Any]:
        return self.envs[0].action_space

    @property
    def device(self) -> torch.device:
        return self._device

    def reset(self, seeds: Sequence[int]) -> Tensor:
        out = np.empty((self.num_envs, self.layout.size), np.int32)
        for i, s in enumerate(seeds):
            self.envs[i].reset_into(int(s), out[i])
        return torch.from_numpy(out).to(self._device)

    def step_raw(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every env without resetting: (final obs (N, D), reward, terminated, truncated)
        as this object's buffers (copy what you keep)."""
        for i, env in enumerate(self.envs):
            r, te, tr = env.step_into(int(actions[i]), self._final[i])
            self._reward[i], self._terminated[i], self._truncated[i] = r, te, tr
        return self._final, self._reward, self._terminated, self._truncated

    def reset_rows(self, rows: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        """Reset the envs ``rows`` with ``seeds``; returns their ``(len(rows), D)`` first
        observations."""
        out = np.empty((len(rows), self.layout.size), np.int32)
        for j, (i, s) in enumerate(zip(rows, seeds, strict=True)):
            self.envs[i].reset_into(int(s), out[j])
        return out

    def step(self, actions: Tensor, reset_seed: ResetSeed) -> StepResult:
        a = _check_actions(actions, self.num_envs)
        final, reward, terminated, truncated = self.step_raw(a)
        return _step_result(
            final, reward, terminated, truncated, reset_seed, self.reset_rows, self._device
        )

    def env_state(self) -> None:
        return None  # NetHack's state is not readable: a resume replays the episodes' actions

    def load_env_state(self, state: Any) -> Tensor:
        raise NotImplementedError("NLE has no readable state; resume replays actions")

    def replay(self, seeds: Sequence[int], actions: Sequence[Sequence[Any]]) -> Tensor:
        return torch.from_numpy(self.replay_np(seeds, actions)).to(self._device)

    def replay_np(self, seeds: Sequence[int], actions: Sequence[Sequence[Any]]) -> np.ndarray:
        """:meth:`replay` as a numpy array."""
        out = np.empty((self.num_envs, self.layout.size), np.int32)
        for i, (s, acts) in enumerate(zip(seeds, actions, strict=True)):
            env = self.envs[i]
            env.reset_into(int(s), out[i])
            for a in acts:
                _, te, tr = env.step_into(int(a), out[i])
                if te or tr:  # the replay went another way than the recorded episode
                    break
        return out

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _check_actions(actions: Tensor, n: int) -> np.ndarray:
    a = actions.detach().cpu().numpy()
    if a.shape != (n,):
        raise ValueError(f"actions: expected shape ({n},), got {a.shape}")
    return a


def _step_result(
    final: np.ndarray,
    reward: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    reset_seed: ResetSeed,
    reset_rows: Callable[[list[int], list[int]], np.ndarray],
    device: torch.device,
) -> StepResult:
    """Same-step autoreset over raw step outputs: ended envs are reset with their next seed."""
    final_t = torch.from_numpy(final.copy())  # a copy: the env reuses its buffers
    ended = np.flatnonzero(terminated | truncated).tolist()
    obs_t = final_t
    if ended:
        seeds = [reset_seed(i) for i in ended]
        obs_t = final_t.clone()
        obs_t[ended] = torch.from_numpy(reset_rows(ended, seeds))
    return StepResult(
        obs=obs_t.to(device),
        reward=torch.from_numpy(reward.copy()).to(device),
        terminated=torch.from_numpy(terminated.copy()).to(device),
        truncated=torch.from_numpy(truncated.copy()).to(device),
        final_obs=final_t.to(device),
    )


def make_subprocess_env(
    cfg: EnvConfig, num_envs: int, *, device: torch.device | str = "cpu"
) -> GymVectorEnv:
    """N :class:`PackedNLE` in worker processes (gymnasium's async vector env, through the
    runtime's adapter: same-step autoreset, per-episode seeds, replay)."""
    return make_gym_vector_env(lambda: PackedNLE(cfg), num_envs, mode="async", device=device)


def make_batched_env(
    cfg: EnvConfig,
    num_envs: int,
    *,
    source: str = "inprocess",
    workers: int = 1,
    device: torch.device | str = "cpu",
) -> NLEVecEnv | GymVectorEnv | Any:
    """The N training envs from ``source``: ``inprocess`` (:class:`NLEVecEnv`), ``subprocess``
    (:func:`make_subprocess_env`) or ``ray`` (``hbs.ray_env.RayVecEnv`` over ``workers``
    actors; Ray must be initialised, or it starts a local instance)."""
    if source == "inprocess":
        return NLEVecEnv(cfg, num_envs, device=device)
    if source == "subprocess":
        return make_subprocess_env(cfg, num_envs, device=device)
    if source == "ray":
        from hbs.ray_env import RayVecEnv

        return RayVecEnv(cfg, num_envs, workers=workers, device=device)
    raise ValueError(f"--agent.source must be inprocess, subprocess or ray, got {source!r}")
