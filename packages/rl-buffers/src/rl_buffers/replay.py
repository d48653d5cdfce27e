"""The replay buffer: :class:`~rl_buffers.storage.TransitionStorage` plus a :class:`~rl_buffers.samplers.Sampler`."""

from __future__ import annotations

import os
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from rl_buffers import io as rio
from rl_buffers.batches import NStepBatch, SubTrajectoryBatch, TransitionBatch, nstep_batch
from rl_buffers.samplers import Sampler, UniformSampler, sampler_from_config
from rl_buffers.spec import ArrayLike, TransitionSpec
from rl_buffers.storage import ChunkEvents, TransitionStorage, Window

__all__ = ["ReplayBuffer"]

_FORMAT = "rl_buffers.ReplayBuffer/1"


class ReplayBuffer:
    """Replay of one env's transition stream, sampled as transitions, n-step windows or sub-trajectories.

    Storage and sampling are separate objects: the storage keeps the last ``capacity``
    transitions (frames stored once, see :mod:`rl_buffers.storage`) and decides which starts
    have a complete ``horizon``-step window; the sampler draws among those starts (uniform, LAP
    or faded LAP, see :mod:`rl_buffers.samplers`).

    Args:
        spec: Shapes/dtypes of a transition; every ``add`` is validated against it.
        capacity: Number of transitions kept.
        device: Where transitions are stored and batches returned.
        sampler: How starts are drawn; default :class:`UniformSampler` ``(capacity)``. Must have
            the same capacity and be fresh (nothing inserted).
        horizon: Longest window that will be sampled (MR.Q: ``max(enc_horizon, Q_horizon) = 5``).
            Every sample method draws only starts whose ``horizon``-step window is complete,
            whatever length it then gathers (as MR.Q does).
        frame_capacity: Initial size of the frame ring (grows when needed); default
            ``capacity + capacity // 16 + 2 * history + 2``.

    Example::

        spec = TransitionSpec.continuous((17,), 6)
        buf = ReplayBuffer(spec=spec, capacity=1000, sampler=LAPSampler(1000), horizon=5)
        buf.add(obs, action, reward, next_obs, terminated, truncated)
        batch = buf.sample_nstep(256, torch.Generator().manual_seed(0), n=3, gamma=0.99)
        buf.update_priority(batch.indices, td_error)
    """

    def __init__(
        self,
        *,
        spec: TransitionSpec,
        capacity: int,
        device: torch.device | str = "cpu",
        sampler: Sampler | None = None,
        horizon: int = 1,
        frame_capacity: int | None = None,
    ) -> None:
        self._storage = TransitionStorage(
            spec=spec,
            capacity=capacity,
            device=device,
            horizon=horizon,
            frame_capacity=frame_capacity,
        )
        if sampler is None:
            sampler = UniformSampler(capacity)
        if not isinstance(sampler, Sampler):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"sampler must be a rl_buffers Sampler, got {type(sampler).__name__}")
        if sampler.capacity != capacity:
            raise ValueError(f"sampler capacity {sampler.capacity} != buffer capacity {capacity}")
        if sampler.num_active:
            raise ValueError("sampler is already in use by another buffer (it has active items)")
        self._sampler = sampler

    # ------------------------------------------------------------------ properties

    @property
    def spec(self) -> TransitionSpec:
        """What a transition looks like."""
        return self._storage.spec

    @property
    def capacity(self) -> int:
        """Number of transitions kept."""
        return self._storage.capacity

    @property
    def device(self) -> torch.device:
        """Device of the stored tensors and of sampled batches."""
        return self._storage.device

    @property
    def horizon(self) -> int:
        """Window length that decides which starts are sampleable."""
        return self._storage.horizon

    @property
    def sampler(self) -> Sampler:
        """The sampler (its device is where ``generator`` must live)."""
        return self._sampler

    @property
    def storage(self) -> TransitionStorage:
        """The underlying storage."""
        return self._storage

    @property
    def num_added(self) -> int:
        """Transitions ever added (the sampler clock for faded priorities)."""
        return self._storage.num_added

    @property
    def num_sampleable(self) -> int:
        """Number of starts that can currently be drawn."""
        return self._sampler.num_active

    def __len__(self) -> int:
        """Number of stored transitions, ``min(num_added, capacity)``."""
        return self._storage.size

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer(len={len(self)}, capacity={self.capacity}, horizon={self.horizon}, "
            f"sampler={type(self._sampler).__name__}, device={self.device})"
        )

    # ------------------------------------------------------------------ adding

    def _forward(self, events: list[ChunkEvents]) -> None:
        for ev in events:  # the storage's own distinct int64 slots: no need to re-check them
            self._sampler.insert(ev.inserted, check=False)
            if ev.activated.size:
                self._sampler.set_active(ev.activated, True, check=False)

    def add(
        self,
        obs: ArrayLike,
        action: ArrayLike,
        reward: ArrayLike,
        next_obs: ArrayLike,
        terminated: ArrayLike,
        truncated: ArrayLike,
    ) -> None:
        """Add one transition of the env.

        Episodes are delimited by ``terminated``/``truncated`` only: after a step with either,
        the next ``obs`` starts a new episode; otherwise it must equal this ``next_obs``.

        Args:
            obs: ``spec.stacked_obs_shape`` (numpy, tensor); uint8 for pixel specs, any floating
                dtype for float specs; finite.
            action: ``spec.action_shape`` float (finite) or, for discrete specs, an int in
                ``[0, num_actions)``.
            reward: Finite real scalar.
            next_obs: Like ``obs``: for a truncated step the real last observation.
            terminated: Whether the episode ended in a terminal state (no bootstrap).
            truncated: Whether it was cut by a time limit (bootstrap from ``next_obs``). A step
                that is both counts as terminated.

        Raises:
            ValueError: wrong shape, NaN/inf, discrete action out of range, or an ``obs`` that
                does not continue the running episode.
            TypeError: wrong dtype.
        """
        steps = self.spec.check_steps(
            obs, action, reward, next_obs, terminated, truncated, num_steps=None
        )
        self._forward(self._storage.append(steps))

    def extend(
        self,
        obs: ArrayLike,
        action: ArrayLike,
        reward: ArrayLike,
        next_obs: ArrayLike,
        terminated: ArrayLike,
        truncated: ArrayLike,
    ) -> None:
        """Add ``T`` consecutive transitions of the env at once (fields with a leading ``T`` axis).

        Stores exactly what ``T`` calls of :meth:`add` store, with the same sampleable starts and
        priorities, much faster. Only float rounding in faded weights and the order of the
        uniform sampler's internal list may differ, so a given generator state can draw a
        different (equally distributed) sequence than after ``T`` single adds.

        Args:
            obs: ``(T, *stacked_obs_shape)``.
            action: ``(T, *action_shape)``.
            reward: ``(T,)``.
            next_obs: ``(T, *stacked_obs_shape)``.
            terminated: ``(T,)`` bool.
            truncated: ``(T,)`` bool.
        """
        shape = tuple(reward.shape) if isinstance(reward, Tensor) else np.shape(reward)
        if len(shape) != 1:
            raise ValueError(f"reward: expected shape (T,), got {tuple(shape)}")
        steps = self.spec.check_steps(
            obs, action, reward, next_obs, terminated, truncated, num_steps=int(shape[0])
        )
        self._forward(self._storage.append(steps))

    # ------------------------------------------------------------------ sampling

    def _draw(
        self,
        batch_size: int,
        generator: torch.Generator,
        length: int,
        what: str,
        obs_steps: tuple[int, ...] | None = None,
    ) -> tuple[Tensor, Window]:
        if length > self.horizon:
            raise ValueError(
                f"{what}: window of {length} steps exceeds the buffer's horizon {self.horizon}; "
                "construct the buffer with a larger horizon"
            )
        slots = self._sampler.sample(batch_size, generator)
        window = self._storage.window(slots, length, obs_steps)
        return slots.to(self.device), window

    def sample(self, batch_size: int, generator: torch.Generator) -> TransitionBatch:
        """Draw ``batch_size`` one-step transitions.

        Args:
            batch_size: ``B``.
            generator: Random source on ``sampler.device``.

        Returns:
            A :class:`TransitionBatch` on :attr:`device`.
        """
        slots, w = self._draw(batch_size, generator, 1, "sample")
        return TransitionBatch(
            obs=w.obs[:, 0],
            action=w.action[:, 0],
            reward=w.reward[:, 0],
            next_obs=w.obs[:, 1],
            not_done=w.not_done[:, 0],
            indices=slots,
        )

    def sample_subtrajectory(
        self, batch_size: int, generator: torch.Generator, *, horizon: int | None = None
    ) -> SubTrajectoryBatch:
        """Draw ``batch_size`` windows of ``horizon`` steps (default: the buffer's horizon).

        Args:
            batch_size: ``B``.
            generator: Random source on ``sampler.device``.
            horizon: ``H <= self.horizon``.

        Returns:
            A :class:`SubTrajectoryBatch` on :attr:`device`.
        """
        h = self.horizon if horizon is None else horizon
        if h < 1:
            raise ValueError(f"sample_subtrajectory: horizon must be >= 1, got {h}")
        slots, w = self._draw(batch_size, generator, h, "sample_subtrajectory")
        return SubTrajectoryBatch(
            obs=w.obs,
            action=w.action,
            reward=w.reward,
            not_done=w.not_done,
            mask=w.mask,
            indices=slots,
        )

    def sample_nstep(
        self, batch_size: int, generator: torch.Generator, *, n: int, gamma: float
    ) -> NStepBatch:
        """Draw ``batch_size`` n-step transitions (returns stop at terminals, see :func:`n_step_returns`).

        Args:
            batch_size: ``B``.
            generator: Random source on ``sampler.device``.
            n: Steps ``1 <= n <= horizon`` (MR.Q: 3).
            gamma: Discount.

        Returns:
            An :class:`NStepBatch` on :attr:`device`.
        """
        if n < 1:
            raise ValueError(f"sample_nstep: n must be >= 1, got {n}")
        slots, w = self._draw(batch_size, generator, n, "sample_nstep", obs_steps=(0, n))
        return nstep_batch(
            obs=w.obs[:, 0],
            action=w.action[:, 0],
            rewards=w.reward_raw,
            not_done=w.not_done,
            bootstrap_obs=w.obs[:, 1],
            indices=slots,
            gamma=gamma,
        )

    def update_priority(self, indices: Tensor, td_error: Tensor) -> None:
        """Forward TD errors of a sampled batch to the sampler (no-op for uniform).

        Args:
            indices: ``(B,)`` int64 ``batch.indices``.
            td_error: ``(B,)`` TD errors; LAP priority ``max(|td|, min_priority) ** alpha``.
        """
        self._sampler.update_priority(indices, td_error)

    def reward_scale(self, eps: float = 1e-8) -> float:
        """Mean ``|r|`` over the stored transitions, at least ``eps`` (MR.Q's reward scale).

        Unlike official MR.Q, whose mean also counts one zero-reward terminal-observation slot
        per episode, this averages over real transitions only.
        """
        return max(self._storage.reward_abs_mean(), eps)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Storage and sampler state (CPU tensors / numpy), enough to resume exactly."""
        return {
            "format": _FORMAT,
            "storage": self._storage.state_dict(),
            "sampler_kind": self._sampler.kind,
            "sampler_config": self._sampler.config(),
            "sampler": self._sampler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` into a buffer built with the same spec, capacity,
        horizon and sampler kind/settings."""
        if state.get("format") != _FORMAT:
            raise ValueError(
                f"load_state_dict: not a ReplayBuffer state (format {state.get('format')!r})"
            )
        if state["sampler_kind"] != self._sampler.kind:
            raise ValueError(
                f"load_state_dict: state has a {state['sampler_kind']!r} sampler, this buffer a "
                f"{self._sampler.kind!r} one"
            )
        self._storage.load_state_dict(state["storage"])
        self._sampler.load_state_dict(state["sampler"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` atomically with an integrity header (:func:`rl_buffers.io.save`)."""
        rio.save(self.state_dict(), path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        device: torch.device | str | None = None,
        sampler_device: torch.device | str | None = None,
    ) -> ReplayBuffer:
        """Rebuild a buffer saved with :meth:`save`, ready to resume exactly.

        Args:
            path: File written by :meth:`save`.
            device: Storage device (default: the saved one).
            sampler_device: Device of a prioritised sampler (default: the saved one).

        Raises:
            rl_buffers.io.CorruptFileError: the file is truncated or corrupted.
        """
        raw: Any = rio.load(path)
        if not isinstance(raw, dict):
            raise rio.CorruptFileError(f"{path}: not a saved ReplayBuffer")
        state = cast(dict[str, Any], raw)
        if state.get("format") != _FORMAT:
            raise rio.CorruptFileError(f"{path}: not a saved ReplayBuffer")
        st: dict[str, Any] = state["storage"]
        spec = TransitionSpec.from_dict(st["spec"])
        capacity = int(st["capacity"])
        sampler = sampler_from_config(
            state["sampler_kind"], capacity, state["sampler_config"], device=sampler_device
        )
        buf = cls(
            spec=spec,
            capacity=capacity,
            device=st.get("device", "cpu") if device is None else device,
            sampler=sampler,
            horizon=int(st["horizon"]),
            frame_capacity=int(st["frame_capacity"]),
        )
        buf.load_state_dict(state)
        return buf
