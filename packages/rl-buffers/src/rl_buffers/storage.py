"""Ring storage of one env's transition stream, with frames stored once and windows that respect episodes.

Layout (``N`` = capacity, ``k`` = frame history):

* Transition ring, ``N`` slots: the transition with absolute index ``T`` (0, 1, 2, ... in the
  order added) lives in slot ``T % N``. Per slot: action, reward, ``terminated``, ``truncated``
  and ``frame_ptr``, the absolute index of the newest frame of its observation.
* Frame ring, ``F`` slots: every observation frame is written once. An episode's first
  transition writes the ``k`` frames of its observation, then every transition writes the
  newest frame of its next observation. Inside an episode the frames are therefore consecutive:
  the observation before step ``T`` is frames ``frame_ptr[T] - k + 1 .. frame_ptr[T]``, the one
  after is shifted by one, and ``frame_ptr[T + 1] == frame_ptr[T] + 1``. An episode costs
  ``k`` frames more than its length (the first stack and the final next observation) instead of
  doubling every observation into ``next_obs``.
* ``F`` starts at ``frame_capacity`` (default ``N + N // 16 + 2k + 2``) and grows by half
  whenever the frames of the ``N`` live transitions would not fit (only very short episodes
  cause that), so the ring always keeps exactly the last ``N`` transitions with all their frames.

Valid starts (the items a sampler may draw): a start ``T`` is valid when the ``horizon``-step
window ``T .. T + horizon - 1`` is usable, i.e. with ``e`` the first step ``>= T`` that ends its
episode:

* no end yet: the window must already be written (``T + horizon - 1 <= newest``), so a window
  never crosses the write head;
* ``e`` terminated: always valid; window steps after ``e`` are padding, masked by ``not_done``;
* ``e`` truncated: only if ``T + horizon - 1 <= e``, because the steps after a truncation belong
  to another episode and the value after the last real step is unknown (as in MR.Q).

A window never crosses into another episode, since it stops at ``e``; and it never reaches
evicted data, since it only looks forward from a live start. Starts become valid as windows
complete and invalid only when their slot is overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from rl_buffers._util import from_numpy, is_int
from rl_buffers.spec import CheckedSteps, TransitionSpec, numpy_dtype

__all__ = ["ChunkEvents", "TransitionStorage", "Window"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ChunkEvents:
    """What one appended chunk means for a sampler, in order.

    Attributes:
        inserted: ``(c,)`` int64 slots written, in insertion order (one clock tick each).
        activated: ``(m,)`` int64 slots that became valid starts.
    """

    inserted: IntArray
    activated: IntArray


class Window(NamedTuple):
    """Gathered windows of ``L`` steps from ``B`` starts (see :class:`~rl_buffers.SubTrajectoryBatch`).

    Attributes:
        obs: ``(B, P, *O)``: the requested observation positions, by default all ``P = L + 1``.
        action: ``(B, L, *action_shape)``.
        reward: ``(B, L)`` float32, 0 after a terminal.
        reward_raw: ``(B, L)`` float32 as stored, unmasked: after a terminal it holds unrelated
            data (:func:`~rl_buffers.n_step_returns` masks it itself).
        not_done: ``(B, L)`` float32 cumulative not-done.
        mask: ``(B, L)`` float32 real-step mask.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    reward_raw: Tensor
    not_done: Tensor
    mask: Tensor


class TransitionStorage:
    """Ring storage of the last ``capacity`` transitions of one env, on ``device``.

    Args:
        spec: What a transition looks like.
        capacity: Number of transitions kept ``N``.
        device: Where the tensors live (the caller chooses; nothing is probed).
        horizon: Longest window that will be sampled; decides which starts are valid.
        frame_capacity: Initial size of the frame ring (see the module docstring).
    """

    def __init__(
        self,
        *,
        spec: TransitionSpec,
        capacity: int,
        device: torch.device | str = "cpu",
        horizon: int = 1,
        frame_capacity: int | None = None,
    ) -> None:
        if not isinstance(spec, TransitionSpec):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"spec must be a TransitionSpec, got {type(spec).__name__}")
        if not is_int(capacity) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        if not is_int(horizon) or not 1 <= horizon <= capacity:
            raise ValueError(f"horizon must be an int in [1, capacity={capacity}], got {horizon!r}")
        k = spec.history
        min_frames = k + 1
        if frame_capacity is None:
            frame_capacity = capacity + capacity // 16 + 2 * k + 2
        elif not is_int(frame_capacity) or frame_capacity < min_frames:
            raise ValueError(
                f"frame_capacity must be >= history + 1 = {min_frames}, got {frame_capacity}"
            )
        self.spec = spec
        self.capacity = capacity
        self.horizon = horizon
        self.device = torch.device(device)
        dev = self.device
        n = capacity
        self._frames = torch.zeros(
            (frame_capacity, *spec.obs_shape), dtype=spec.obs_dtype, device=dev
        )
        self._action = torch.zeros((n, *spec.action_shape), dtype=spec.action_dtype, device=dev)
        self._reward = torch.zeros(n, dtype=torch.float32, device=dev)
        # Host bookkeeping (no device round trip per add). On the CPU the tensors share memory
        # with it; elsewhere frame_ptr and terminated are mirrored on the device for gathers.
        self._frame_ptr_h = np.zeros(n, dtype=np.int64)
        self._terminated_h = np.zeros(n, dtype=np.bool_)
        self._truncated_h = np.zeros(n, dtype=np.bool_)
        self._valid_h = np.zeros(n, dtype=np.bool_)
        self._cpu = dev.type == "cpu"
        if self._cpu:
            self._frame_ptr = from_numpy(self._frame_ptr_h)
            self._terminated = from_numpy(self._terminated_h)
        else:
            self._frame_ptr = torch.zeros(n, dtype=torch.int64, device=dev)
            self._terminated = torch.zeros(n, dtype=torch.bool, device=dev)
        self._num_added = 0
        self._frames_written = 0
        self._episode_open = False
        self._last_next_obs: npt.NDArray[Any] | None = None

    # ------------------------------------------------------------------ properties

    @property
    def size(self) -> int:
        """Number of live transitions, ``min(num_added, capacity)``."""
        return min(self._num_added, self.capacity)

    @property
    def num_added(self) -> int:
        """Transitions ever added."""
        return self._num_added

    @property
    def frame_capacity(self) -> int:
        """Current size of the frame ring."""
        return self._frames.shape[0]

    @property
    def episode_open(self) -> bool:
        """Whether the last transition left its episode running (the next ``obs`` must continue it)."""
        return self._episode_open

    def valid_mask(self) -> BoolArray:
        """Copy of the ``(capacity,)`` host mask of valid starts."""
        return self._valid_h.copy()

    def step_of(self, slots: IntArray) -> IntArray:
        """Absolute transition index of live ``slots``."""
        n, last = self.capacity, self._num_added - 1
        return slots + n * ((last - slots) // n)

    # ------------------------------------------------------------------ append

    def _check_continuity(self, steps: CheckedSteps, starts: BoolArray) -> None:
        obs, next_obs = steps.obs, steps.next_obs
        t_count = obs.shape[0]
        if not starts[0]:
            prev = self._last_next_obs
            assert prev is not None
            if not np.array_equal(obs[0], prev):
                raise ValueError(
                    "obs does not continue the previous transition's next_obs, but that "
                    "transition ended neither terminated nor truncated; end the episode there "
                    "(terminated/truncated) or pass the observation the env returned"
                )
        if t_count > 1:
            cont = ~starts[1:]
            same = (obs[1:] == next_obs[:-1]).reshape(t_count - 1, -1).all(axis=1)
            bad = np.flatnonzero(cont & ~same)
            if bad.size:
                t = int(bad[0]) + 1
                raise ValueError(
                    f"obs at step {t} does not continue next_obs at step {t - 1}, and step "
                    f"{t - 1} ended neither terminated nor truncated"
                )
        if self.spec.history > 1:
            # Only the newest frame of next_obs is stored; the rest must be obs shifted by one.
            same = (next_obs[:, :-1] == obs[:, 1:]).reshape(t_count, -1).all(axis=1)
            bad = np.flatnonzero(~same)
            if bad.size:
                raise ValueError(
                    f"next_obs at step {int(bad[0])}: its first history-1 frames must equal the "
                    "last history-1 frames of obs (a frame stack shifted by one step)"
                )

    def append(self, steps: CheckedSteps) -> list[ChunkEvents]:
        """Append ``T`` consecutive, validated transitions of the stream.

        Args:
            steps: Output of :meth:`TransitionSpec.check_steps`.

        Returns:
            Sampler events per chunk of at most ``capacity`` transitions, in order.

        Raises:
            ValueError: an observation does not continue the previous one inside an episode.
        """
        t_count = steps.reward.shape[0]
        if t_count == 0:
            return []
        ended = steps.terminated | steps.truncated
        starts = np.empty(t_count, dtype=np.bool_)
        starts[0] = not self._episode_open
        starts[1:] = ended[:-1]
        self._check_continuity(steps, starts)
        if t_count == 1:
            events = [self._append_one(steps, bool(starts[0]))]
        else:
            events = [
                self._append_chunk(steps, starts, lo, min(t_count, lo + self.capacity))
                for lo in range(0, t_count, self.capacity)
            ]
        self._episode_open = not bool(ended[-1])
        self._last_next_obs = steps.next_obs[-1].copy()
        return events

    def _put(self, dst: Tensor, idx: IntArray | int, data: npt.NDArray[Any]) -> None:
        """``dst[idx] = data`` from host data (through a numpy view on the CPU)."""
        if self._cpu:
            dst.numpy()[idx] = data
        else:
            i = idx if isinstance(idx, int) else from_numpy(idx).to(self.device)
            dst[i] = from_numpy(np.ascontiguousarray(data)).to(self.device)

    def _put_step(self, slots: IntArray | int, steps: CheckedSteps, lo: int, hi: int) -> None:
        """Write the transition fields of steps ``lo:hi`` to ``slots``."""
        frame_ptr = self._frame_ptr_h[slots]
        term = steps.terminated[lo:hi]
        self._terminated_h[slots] = term
        self._truncated_h[slots] = steps.truncated[lo:hi]
        self._valid_h[slots] = False  # the previous occupants are gone
        one = isinstance(slots, int)
        self._put(self._action, slots, steps.action[lo] if one else steps.action[lo:hi])
        self._put(self._reward, slots, steps.reward[lo] if one else steps.reward[lo:hi])
        if not self._cpu:  # on the CPU these share memory with the host arrays
            self._put(self._terminated, slots, term[0] if one else term)
            self._put(self._frame_ptr, slots, frame_ptr)

    def _append_one(self, steps: CheckedSteps, start: bool) -> ChunkEvents:
        """Scalar path of :meth:`_append_chunk` for a single transition (the online hot path)."""
        n, k, h = self.capacity, self.spec.history, self.horizon
        a = self._num_added
        slot = a % n
        fw = self._frames_written
        # An episode start writes its k obs frames first; every step writes its newest next frame.
        fp, next_pos = (fw + k - 1, fw + k) if start else (fw - 1, fw)
        oldest_after = max(0, a + 1 - n)
        fp_oldest = fp if oldest_after == a else int(self._frame_ptr_h[oldest_after % n])
        needed_from = fp_oldest - (k - 1)
        self._ensure_frame_capacity(next_pos + 1 - needed_from, needed_from)
        fcap = self.frame_capacity
        if start:
            obs = steps.obs[0]
            if k == 1:
                self._put(self._frames, fw % fcap, obs)
            else:
                self._put(self._frames, (fw + np.arange(k)) % fcap, obs)
        nxt = steps.next_obs[0]
        self._put(self._frames, next_pos % fcap, nxt if k == 1 else nxt[-1])
        self._frames_written = next_pos + 1
        self._frame_ptr_h[slot] = fp
        self._put_step(slot, steps, 0, 1)
        self._num_added = a + 1
        # Newly valid starts among a - h + 1 .. a; walking backwards keeps the first episode end
        # at or after each candidate.
        term_h, trunc_h, valid_h = self._terminated_h, self._truncated_h, self._valid_h
        new: list[int] = []
        first_end = -1
        end_terminated = False
        for s in range(a, max(oldest_after, a - h + 1) - 1, -1):
            sl = s % n
            if term_h[sl] or trunc_h[sl]:
                first_end, end_terminated = s, bool(term_h[sl])
            if valid_h[sl]:
                continue
            # No end yet: the window must already be written. Terminated: a padded window is
            # fine. Truncated: the window must fit before the cut.
            ok = s + h - 1 <= a if first_end < 0 else end_terminated or s + h - 1 <= first_end
            if ok:
                valid_h[sl] = True
                new.append(sl)
        new.reverse()
        return ChunkEvents(
            inserted=np.array([slot], dtype=np.int64), activated=np.array(new, dtype=np.int64)
        )

    def _append_chunk(
        self, steps: CheckedSteps, starts_all: BoolArray, lo: int, hi: int
    ) -> ChunkEvents:
        n, k = self.capacity, self.spec.history
        c = hi - lo
        a0 = self._num_added
        a_end = a0 + c
        abs_idx = np.arange(a0, a_end, dtype=np.int64)
        slots = abs_idx % n
        starts = starts_all[lo:hi]

        # --- frames: an episode start writes its k obs frames, every step its newest next frame
        nf = 1 + k * starts.astype(np.int64)  # (c,) frames written per step
        fpos = self._frames_written + np.cumsum(nf) - nf  # (c,) first frame written by each step
        frame_ptr = fpos + k * starts - 1  # (c,) newest obs frame (non-start: the previous next)
        next_pos = fpos + k * starts  # (c,)
        frames_end = self._frames_written + int(nf.sum())

        oldest_after = max(0, a_end - n)
        fp_oldest = (
            int(frame_ptr[oldest_after - a0])
            if oldest_after >= a0
            else int(self._frame_ptr_h[oldest_after % n])
        )
        needed_from = fp_oldest - (k - 1)  # first frame a live transition still reads
        self._ensure_frame_capacity(frames_end - needed_from, needed_from)

        start_rows = np.flatnonzero(starts)
        obs_frames = steps.obs[lo:hi][start_rows]  # (s, *O)
        next_frames = steps.next_obs[lo:hi]  # (c, *O)
        if k > 1:
            obs_frames = obs_frames.reshape(-1, *self.spec.obs_shape)  # (s * k, *obs_shape)
            next_frames = next_frames[:, -1]  # (c, *obs_shape): only the newest frame is new
        obs_pos = (fpos[start_rows][:, None] + np.arange(k)).reshape(-1)  # (s * k,)
        pos = np.concatenate([obs_pos, next_pos])
        data = np.concatenate([obs_frames, next_frames])
        keep = pos >= needed_from  # frames of transitions evicted within this chunk are skipped
        if not keep.all():
            pos, data = pos[keep], data[keep]
        self._put(self._frames, pos % self.frame_capacity, data)
        self._frames_written = frames_end

        # --- transition fields
        self._frame_ptr_h[slots] = frame_ptr
        self._put_step(slots, steps, lo, hi)
        self._num_added = a_end

        # --- newly valid starts: candidates whose window reaches into this chunk
        h = self.horizon
        s_lo = max(oldest_after, a0 - h + 1)
        cand = np.arange(s_lo, a_end, dtype=np.int64)  # (m,) absolute starts
        cs = cand % n
        ended = self._terminated_h[cs] | self._truncated_h[cs]
        # e[i]: first index >= cand[i] (within cand) whose step ends its episode, or a_end if none.
        big = np.int64(a_end)
        end_at = np.where(ended, cand, big)
        e = np.minimum.accumulate(end_at[::-1])[::-1]
        has_end = e < big
        e_slot = np.where(has_end, e, 0) % n
        terminated_end = has_end & self._terminated_h[e_slot]
        # Latest step the window may reach: the write head, or the truncation.
        limit = np.where(has_end, e, a_end - 1)
        valid = terminated_end | (cand + h - 1 <= limit)
        new = cs[valid & ~self._valid_h[cs]]
        self._valid_h[new] = True
        return ChunkEvents(inserted=slots, activated=new)

    def _ensure_frame_capacity(self, needed: int, needed_from: int) -> None:
        """Grow the frame ring so that ``needed`` frames from ``needed_from`` on fit."""
        fcap = self.frame_capacity
        if needed <= fcap:
            return
        new_cap = max(needed, fcap + fcap // 2)
        frames = torch.zeros(
            (new_cap, *self.spec.obs_shape), dtype=self.spec.obs_dtype, device=self.device
        )
        live = torch.arange(needed_from, self._frames_written, device=self.device)  # still needed
        frames[live % new_cap] = self._frames[live % fcap]
        self._frames = frames

    # ------------------------------------------------------------------ windows

    def window(
        self, slots: Tensor, length: int, obs_steps: tuple[int, ...] | None = None
    ) -> Window:
        """Gather ``length``-step windows starting at valid ``slots``.

        Args:
            slots: ``(B,)`` int64 valid start slots.
            length: ``L``, at most ``horizon``.
            obs_steps: Which of the ``L + 1`` observations to gather (default all, in order).

        Returns:
            The windows; steps after a terminal are padding (see :class:`Window`). ``obs`` has
            ``len(obs_steps)`` positions.
        """
        steps = tuple(range(length + 1)) if obs_steps is None else obs_steps
        if self._cpu:  # numpy on shared views: a few microseconds per op instead of ~10
            return self._window_np(slots.cpu().numpy(), length, steps)
        return self._window_torch(slots.to(self.device), length, steps)

    def _window_np(self, slots: IntArray, length: int, obs_steps: tuple[int, ...]) -> Window:
        n, k = self.capacity, self.spec.history
        b = slots.shape[0]
        win = slots[:, None] + np.arange(length)  # (B, L) slots of each step
        win %= n
        not_done = np.cumprod(~self._terminated_h[win], axis=1, dtype=np.float32)  # (B, L)
        # Step j happened iff no earlier step of the window terminated.
        mask = np.ones_like(not_done)
        mask[:, 1:] = not_done[:, :-1]
        n_real = np.count_nonzero(mask, axis=1)  # (B,) real steps in the window
        reward_raw = self._reward.numpy()[win]  # (B, L)
        action = self._action.numpy()[win]  # (B, L, *action_shape)
        action *= mask.reshape(b, length, *([1] * len(self.spec.action_shape))).astype(action.dtype)
        # Observation p has newest frame frame_ptr[start] + p, clamped to the frame after the
        # last real step (the terminal observation) for padded positions.
        newest = np.minimum(np.asarray(obs_steps), n_real[:, None])  # (B, P)
        newest += self._frame_ptr_h[slots][:, None]
        # (B, P, k) stacks of the k frames ending at `newest`, or (B, P) without history
        frame_idx = newest[..., None] + np.arange(1 - k, 1) if k > 1 else newest
        frame_idx %= self.frame_capacity
        obs = np.take(self._frames.numpy(), frame_idx, axis=0)  # (B, P, *O)
        return Window(
            obs=from_numpy(obs),
            action=from_numpy(action),
            reward=from_numpy(reward_raw * mask),
            reward_raw=from_numpy(reward_raw),
            not_done=from_numpy(not_done),
            mask=from_numpy(mask),
        )

    def _window_torch(self, slots: Tensor, length: int, obs_steps: tuple[int, ...]) -> Window:
        n, k, dev = self.capacity, self.spec.history, self.device
        b = slots.shape[0]
        win = (slots[:, None] + torch.arange(length, device=dev)) % n  # (B, L) slots of each step
        not_done = torch.cumprod((~self._terminated[win]).to(torch.float32), dim=1)  # (B, L)
        # Step j happened iff no earlier step of the window terminated.
        mask = torch.nn.functional.pad(not_done[:, :-1], (1, 0), value=1.0)  # (B, L)
        n_real = mask.sum(dim=1).to(torch.int64)  # (B,) real steps in the window
        reward_raw = self._reward[win]  # (B, L)
        action = self._action[win]  # (B, L, *action_shape)
        action = action * mask.reshape(b, length, *([1] * len(self.spec.action_shape))).to(
            action.dtype
        )
        # Observation p has newest frame frame_ptr[start] + p, clamped to the frame after the
        # last real step (the terminal observation) for padded positions.
        p = torch.tensor(obs_steps, device=dev)
        newest = self._frame_ptr[slots][:, None] + torch.minimum(p[None, :], n_real[:, None])
        # (B, P, k) stacks of the k frames ending at `newest`, or (B, P) without history
        frame_idx = newest[..., None] + torch.arange(1 - k, 1, device=dev) if k > 1 else newest
        obs = self._frames[frame_idx % self.frame_capacity]  # (B, P, *O)
        return Window(
            obs=obs,
            action=action,
            reward=reward_raw * mask,
            reward_raw=reward_raw,
            not_done=not_done,
            mask=mask,
        )

    def reward_abs_mean(self) -> float:
        """Mean ``|r|`` over the live transitions (float64 accumulation)."""
        if self._num_added == 0:
            raise ValueError("reward_scale: the buffer is empty")
        return float(self._reward[: self.size].abs().to(torch.float64).mean())

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """CPU copies of the filled parts of every array plus the counters."""
        size = self.size
        filled_frames = min(self._frames_written, self.frame_capacity)
        return {
            "spec": self.spec.to_dict(),
            "capacity": self.capacity,
            "horizon": self.horizon,
            "device": str(self.device),
            "frame_capacity": self.frame_capacity,
            "frames": self._frames[:filled_frames].cpu().clone(),
            "action": self._action[:size].cpu().clone(),
            "reward": self._reward[:size].cpu().clone(),
            "frame_ptr": self._frame_ptr_h[:size].copy(),
            "terminated": self._terminated_h[:size].copy(),
            "truncated": self._truncated_h[:size].copy(),
            "valid": self._valid_h.copy(),
            "num_added": self._num_added,
            "frames_written": self._frames_written,
            "episode_open": self._episode_open,
            "last_next_obs": None if self._last_next_obs is None else self._last_next_obs.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` of a storage with the same spec, capacity and horizon."""
        spec = TransitionSpec.from_dict(state["spec"])
        if spec != self.spec:
            raise ValueError(
                f"load_state_dict: saved spec {spec} differs from this buffer's {self.spec}"
            )
        if int(state["capacity"]) != self.capacity or int(state["horizon"]) != self.horizon:
            raise ValueError(
                f"load_state_dict: saved capacity/horizon {state['capacity']}/{state['horizon']} "
                f"differ from this buffer's {self.capacity}/{self.horizon}"
            )
        dev = self.device
        fcap = int(state["frame_capacity"])
        self._frames = torch.zeros((fcap, *spec.obs_shape), dtype=spec.obs_dtype, device=dev)
        frames: Tensor = state["frames"]
        self._frames[: frames.shape[0]] = frames.to(dev)
        size = min(int(state["num_added"]), self.capacity)
        self._action.zero_()
        self._reward.zero_()
        self._action[:size] = state["action"].to(dev)
        self._reward[:size] = state["reward"].to(dev)
        self._frame_ptr_h[:] = 0
        self._terminated_h[:] = False
        self._truncated_h[:] = False
        self._frame_ptr_h[:size] = state["frame_ptr"]
        self._terminated_h[:size] = state["terminated"]
        self._truncated_h[:size] = state["truncated"]
        if not self._cpu:
            self._frame_ptr.copy_(from_numpy(self._frame_ptr_h))
            self._terminated.copy_(from_numpy(self._terminated_h))
        self._valid_h[:] = state["valid"]
        self._num_added = int(state["num_added"])
        self._frames_written = int(state["frames_written"])
        self._episode_open = bool(state["episode_open"])
        last = state["last_next_obs"]
        self._last_next_obs = (
            None if last is None else np.asarray(last, dtype=numpy_dtype(self.spec.obs_dtype))
        )
