"""N environments stepped as one batch: the protocol the on-policy loop uses, and its adapters.

The loop sees every environment through :class:`BatchedEnv`, whose ``step`` has one meaning
whatever is underneath:

* **Same-step autoreset, seeded per episode.** When env ``i``'s episode ends at a step, that
  step returns its true last observation in ``final_obs[i]`` and the first observation of the
  next episode in ``obs[i]``; the next episode is reset with ``reset_seed(i)``, a seed the caller
  chooses (the loop uses ``episode_seed(seed, "train/<i>", k)`` for env ``i``'s ``k``-th episode).
  So a truncated episode can be bootstrapped from ``V(final_obs)``, no step is wasted on a reset,
  and every episode of every env starts from a seed that the run's seed determines.
* **Torch tensors on one device.** Observations, rewards and flags come back as tensors on
  ``device``; actions go in as tensors.

Adapters:

* :class:`GymVectorEnv`: gymnasium 1.x vector envs, sync or async (:func:`make_gym_vector_env`
  builds them). Gymnasium's own autoreset modes do not allow a seed per episode (``NEXT_STEP``,
  its default, also spends one step per reset with the action ignored), so the adapter builds
  the vector env with ``AutoresetMode.DISABLED`` and resets the ended envs itself with
  ``reset(seed=[...], options={"reset_mask": ended})`` in the same call. A user's vector env in
  ``SAME_STEP`` mode is accepted too (its autoresets then draw from each env's own RNG, so a
  resumed run restarts the interrupted episodes instead of replaying them); ``NEXT_STEP`` is
  refused with the fix.
* :class:`ArrayVecEnv`: an array-native batched env (:class:`ArrayEnv`: functional, whole batch
  on one device, no autoreset), e.g. a torch env living on the agent's GPU. Its state is a pytree
  of tensors, checkpointed as it is (:meth:`BatchedEnv.env_state`).
* :class:`JaxVecEnv`: a gymnax-style JAX env (Craftax) as an :class:`ArrayEnv`: ``reset_env`` and
  ``step_env`` are ``vmap``-ped and ``jit``-ted, and arrays cross to torch through DLPack without a
  copy (on the same device).

Exact resume: an env with a state (:meth:`BatchedEnv.env_state` not None) is restored from it; a
gymnasium env (state in a simulator, never pickled) is rebuilt by :meth:`BatchedEnv.replay`: each
sub-environment is reset with its current episode's seed and replays that episode's actions,
which reproduces it exactly when the simulator is deterministic given both (MuJoCo, classic
control and most are). The loop checks the replayed observation against the checkpointed one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import Tensor

__all__ = [
    "ArrayEnv",
    "ArrayVecEnv",
    "BatchedEnv",
    "GymVectorEnv",
    "JaxVecEnv",
    "StepResult",
    "make_gym_vector_env",
]

VectorMode = Literal["sync", "async"]
_GymVec = gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv


class StepResult(NamedTuple):
    """One step of N environments (see the module doc for the autoreset rule).

    Attributes:
        obs: ``(N, *obs_shape)`` the observation to act on next: the first observation of the
            next episode where an episode ended at this step.
        reward: ``(N,)`` float32 rewards of this step.
        terminated: ``(N,)`` bool, the episode reached a terminal state (do not bootstrap).
        truncated: ``(N,)`` bool, the episode was cut (time limit): bootstrap from ``final_obs``.
        final_obs: ``(N, *obs_shape)`` the true next observation of this step (equal to ``obs``
            where no episode ended).
    """

    obs: Tensor
    reward: Tensor
    terminated: Tensor
    truncated: Tensor
    final_obs: Tensor


ResetSeed = Callable[[int], int]
"""``reset_seed(env_index) -> seed`` of the next episode of that env (called once per reset)."""


@runtime_checkable
class BatchedEnv(Protocol):
    """What the on-policy loop needs from N environments."""

    @property
    def num_envs(self) -> int:
        """N."""
        ...

    @property
    def single_observation_space(self) -> gym.Space[Any]:
        """The space of one env's observation."""
        ...

    @property
    def single_action_space(self) -> gym.Space[Any]:
        """The space of one env's action."""
        ...

    @property
    def device(self) -> torch.device:
        """Where observations, rewards and flags are returned."""
        ...

    def reset(self, seeds: Sequence[int]) -> Tensor:
        """Reset env ``i`` with ``seeds[i]``; returns the ``(N, *obs_shape)`` observations."""
        ...

    def step(self, actions: Tensor, reset_seed: ResetSeed) -> StepResult:
        """Step every env with ``actions`` ``(N, *action_shape)``; ended envs are reset at once
        with ``reset_seed(i)``."""
        ...

    def env_state(self) -> Any | None:
        """The whole batch's state as a pytree of CPU tensors, or None if it cannot be read
        (gymnasium simulators: resume replays actions instead)."""
        ...

    def load_env_state(self, state: Any) -> Tensor:
        """Restore :meth:`env_state` output; returns the current observations."""
        ...

    def replay(self, seeds: Sequence[int], actions: Sequence[Sequence[Any]]) -> Tensor:
        """Reset env ``i`` with ``seeds[i]`` and step it with ``actions[i]`` (no autoreset);
        returns the observations reached. Raises NotImplementedError where unsupported."""
        ...

    def close(self) -> None:
        """Release the environments (worker processes of an async vector env)."""
        ...


# --------------------------------------------------------------------------------------------
# gymnasium vector envs


class _Replayable(gym.Wrapper[Any, Any, Any, Any]):
    """Outermost wrapper of each sub-env built by :func:`make_gym_vector_env`: lets the adapter
    replay one episode prefix in that sub-env, also inside an async worker process."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.replay_request: tuple[int, list[Any]] | None = None

    def apply_replay(self) -> Any:
        """Reset with the requested seed and step the requested actions; returns the obs."""
        if self.replay_request is None:
            return None
        seed, actions = self.replay_request
        self.replay_request = None
        obs, _ = self.env.reset(seed=seed)
        for action in actions:
            obs, _, terminated, truncated, _ = self.env.step(action)
            if terminated or truncated:  # the replay went another way than the recorded episode
                break
        return obs


def make_gym_vector_env(
    env: str | Callable[[], gym.Env[Any, Any]],
    num_envs: int,
    *,
    mode: VectorMode = "sync",
    device: torch.device | str = "cpu",
    **make_kwargs: Any,
) -> GymVectorEnv:
    """N copies of a gymnasium environment as a :class:`GymVectorEnv`.

    Args:
        env: A registered id (``gym.make(env, **make_kwargs)``) or a function making one env.
        num_envs: N (>= 1).
        mode: ``"sync"`` (one process, envs stepped in turn) or ``"async"`` (one worker process
            per env, stepped in parallel; pays off when a step costs more than the transfer).
        device: Where observations and rewards are returned.
        **make_kwargs: Passed to ``gym.make`` with an id.
    """
    if num_envs < 1:
        raise ValueError(f"--loop.num-envs must be >= 1, got {num_envs}")
    if mode not in ("sync", "async"):
        raise ValueError(f"--loop.vector-mode must be 'sync' or 'async', got {mode!r}")
    if isinstance(env, str):
        env_id = env

        def make_one() -> gym.Env[Any, Any]:
            return _Replayable(gym.make(env_id, **make_kwargs))
    else:
        factory = env

        def make_one() -> gym.Env[Any, Any]:
            return _Replayable(factory())

    fns = [make_one for _ in range(num_envs)]
    vec: _GymVec
    if mode == "sync":
        vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED)
    else:
        vec = gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED)
    return GymVectorEnv(vec, device=device)


def _obs_tensor(obs: Any, device: torch.device) -> Tensor:
    t = torch.tensor(np.asarray(obs))  # a copy: vector envs reuse their output buffers
    if t.dtype == torch.float64:
        t = t.float()
    return t.to(device, non_blocking=True)


class GymVectorEnv:
    """A gymnasium 1.x vector env (sync or async) as a :class:`BatchedEnv`.

    Args:
        env: The vector env, in ``AutoresetMode.DISABLED`` (what :func:`make_gym_vector_env`
            builds) or ``SAME_STEP`` mode; observations must be arrays (Box, Discrete, ...).
        device: Where observations and rewards are returned.

    Raises:
        ValueError: the vector env autoresets in ``NEXT_STEP`` mode.
    """

    def __init__(self, env: _GymVec, *, device: torch.device | str):
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode == AutoresetMode.NEXT_STEP:
            raise ValueError(
                "the vector env autoresets in NEXT_STEP mode (a wasted step per reset, no seed per "
                "episode): build it with autoreset_mode=AutoresetMode.DISABLED, as "
                "rl_runtime.vecenv.make_gym_vector_env does"
            )
        self.env = env
        self._mode = mode
        self._device = torch.device(device)
        self._action_space = env.single_action_space

    @property
    def num_envs(self) -> int:
        return self.env.num_envs

    @property
    def single_observation_space(self) -> gym.Space[Any]:
        return self.env.single_observation_space

    @property
    def single_action_space(self) -> gym.Space[Any]:
        return self._action_space

    @property
    def device(self) -> torch.device:
        return self._device

    def reset(self, seeds: Sequence[int]) -> Tensor:
        obs, _ = self.env.reset(seed=[int(s) for s in seeds])  # pyright: ignore[reportArgumentType]
        return _obs_tensor(obs, self._device)

    def _env_actions(self, actions: Tensor) -> np.ndarray:
        a = actions.detach().cpu().numpy()
        space = self._action_space
        expected = (self.num_envs, *(space.shape or ()))
        if a.shape != expected:
            raise ValueError(f"actions: expected shape {expected}, got {a.shape}")
        return a.astype(space.dtype, copy=False) if space.dtype is not None else a

    def step(self, actions: Tensor, reset_seed: ResetSeed) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(self._env_actions(actions))
        step_obs = _obs_tensor(obs, self._device)
        ended = np.logical_or(terminated, truncated)
        final_obs = next_obs = step_obs
        if ended.any():
            ended_idx = np.flatnonzero(ended).tolist()
            if self._mode == AutoresetMode.DISABLED:
                seeds: list[int | None] = [None] * self.num_envs
                for i in ended_idx:
                    seeds[i] = reset_seed(i)
                obs, _ = self.env.reset(seed=seeds, options={"reset_mask": ended})  # pyright: ignore[reportArgumentType]
                next_obs = _obs_tensor(obs, self._device)
            else:  # SAME_STEP: obs holds the reset observations, info the true last ones
                final_obs = step_obs.clone()
                for i in ended_idx:
                    reset_seed(i)  # keeps the caller's episode counters in step
                    final_obs[i] = _obs_tensor(info["final_obs"][i], self._device)
        return StepResult(
            obs=next_obs,
            reward=torch.as_tensor(np.asarray(reward, dtype=np.float32)).to(self._device),
            terminated=torch.as_tensor(np.asarray(terminated, dtype=np.bool_)).to(self._device),
            truncated=torch.as_tensor(np.asarray(truncated, dtype=np.bool_)).to(self._device),
            final_obs=final_obs,
        )

    def env_state(self) -> None:
        return None

    def load_env_state(self, state: Any) -> Tensor:
        raise NotImplementedError("a gymnasium vector env has no readable state; use replay")

    def replay(self, seeds: Sequence[int], actions: Sequence[Sequence[Any]]) -> Tensor:
        try:
            self.env.set_attr(
                "replay_request",
                [(int(s), list(a)) for s, a in zip(seeds, actions, strict=True)],
            )
            results = self.env.call("apply_replay")
        except AttributeError as e:
            raise NotImplementedError(
                "replay needs the sub-envs built by make_gym_vector_env"
            ) from e
        return torch.stack([_obs_tensor(o, self._device) for o in results])

    def close(self) -> None:
        self.env.close()


# --------------------------------------------------------------------------------------------
# array-native envs


class ArrayEnv(Protocol):
    """A functional batched env whose whole state lives in tensors on one device (no autoreset).

    ``reset(seeds, mask)`` resets the envs where ``mask`` (``(N,)`` bool) holds, env ``i`` from
    ``seeds[i]`` (``(N,)`` int64), and returns the observations of all N envs; ``step`` returns
    ``(obs, reward, terminated, truncated)`` without resetting; ``state()`` / ``load_state()``
    give and take the state as a pytree (dicts, lists, tuples) of tensors, including any random
    key.
    """

    num_envs: int
    single_observation_space: gym.Space[Any]
    single_action_space: gym.Space[Any]
    device: torch.device

    def reset(self, seeds: Tensor, mask: Tensor) -> Tensor: ...

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]: ...

    def state(self) -> Any: ...

    def load_state(self, state: Any) -> None: ...


def _tree_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}  # type: ignore[misc]
    if isinstance(tree, list | tuple):
        return type(tree)(_tree_map(fn, v) for v in tree)  # type: ignore[misc]
    return fn(tree)


class ArrayVecEnv:
    """An :class:`ArrayEnv` as a :class:`BatchedEnv`: same-step autoreset done with tensor ops
    on the env's device, the state checkpointed as a pytree.

    Args:
        env: The array-native env.
    """

    def __init__(self, env: ArrayEnv) -> None:
        self.env = env
        self._obs: Tensor | None = None

    @property
    def num_envs(self) -> int:
        return self.env.num_envs

    @property
    def single_observation_space(self) -> gym.Space[Any]:
        return self.env.single_observation_space

    @property
    def single_action_space(self) -> gym.Space[Any]:
        return self.env.single_action_space

    @property
    def device(self) -> torch.device:
        return self.env.device

    def _seeds(self, seeds: Sequence[int]) -> Tensor:
        return torch.tensor([int(s) for s in seeds], dtype=torch.int64, device=self.device)

    def reset(self, seeds: Sequence[int]) -> Tensor:
        mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._obs = self.env.reset(self._seeds(seeds), mask)
        return self._obs

    def step(self, actions: Tensor, reset_seed: ResetSeed) -> StepResult:
        obs, reward, terminated, truncated = self.env.step(actions)
        ended = terminated | truncated
        if bool(ended.any()):  # one host sync per step, for the per-episode seeds
            idx = torch.nonzero(ended).flatten().tolist()
            seeds = [0] * self.num_envs
            for i in idx:
                seeds[i] = reset_seed(i)
            reset_obs = self.env.reset(self._seeds(seeds), ended)
            # (N, *obs_shape): broadcast the (N,) mask over the observation dims
            mask = ended.reshape(-1, *([1] * (obs.dim() - 1)))
            next_obs = torch.where(mask, reset_obs, obs)
        else:
            next_obs = obs
        self._obs = next_obs
        return StepResult(next_obs, reward.float(), terminated, truncated, obs)

    def env_state(self) -> Any:
        if self._obs is None:
            raise RuntimeError("env_state() before reset()")
        state = {"env": self.env.state(), "obs": self._obs}
        return _tree_map(lambda t: t.detach().cpu().clone(), state)

    def load_env_state(self, state: Any) -> Tensor:
        state = _tree_map(lambda t: t.to(self.device), state)
        self.env.load_state(state["env"])
        self._obs = state["obs"]
        return state["obs"]

    def replay(self, seeds: Sequence[int], actions: Sequence[Sequence[Any]]) -> Tensor:
        raise NotImplementedError("array envs resume from their state, not by replay")

    def close(self) -> None:
        return None


class JaxVecEnv:
    """A gymnax-style JAX environment (Craftax's API) as an :class:`ArrayEnv`.

    The env must offer ``reset_env(key, params) -> (obs, state)`` and
    ``step_env(key, state, action, params) -> (obs, state, reward, done, info)`` (gymnax's
    un-reset step), with ``info["discount"]`` 0 at a terminal state; a ``done`` with discount 1 is
    a truncation (time limit). Both are ``vmap``-ped over N envs and ``jit``-ted. Observations
    and rewards reach torch through DLPack (no copy on the same device); actions go back the
    same way. Episode ``k`` of env ``i`` is reset from ``jax.random.key(seed)`` with the seed the
    loop gives; the step keys come from a key kept in the state, so the state pytree (env
    states, observations, key) is everything a checkpoint needs.

    Args:
        env: The gymnax-style environment.
        params: Its parameters (``env.default_params`` if None).
        num_envs: N.
        observation_space, action_space: One env's spaces (gymnasium), for the agent.
        seed: Seed of the step-key stream.
        device: The torch device matching JAX's default device.
    """

    def __init__(
        self,
        env: Any,
        params: Any,
        *,
        num_envs: int,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        seed: int,
        device: torch.device | str = "cpu",
    ) -> None:
        import jax  # optional: rl-runtime[jax]

        self._jax = jax
        self.num_envs = num_envs
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.device = torch.device(device)
        params = env.default_params if params is None else params

        def reset_one(seed: Any) -> Any:
            return env.reset_env(jax.random.key(seed), params)

        def step_all(key: Any, states: Any, actions: Any) -> Any:
            keys = jax.random.split(key, num_envs + 1)
            obs, states, reward, done, info = jax.vmap(
                lambda k, s, a: env.step_env(k, s, a, params)
            )(keys[1:], states, actions)
            terminated = done & (info["discount"] == 0)
            return keys[0], obs, states, reward, terminated, done & ~terminated

        def reset_masked(seeds: Any, mask: Any, obs: Any, states: Any) -> Any:
            new_obs, new_states = jax.vmap(reset_one)(seeds)

            def pick(new: Any, old: Any) -> Any:
                m = mask.reshape(mask.shape + (1,) * (new.ndim - 1))
                return jax.numpy.where(m, new, old)

            return pick(new_obs, obs), jax.tree_util.tree_map(pick, new_states, states)

        self._step = jax.jit(step_all)
        self._reset = jax.jit(reset_masked)
        self._key = jax.random.key(seed)
        seeds = jax.numpy.zeros(num_envs, dtype=jax.numpy.uint32)
        self._obs, self._states = jax.vmap(reset_one)(seeds)

    def _to_torch(self, x: Any) -> Tensor:
        return torch.from_dlpack(x)

    def _to_jax(self, t: Tensor) -> Any:
        return self._jax.dlpack.from_dlpack(t.contiguous())

    def reset(self, seeds: Tensor, mask: Tensor) -> Tensor:
        jnp = self._jax.numpy
        s = jnp.asarray(seeds.cpu().numpy().astype(np.uint32))
        m = jnp.asarray(mask.cpu().numpy())
        self._obs, self._states = self._reset(s, m, self._obs, self._states)
        return self._to_torch(self._obs)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        self._key, self._obs, self._states, reward, terminated, truncated = self._step(
            self._key, self._states, self._to_jax(actions)
        )
        return (
            self._to_torch(self._obs),
            self._to_torch(reward),
            self._to_torch(terminated),
            self._to_torch(truncated),
        )

    def state(self) -> Any:
        jax = self._jax
        leaves, _ = jax.tree_util.tree_flatten(self._states)
        return {
            "obs": torch.from_numpy(np.asarray(self._obs).copy()),
            "env": [torch.from_numpy(np.asarray(leaf).copy()) for leaf in leaves],
            "key": torch.from_numpy(np.asarray(jax.random.key_data(self._key)).copy()),
        }

    def load_state(self, state: Any) -> None:
        jax = self._jax
        jnp = jax.numpy
        _, treedef = jax.tree_util.tree_flatten(self._states)
        self._states = jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(t.cpu().numpy()) for t in state["env"]]
        )
        self._obs = jnp.asarray(state["obs"].cpu().numpy())
        self._key = jax.random.wrap_key_data(jnp.asarray(state["key"].cpu().numpy()))
