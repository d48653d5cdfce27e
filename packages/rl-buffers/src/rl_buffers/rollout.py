"""On-policy rollouts: GAE, lambda-returns and a preallocated time-major rollout storage.

Shapes use ``T`` for the rollout length (steps per env), ``N`` for the number of vectorised envs
and ``M = T * N`` for the flattened rollout. Every ``(T, N)`` tensor is time-major: ``x[t, n]`` is
step ``t`` of env ``n``.

Episode ends are given as two flags per step, never a bare ``done``:

* ``terminated[t]``: the MDP ended at step ``t``; the value after it is 0, so nothing is
  bootstrapped;
* ``episode_end[t] = terminated[t] | truncated[t]``: the *next* step belongs to a new episode, so
  the recursion over time is cut there. A truncated step still bootstraps from ``next_values[t]``,
  the value of its real final observation (not of the reset observation that a vector env returns
  in its place).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["RolloutBatch", "RolloutStorage", "gae", "lambda_returns"]


# ----------------------------------------------------------------------------- pure functions


def _check_unit(name: str, x: float, who: str) -> None:
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{who}: {name} must be in [0, 1], got {x}")


def _check_time_major(who: str, rewards: Tensor, **others: Tensor) -> None:
    """Shapes ``(T, N)`` equal to ``rewards``', float dtypes equal to it, bool flags, one device."""
    if rewards.ndim != 2 or rewards.shape[0] < 1:
        raise ValueError(f"{who}: rewards must be (T, N) with T >= 1, got {tuple(rewards.shape)}")
    if not rewards.dtype.is_floating_point:
        raise ValueError(f"{who}: rewards must be a float tensor, got {rewards.dtype}")
    for name, x in others.items():
        if x.shape != rewards.shape:
            raise ValueError(
                f"{who}: {name} must have the shape of rewards {tuple(rewards.shape)}, "
                f"got {tuple(x.shape)}"
            )
        flag = name in ("terminated", "episode_end")
        if flag and x.dtype != torch.bool:
            raise ValueError(f"{who}: {name} must be a bool tensor, got {x.dtype}")
        if not flag and x.dtype != rewards.dtype:
            raise ValueError(
                f"{who}: {name} must have the dtype of rewards ({rewards.dtype}), got {x.dtype}"
            )
        if x.device != rewards.device:
            raise ValueError(
                f"{who}: {name} is on {x.device}, rewards on {rewards.device}; "
                "pass all inputs on one device"
            )


def _check_terminated_ends(who: str, terminated: Tensor, episode_end: Tensor) -> None:
    # A terminated step that does not end the episode would let the recursion run on into the
    # next episode; it is always a caller bug (episode_end = terminated | truncated).
    if bool((terminated & ~episode_end).any()):
        raise ValueError(
            f"{who}: episode_end must be true wherever terminated is "
            "(episode_end = terminated | truncated)"
        )


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    episode_end: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over a time-major rollout.

    For each env, going backwards from the last step with ``A_T = 0``::

        delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
        A_t     = delta_t + gamma * lam * (1 - episode_end_t) * A_{t+1}

    and ``returns = A + values``. A truncated step bootstraps from ``next_values_t`` (the value of
    its real final observation) and, because ``episode_end_t`` cuts the recursion, nothing of the
    following episode leaks into it. A terminated step does not bootstrap at all. The last step of
    the rollout bootstraps from ``next_values_{T-1}``, the value of the observation after it.

    The function does not detach anything: call it under ``torch.no_grad()`` (or on detached
    values), as the targets of a PPO update are constants.

    Args:
        rewards: ``(T, N)`` float rewards; its dtype is the dtype of the computation.
        values: ``(T, N)`` ``V(s_t)`` in the dtype of ``rewards``.
        next_values: ``(T, N)`` ``V`` of the true next state of step ``t``, in the dtype of
            ``rewards``. Its value at a terminated step is ignored.
        terminated: ``(T, N)`` bool, true where step ``t`` terminated the episode.
        episode_end: ``(T, N)`` bool, ``terminated | truncated``.
        gamma: Discount factor in ``[0, 1]``.
        lam: GAE lambda in ``[0, 1]``: 0 gives one-step TD errors, 1 Monte-Carlo returns
            (bootstrapped at truncations and at the end of the rollout) minus ``values``.

    Returns:
        ``(advantages, returns)``, each ``(T, N)`` in the dtype of ``rewards``.

    Raises:
        ValueError: on shapes other than ``(T, N)``, mismatched dtypes or devices, non-bool
            flags, a terminated step that is not an episode end, or ``gamma``/``lam`` outside
            ``[0, 1]``. The message names the argument.
    """
    who = "gae"
    _check_time_major(
        who,
        rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        episode_end=episode_end,
    )
    _check_unit("gamma", gamma, who)
    _check_unit("lam", lam, who)
    _check_terminated_ends(who, terminated, episode_end)

    dtype = rewards.dtype
    not_terminated = (~terminated).to(dtype)  # (T, N)
    not_end = (~episode_end).to(dtype)  # (T, N)
    deltas = rewards + gamma * not_terminated * next_values - values  # (T, N)
    advantages = torch.empty_like(deltas)  # (T, N)
    next_advantage = torch.zeros_like(deltas[0])  # (N,): A_T = 0 beyond the rollout
    for t in range(rewards.shape[0] - 1, -1, -1):
        # not_end cuts the recursion: A_{t+1} belongs to the next episode after an end.
        next_advantage = deltas[t] + gamma * lam * not_end[t] * next_advantage
        advantages[t] = next_advantage
    return advantages, advantages + values


def lambda_returns(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    episode_end: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """Lambda-returns over a time-major rollout: PQN's Q(lambda) targets, or TD(lambda) targets.

    Going backwards from the last step::

        G_t = r_t + gamma * (1 - terminated_t)
                      * [(1 - lam * c_t) * next_values_t + lam * c_t * G_{t+1}]

    with ``c_t = 1 - episode_end_t`` for ``t < T - 1`` and ``c_{T-1} = 0``: the last step of the
    rollout, and every step that ends an episode, bootstraps from ``next_values_t`` alone (a
    truncated step from the value of its real final observation; a terminated one from nothing).

    In PQN (Gallici et al. 2024) ``next_values_t = max_a Q_target(s_{t+1}, a)``. With
    ``next_values_t = V(s_{t+1})``, i.e. ``values[t + 1]`` for every step that does not end an
    episode and is not the last, the result equals the ``returns`` of :func:`gae` with the same
    ``gamma`` and ``lam`` (``G_t = A_t + V(s_t)``); the tests check this identity.

    Args:
        rewards: ``(T, N)`` float rewards; its dtype is the dtype of the computation.
        next_values: ``(T, N)`` value of the true next state of step ``t``, in the dtype of
            ``rewards``. Its value at a terminated step is ignored.
        terminated: ``(T, N)`` bool, true where step ``t`` terminated the episode.
        episode_end: ``(T, N)`` bool, ``terminated | truncated``.
        gamma: Discount factor in ``[0, 1]``.
        lam: Lambda in ``[0, 1]``: 0 gives one-step targets ``r + gamma * next_values``, 1
            Monte-Carlo returns bootstrapped at truncations and at the end of the rollout.

    Returns:
        ``(T, N)`` returns in the dtype of ``rewards``.

    Raises:
        ValueError: on shapes other than ``(T, N)``, mismatched dtypes or devices, non-bool
            flags, a terminated step that is not an episode end, or ``gamma``/``lam`` outside
            ``[0, 1]``. The message names the argument.
    """
    who = "lambda_returns"
    _check_time_major(
        who, rewards, next_values=next_values, terminated=terminated, episode_end=episode_end
    )
    _check_unit("gamma", gamma, who)
    _check_unit("lam", lam, who)
    _check_terminated_ends(who, terminated, episode_end)

    dtype = rewards.dtype
    not_terminated = (~terminated).to(dtype)  # (T, N)
    cont = (~episode_end).to(dtype)  # (T, N): c_t
    returns = torch.empty_like(rewards)  # (T, N)
    next_return = torch.zeros_like(rewards[0])  # (N,), multiplied by c_{T-1} = 0 below
    last = rewards.shape[0] - 1
    for t in range(last, -1, -1):
        mix = lam * cont[t] if t < last else torch.zeros_like(next_return)  # (N,): lam * c_t
        bootstrap = (1.0 - mix) * next_values[t] + mix * next_return  # (N,)
        next_return = rewards[t] + gamma * not_terminated[t] * bootstrap
        returns[t] = next_return
    return returns


# ----------------------------------------------------------------------------- storage


class RolloutBatch(NamedTuple):
    """A minibatch of ``M`` flattened rollout steps for a PPO-style update.

    ``M`` is ``T * N / num_minibatches``; the steps are drawn without replacement from the whole
    rollout, so they mix envs and time steps. All tensors are on the storage's device.

    Attributes:
        obs: ``(M, *obs_shape)`` in the storage's ``obs_dtype``: the observation before the step.
        actions: ``(M, *action_shape)`` in the storage's ``action_dtype``.
        log_probs: ``(M,)`` float32 log-probabilities of ``actions`` under the behaviour policy.
        values: ``(M,)`` float32 ``V(obs)`` when the step was taken.
        advantages: ``(M,)`` float32 GAE advantages (not normalised).
        returns: ``(M,)`` float32 value targets, ``advantages + values``.
    """

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor


_FLOAT_FIELDS = ("log_probs", "values", "rewards", "next_values")
_FLAG_FIELDS = ("terminated", "truncated")
_TARGET_FIELDS = ("advantages", "returns")


class RolloutStorage:
    """Preallocated time-major storage for ``T`` steps of ``N`` vectorised envs.

    The loop calls :meth:`add` once per vector step, :meth:`compute` once the storage is
    :attr:`full`, then iterates :meth:`minibatches` for each epoch, and :meth:`reset` before the
    next rollout::

        storage = RolloutStorage(128, 8, (4,), (), action_dtype=torch.int64, device="cpu")
        for t in range(128):
            ...
            storage.add(obs, actions, log_probs, values, rewards, terminated, truncated,
                        next_values)
        storage.compute(gamma=0.99, lam=0.95)
        for epoch in range(4):
            for batch in storage.minibatches(4, generator):
                ...
        storage.reset()

    ``next_values[t]`` is supplied by the loop at every step: ``V(final observation)`` where a
    step was truncated (the loop reads the final observation from the env's info), and
    ``V(next observation)`` otherwise. At a terminated step it is ignored.

    Float fields (``log_probs``, ``values``, ``rewards``, ``next_values``, ``advantages``,
    ``returns``) are stored in float32; ``terminated``/``truncated`` as bool.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: Sequence[int],
        action_shape: Sequence[int],
        *,
        obs_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.float32,
        device: torch.device | str,
    ) -> None:
        """Allocate the storage.

        Args:
            num_steps: ``T``, steps per env in a rollout (>= 1).
            num_envs: ``N``, number of envs stepped together (>= 1).
            obs_shape: Shape of one env's observation (``()`` for a scalar).
            action_shape: Shape of one env's action (``()`` for a discrete index).
            obs_dtype: Dtype observations are stored in and must arrive in.
            action_dtype: Dtype actions are stored in and must arrive in (``torch.int64`` for
                discrete actions).
            device: Where all tensors live; chosen by the caller.

        Raises:
            ValueError: on a non-positive ``num_steps``/``num_envs`` or a negative dimension.
        """
        if num_steps < 1:
            raise ValueError(f"RolloutStorage: num_steps must be >= 1, got {num_steps}")
        if num_envs < 1:
            raise ValueError(f"RolloutStorage: num_envs must be >= 1, got {num_envs}")
        for name, shape in (("obs_shape", obs_shape), ("action_shape", action_shape)):
            if any(d < 0 for d in shape):
                raise ValueError(f"RolloutStorage: {name} must be non-negative, got {shape}")
        self.num_steps = num_steps
        self.num_envs = num_envs
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.action_shape = tuple(int(d) for d in action_shape)
        self.device = torch.device(device)
        tn = (num_steps, num_envs)
        dev = self.device
        # Every field is (T, N, *per-env shape).
        self._fields: dict[str, Tensor] = {
            "obs": torch.zeros(*tn, *self.obs_shape, dtype=obs_dtype, device=dev),
            "actions": torch.zeros(*tn, *self.action_shape, dtype=action_dtype, device=dev),
        }
        for name in _FLOAT_FIELDS + _TARGET_FIELDS:
            self._fields[name] = torch.zeros(tn, dtype=torch.float32, device=dev)
        for name in _FLAG_FIELDS:
            self._fields[name] = torch.zeros(tn, dtype=torch.bool, device=dev)
        self._pos = 0
        self._computed = False

    # --------------------------------------------------------------------- views

    @property
    def full(self) -> bool:
        """Whether all ``T`` steps of the rollout have been written."""
        return self._pos == self.num_steps

    @property
    def computed(self) -> bool:
        """Whether :meth:`compute` has filled advantages and returns for this rollout."""
        return self._computed

    def __len__(self) -> int:
        """Number of steps written since the last :meth:`reset` (each covers ``N`` envs)."""
        return self._pos

    @property
    def rewards(self) -> Tensor:
        """``(T, N)`` float32 rewards written so far (rows ``>= len(self)`` are stale)."""
        return self._fields["rewards"]

    @property
    def values(self) -> Tensor:
        """``(T, N)`` float32 ``V(obs)`` written so far (rows ``>= len(self)`` are stale)."""
        return self._fields["values"]

    @property
    def advantages(self) -> Tensor:
        """``(T, N)`` float32 GAE advantages, valid after :meth:`compute`."""
        return self._fields["advantages"]

    @property
    def returns(self) -> Tensor:
        """``(T, N)`` float32 value targets ``advantages + values``, valid after :meth:`compute`."""
        return self._fields["returns"]

    # --------------------------------------------------------------------- writing

    def add(
        self,
        obs: Tensor,
        actions: Tensor,
        log_probs: Tensor,
        values: Tensor,
        rewards: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        next_values: Tensor,
        *,
        check: bool = True,
    ) -> None:
        """Write one vector step for all ``N`` envs.

        Tensors may live on any device; they are copied to the storage's device.

        Args:
            obs: ``(N, *obs_shape)`` in ``obs_dtype``: the observation the actions were taken in.
            actions: ``(N, *action_shape)`` in ``action_dtype``.
            log_probs: ``(N,)`` float log-probabilities of ``actions`` under the acting policy.
            values: ``(N,)`` float ``V(obs)``.
            rewards: ``(N,)`` float.
            terminated: ``(N,)`` bool.
            truncated: ``(N,)`` bool.
            next_values: ``(N,)`` float value of the true next state: ``V(final observation)``
                at a truncation, ``V(next observation)`` otherwise (ignored where terminated).

            check: Validate every field's shape and dtype (a loop whose inputs cannot change
                between steps may check the first step of each rollout only).

        Raises:
            ValueError: on a wrong shape or dtype, naming the field.
            RuntimeError: if the storage is already full (call :meth:`reset`).
        """
        if self.full:
            raise RuntimeError(
                f"RolloutStorage.add: the storage is full ({self.num_steps} steps); call reset()"
            )
        step = {
            "obs": obs,
            "actions": actions,
            "log_probs": log_probs,
            "values": values,
            "rewards": rewards,
            "terminated": terminated,
            "truncated": truncated,
            "next_values": next_values,
        }
        if check:
            for name, x in step.items():
                self._check_step_field(name, x)
        for name, x in step.items():
            self._fields[name][self._pos].copy_(x)
        self._pos += 1

    def _check_step_field(self, name: str, x: Tensor) -> None:
        store = self._fields[name]
        expected = tuple(store.shape[1:])  # (N, *per-env shape)
        if not isinstance(x, Tensor):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ValueError(f"RolloutStorage.add: {name} must be a torch.Tensor, got {type(x)}")
        if tuple(x.shape) != expected:
            raise ValueError(
                f"RolloutStorage.add: {name} must have shape {expected}, got {tuple(x.shape)}"
            )
        if name in _FLOAT_FIELDS:
            if not x.dtype.is_floating_point:
                raise ValueError(
                    f"RolloutStorage.add: {name} must be a float tensor, got {x.dtype}"
                )
        elif x.dtype != store.dtype:
            raise ValueError(
                f"RolloutStorage.add: {name} must have dtype {store.dtype}, got {x.dtype}"
            )

    def reset(self) -> None:
        """Start the next rollout: the write position goes back to 0 (the data is overwritten)."""
        self._pos = 0
        self._computed = False

    # --------------------------------------------------------------------- targets

    def compute(self, gamma: float, lam: float) -> None:
        """Fill ``advantages`` and ``returns`` with :func:`gae` over the full rollout.

        Args:
            gamma: Discount factor in ``[0, 1]``.
            lam: GAE lambda in ``[0, 1]``.

        Raises:
            RuntimeError: if the storage is not full.
            ValueError: on ``gamma``/``lam`` outside ``[0, 1]``.
        """
        if not self.full:
            raise RuntimeError(
                f"RolloutStorage.compute: the rollout has {self._pos} of {self.num_steps} steps; "
                "compute needs a full rollout"
            )
        f = self._fields
        with torch.no_grad():
            advantages, returns = gae(
                f["rewards"],
                f["values"],
                f["next_values"],
                f["terminated"],
                f["terminated"] | f["truncated"],
                gamma,
                lam,
            )
        f["advantages"].copy_(advantages)
        f["returns"].copy_(returns)
        self._computed = True

    # --------------------------------------------------------------------- reading

    def minibatches(
        self, num_minibatches: int, generator: torch.Generator
    ) -> Iterator[RolloutBatch]:
        """One epoch of minibatches: a random permutation of all ``T * N`` steps, split evenly.

        The permutation is drawn when this method is called (not when iteration starts), from
        ``generator`` only; the same generator state gives the same minibatches.

        Args:
            num_minibatches: How many minibatches; must divide ``T * N``.
            generator: Random source, on any device (the permutation is moved to the storage's).

        Returns:
            An iterator over ``num_minibatches`` :class:`RolloutBatch` es of
            ``M = T * N / num_minibatches`` steps each, covering every step exactly once.

        Raises:
            ValueError: if ``num_minibatches`` is < 1 or does not divide ``T * N``.
            RuntimeError: if :meth:`compute` has not been called for this rollout.
        """
        total = self.num_steps * self.num_envs
        if num_minibatches < 1 or total % num_minibatches != 0:
            raise ValueError(
                f"RolloutStorage.minibatches: num_minibatches must be >= 1 and divide "
                f"T * N = {self.num_steps} * {self.num_envs} = {total}, got {num_minibatches}"
            )
        if not self._computed:
            raise RuntimeError("RolloutStorage.minibatches: call compute() first")
        perm = torch.randperm(total, generator=generator, device=generator.device)  # (T * N,)
        return self._iterate(perm.to(self.device), total // num_minibatches)

    def _iterate(self, perm: Tensor, size: int) -> Iterator[RolloutBatch]:
        f = self._fields
        # (T, N, *shape) -> (T * N, *shape); flat index i is step i // N of env i % N.
        flat = {name: x.flatten(0, 1) for name, x in f.items()}
        for start in range(0, perm.numel(), size):
            idx = perm[start : start + size]  # (M,)
            yield RolloutBatch(
                obs=flat["obs"][idx],
                actions=flat["actions"][idx],
                log_probs=flat["log_probs"][idx],
                values=flat["values"][idx],
                advantages=flat["advantages"][idx],
                returns=flat["returns"][idx],
            )

    # --------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """CPU copies of every field, the write position and whether targets were computed."""
        return {
            "fields": {name: x.cpu().clone() for name, x in self._fields.items()},
            "pos": self._pos,
            "computed": self._computed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` of a storage with the same sizes, shapes and dtypes.

        Raises:
            ValueError: on missing fields, or a field whose shape or dtype differs, naming it.
        """
        fields: dict[str, Tensor] = state["fields"]
        if set(fields) != set(self._fields):
            raise ValueError(
                f"RolloutStorage.load_state_dict: state fields {sorted(fields)} != "
                f"storage fields {sorted(self._fields)}"
            )
        for name, mine in self._fields.items():
            theirs = fields[name]
            if theirs.shape != mine.shape or theirs.dtype != mine.dtype:
                raise ValueError(
                    f"RolloutStorage.load_state_dict: field {name!r}: state has "
                    f"{tuple(theirs.shape)} {theirs.dtype}, storage has {tuple(mine.shape)} "
                    f"{mine.dtype}"
                )
        pos = int(state["pos"])
        if not 0 <= pos <= self.num_steps:
            raise ValueError(
                f"RolloutStorage.load_state_dict: pos must be in [0, {self.num_steps}], got {pos}"
            )
        for name, mine in self._fields.items():
            mine.copy_(fields[name])
        self._pos = pos
        self._computed = bool(state["computed"])
