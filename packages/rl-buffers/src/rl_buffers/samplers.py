"""Samplers over buffer slots, separate from storage: uniform, LAP and DR.Q's faded LAP.

A sampler knows nothing about observations. It sees ``capacity`` slots and three events from the
storage that owns it:

* :meth:`Sampler.insert`: new items were written to these slots, one clock tick each, in order.
  They start *inactive* (not sampleable) and the previous occupants are forgotten.
* :meth:`Sampler.set_active`: these slots became (or stopped being) valid sampling starts; the
  storage activates a start once its whole window exists (see :mod:`rl_buffers.storage`).
* :meth:`Sampler.update_priority`: TD errors for the indices a previous :meth:`Sampler.sample`
  returned.

Priorities (LAP, Fujimoto et al. 2020, as used by MR.Q): ``p = max(|td|, min_priority) ** alpha``;
a new item gets ``max_priority``, the running maximum of every priority ever set (initially
``min_priority ** alpha``, which is also the priority of a slot never written). An item is drawn
with probability ``p_i / sum_j p_j`` over active items.

Faded priorities (DR.Q): the weight is ``p_i * clamp(fade ** age_i, floor, 1)`` with ``age_i`` the
number of clock ticks (inserts, i.e. env steps for one env) since item ``i`` was inserted. DR.Q
multiplies all ``capacity`` fade weights on every insert; :class:`FadedLAPSampler` never does: see
its docstring for the two-store construction.

Bookkeeping (priorities, active flags, insertion ticks) is host-side numpy in every case. The
backend decides where the *weights* live and how draws happen:

* ``"tree"``: a numpy :class:`~rl_buffers.sumtree.SumTree` on the CPU; O(log n) per inserted,
  updated or drawn item.
* ``"scan"``: a flat float64 weight tensor on any device; a draw is one ``cumsum`` +
  ``searchsorted`` over all slots on that device (O(n) per call, but a few kernels on a GPU and no
  host round trip). Weight updates are O(1) scatters; ``update_priority`` copies the ``B`` TD errors
  to the host once.

Every draw takes an explicit ``torch.Generator`` on the sampler's device.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from rl_buffers._util import from_numpy, is_int
from rl_buffers.sumtree import SumTree

__all__ = [
    "Backend",
    "FadedLAPSampler",
    "LAPSampler",
    "Sampler",
    "UniformSampler",
    "sampler_from_config",
    "young_max_age",
]

Backend = Literal["tree", "scan"]
"""``"tree"``: numpy sum tree on the CPU. ``"scan"``: flat weights + cumsum/searchsorted, any device."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_F64 = torch.float64
_SMALL = 64  # below this many deactivations, the uniform sampler swap-removes one by one


def _check_generator(generator: torch.Generator, device: torch.device, who: str) -> None:
    if not isinstance(generator, torch.Generator):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(
            f"{who}: generator must be a torch.Generator, got {type(generator).__name__}"
        )
    if generator.device.type != device.type:
        raise ValueError(
            f"{who}: generator is on {generator.device.type}, the sampler draws on {device}; "
            f"pass torch.Generator(device={str(device)!r})"
        )


def _as_index_array(indices: IntArray | Tensor | list[int], capacity: int, who: str) -> IntArray:
    """Host int64 copy of slot indices, checked to be 1-D and in ``[0, capacity)``."""
    arr = indices.detach().cpu().numpy() if isinstance(indices, Tensor) else np.asarray(indices)
    if arr.ndim != 1:
        raise ValueError(f"{who}: indices must be 1-D, got shape {tuple(arr.shape)}")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{who}: indices must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= capacity):
        raise ValueError(
            f"{who}: indices must lie in [0, {capacity}), got range [{arr.min()}, {arr.max()}]"
        )
    return arr


class _TreeStore:
    """Weights in a numpy :class:`SumTree` (CPU)."""

    def __init__(self, capacity: int) -> None:
        self.device = torch.device("cpu")
        self.tree = SumTree(capacity)

    def set(self, idx: IntArray, values: FloatArray) -> None:
        self.tree.set(idx, values)

    def leaves(self) -> FloatArray:
        return self.tree.leaves.copy()

    def load_leaves(self, leaves: FloatArray) -> None:
        self.tree.rebuild(leaves)


class _ScanStore:
    """Flat weights on any device; draws by cumsum + searchsorted over all slots."""

    def __init__(self, capacity: int, device: torch.device) -> None:
        self.device = device
        self.w = torch.zeros(capacity, dtype=_F64, device=device)
        self.scratch = torch.empty_like(self.w)  # cumsum / combined weights buffer
        self._host: FloatArray | None = self.w.numpy() if device.type == "cpu" else None

    def set(self, idx: IntArray, values: FloatArray) -> None:
        if self._host is not None:  # CPU: write through the shared numpy view
            self._host[idx] = values
        else:
            self.w[from_numpy(idx).to(self.device)] = from_numpy(values).to(self.device)

    def find(self, x: Tensor) -> Tensor:
        """Slots for prefix-sum targets ``x`` (``(B,)`` float64 on the device)."""
        return _scan_find(self.w, x, self.scratch)

    def leaves(self) -> FloatArray:
        return self.w.cpu().numpy().copy()

    def load_leaves(self, leaves: FloatArray) -> None:
        self.w.copy_(from_numpy(np.ascontiguousarray(leaves, dtype=np.float64)))


_Store = _TreeStore | _ScanStore


def _scan_find(w: Tensor, x: Tensor, cdf: Tensor) -> Tensor:
    """Indices ``j`` with ``cdf[j - 1] <= x < cdf[j]`` for weights ``w`` (one cumsum, any device).

    ``cdf`` is a preallocated buffer like ``w`` (no large allocation per draw).
    """
    torch.cumsum(w, 0, out=cdf)
    # right=True: the first j with cdf[j] > x, which always has w[j] > 0 ...
    idx = torch.searchsorted(cdf, x, right=True).clamp_(max=w.numel() - 1)
    # ... except when rounding puts x at or above the last cdf value: take the last positive
    # slot (the first one whose cdf reaches the total).
    last = torch.searchsorted(cdf, cdf[-1:], right=False)
    return torch.where(w[idx] > 0, idx, last)


def _make_store(backend: Backend, capacity: int, device: torch.device) -> _Store:
    if backend == "tree":
        if device.type != "cpu":
            raise ValueError(
                f"backend='tree' runs on the CPU; got device {device} (use backend='scan')"
            )
        return _TreeStore(capacity)
    if backend == "scan":
        return _ScanStore(capacity, device)
    raise ValueError(f"backend must be 'tree' or 'scan', got {backend!r}")


class Sampler(ABC):
    """Draws slot indices among the *active* slots of a buffer of ``capacity`` slots.

    Subclasses implement the weighting; this base keeps the host-side active set.

    Args:
        capacity: Number of slots.
        device: Device the draws happen on (and that the generator must live on).
    """

    kind: ClassVar[str]

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        if not is_int(capacity) or capacity < 1:
            raise ValueError(
                f"{type(self).__name__}: capacity must be an int >= 1, got {capacity!r}"
            )
        self.capacity = capacity
        self.device = torch.device(device)
        self._active = np.zeros(capacity, dtype=np.bool_)
        self._num_active = 0

    @property
    def num_active(self) -> int:
        """Number of slots that can be drawn."""
        return self._num_active

    def active_mask(self) -> npt.NDArray[np.bool_]:
        """Copy of the ``(capacity,)`` bool mask of active slots."""
        return self._active.copy()

    def insert(self, indices: IntArray | Tensor | list[int], *, check: bool = True) -> None:
        """New items were written to ``indices`` (distinct slots), one clock tick each, in order.

        The previous occupants are forgotten; the new items start inactive.

        Args:
            indices: ``(c,)`` slots.
            check: Validate ``indices`` (a buffer passing its own int64 slots skips this).
        """
        if check:
            idx = _as_index_array(indices, self.capacity, f"{type(self).__name__}.insert")
            if np.unique(idx).size != idx.size:
                raise ValueError(f"{type(self).__name__}.insert: indices must be distinct")
        else:
            idx = np.asarray(indices, dtype=np.int64)
        self._set_active(idx, False)
        self._on_insert(idx)

    def set_active(
        self, indices: IntArray | Tensor | list[int], active: bool, *, check: bool = True
    ) -> None:
        """Mark slots as valid (``True``) or invalid (``False``) sampling starts.

        Args:
            indices: ``(m,)`` slots; with ``check=False`` they must be distinct int64.
            active: The new state.
            check: Validate and deduplicate ``indices``.
        """
        if check:
            idx = _as_index_array(indices, self.capacity, f"{type(self).__name__}.set_active")
            idx = np.unique(idx)
        else:
            idx = np.asarray(indices, dtype=np.int64)
        self._set_active(idx, active)

    def _set_active(self, idx: IntArray, active: bool) -> None:
        changed = idx[self._active[idx] != active]
        if changed.size == 0:
            return
        self._active[changed] = active
        self._num_active += changed.size if active else -changed.size
        if active:
            self._on_activate(changed)
        else:
            self._on_deactivate(changed)

    def _check_sample(self, batch_size: int, generator: torch.Generator) -> None:
        who = f"{type(self).__name__}.sample"
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"{who}: batch_size must be an int >= 1, got {batch_size!r}")
        _check_generator(generator, self.device, who)
        if self._num_active == 0:
            raise ValueError(f"{who}: no sampleable item (buffer empty or no complete window yet)")

    @abstractmethod
    def _on_insert(self, idx: IntArray) -> None: ...

    @abstractmethod
    def _on_activate(self, idx: IntArray) -> None: ...

    @abstractmethod
    def _on_deactivate(self, idx: IntArray) -> None: ...

    @abstractmethod
    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """Draw ``batch_size`` slots with replacement.

        Args:
            batch_size: ``B``.
            generator: Random source, on the sampler's device.

        Returns:
            ``(B,)`` int64 slot indices on the sampler's device.
        """

    def update_priority(self, indices: Tensor, td_error: Tensor) -> None:  # noqa: B027
        """Set priorities from TD errors; a no-op for unprioritised samplers.

        Args:
            indices: ``(B,)`` int64 slots returned by :meth:`sample`.
            td_error: ``(B,)`` TD errors (any sign).
        """

    @abstractmethod
    def probabilities(self) -> Tensor:
        """Exact draw probability of every slot, ``(capacity,)`` float64 on the CPU (O(n))."""

    def config(self) -> dict[str, Any]:
        """Constructor arguments (without ``capacity``), to rebuild an equal sampler."""
        return {"device": str(self.device)}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (host numpy arrays)."""
        return {"kind": self.kind, "capacity": self.capacity, "active": self._active.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` of a sampler of the same kind and capacity."""
        if state["kind"] != self.kind or int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state is for a {state['kind']!r} sampler "
                f"of capacity {state['capacity']}, this is {self.kind!r} with capacity "
                f"{self.capacity}"
            )
        self._active[:] = np.asarray(state["active"], dtype=np.bool_)
        self._num_active = int(self._active.sum())


class UniformSampler(Sampler):
    """Uniform draws over active slots in O(1) per item (dense list of active slots).

    Args:
        capacity: Number of slots.
    """

    kind: ClassVar[str] = "uniform"

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity, "cpu")
        self._list = np.zeros(capacity, dtype=np.int64)  # active slots in [0, count)
        self._pos = np.full(capacity, -1, dtype=np.int64)  # position of a slot in _list
        self._count = 0

    def _on_insert(self, idx: IntArray) -> None:
        pass

    def _on_activate(self, idx: IntArray) -> None:
        c = self._count
        self._list[c : c + idx.size] = idx
        self._pos[idx] = np.arange(c, c + idx.size)
        self._count = c + idx.size

    def _on_deactivate(self, idx: IntArray) -> None:
        if idx.size > _SMALL:
            # Bulk: drop them keeping the order of the rest (O(count), vectorised).
            kept = self._list[: self._count]
            kept = kept[self._active[kept]]
            self._count = kept.size
            self._list[: kept.size] = kept
            self._pos[idx] = -1
            self._pos[kept] = np.arange(kept.size)
            return
        lst, pos = self._list, self._pos
        for s in idx.tolist():  # swap-remove
            p = int(pos[s])
            last = int(lst[self._count - 1])
            lst[p] = last
            pos[last] = p
            pos[s] = -1
            self._count -= 1

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        self._check_sample(batch_size, generator)
        r = torch.randint(0, self._count, (batch_size,), generator=generator)
        return from_numpy(self._list[r.numpy()])

    def probabilities(self) -> Tensor:
        return from_numpy(self._active.astype(np.float64) / max(self._num_active, 1))

    def config(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["order"] = self._list[: self._count].copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        order = np.asarray(state["order"], dtype=np.int64)
        if order.size != self._num_active or not self._active[order].all():
            raise ValueError("UniformSampler.load_state_dict: 'order' disagrees with 'active'")
        self._count = order.size
        self._list[: order.size] = order
        self._pos[:] = -1
        self._pos[order] = np.arange(order.size)


class LAPSampler(Sampler):
    """LAP prioritised draws: ``P(i) ∝ max(|td_i|, min_priority) ** alpha`` over active slots.

    Args:
        capacity: Number of slots.
        alpha: Priority exponent (MR.Q: 0.4).
        min_priority: Floor on ``|td|`` before the exponent (MR.Q: 1, equal to the Huber
            threshold, which is what makes LAP unbiased without importance weights).
        backend: ``"tree"`` (CPU sum tree) or ``"scan"`` (cumsum over flat weights, any device).
        device: Where draws happen (must be CPU for ``"tree"``).
    """

    kind: ClassVar[str] = "lap"

    def __init__(
        self,
        capacity: int,
        *,
        alpha: float = 0.4,
        min_priority: float = 1.0,
        backend: Backend = "tree",
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(capacity, device)
        if not (alpha >= 0.0 and math.isfinite(alpha)):
            raise ValueError(f"{type(self).__name__}: alpha must be finite and >= 0, got {alpha}")
        if not (min_priority > 0.0 and math.isfinite(min_priority)):
            raise ValueError(
                f"{type(self).__name__}: min_priority must be finite and > 0, got {min_priority}"
            )
        self.alpha = float(alpha)
        self.min_priority = float(min_priority)
        self.backend: Backend = backend
        self._store = _make_store(backend, capacity, self.device)
        # Every slot holds a priority >= min_priority ** alpha > 0 (even before its first
        # insert), so an active slot can always be drawn.
        self._max_priority = self.min_priority**self.alpha
        self._priority: FloatArray = np.full(capacity, self._max_priority, dtype=np.float64)
        self._scratch: FloatArray = np.empty(capacity, dtype=np.float64)

    @property
    def max_priority(self) -> float:
        """Running maximum of every priority set so far (what new items receive)."""
        return self._max_priority

    def priorities(self) -> Tensor:
        """``(capacity,)`` float64 LAP priorities on the CPU (active or not)."""
        return from_numpy(self._priority.copy())

    # -- events

    def _on_insert(self, idx: IntArray) -> None:
        self._priority[idx] = self._max_priority

    def _on_activate(self, idx: IntArray) -> None:
        self._store.set(idx, self._priority[idx])

    def _on_deactivate(self, idx: IntArray) -> None:
        self._store.set(idx, np.zeros(idx.size))

    def _priorities_from_td(self, indices: Tensor, td_error: Tensor) -> tuple[IntArray, FloatArray]:
        """Checked host ``(indices, priority)``, duplicates resolved to their max."""
        who = f"{type(self).__name__}.update_priority"
        if not isinstance(indices, Tensor) or not isinstance(td_error, Tensor):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"{who}: indices and td_error must be tensors")
        if indices.ndim != 1 or td_error.shape != indices.shape:
            raise ValueError(
                f"{who}: expected indices (B,) and td_error (B,), got {tuple(indices.shape)} and "
                f"{tuple(td_error.shape)}"
            )
        if indices.dtype != torch.int64:
            raise TypeError(f"{who}: indices must be int64, got {indices.dtype}")
        if not td_error.is_floating_point():
            raise TypeError(f"{who}: td_error must be floating, got {td_error.dtype}")
        idx: IntArray = indices.detach().cpu().numpy()
        td = td_error.detach().to(_F64).cpu().numpy()
        if idx.min() < 0 or idx.max() >= self.capacity:
            raise ValueError(f"{who}: indices must lie in [0, {self.capacity})")
        if not np.isfinite(td).all():
            raise ValueError(f"{who}: td_error contains NaN or inf")
        p = np.maximum(np.abs(td), self.min_priority) ** self.alpha
        # An index drawn twice in a batch gets the larger priority (deterministic, unlike a plain
        # indexed write with duplicates).
        scratch = self._scratch
        scratch[idx] = -np.inf
        np.maximum.at(scratch, idx, p)
        return idx, scratch[idx]

    def _set_leaves(self, idx: IntArray) -> None:
        """Recompute the weights of ``idx`` (duplicates allowed) from their priority."""
        self._store.set(idx, self._priority[idx] * self._active[idx])

    def update_priority(self, indices: Tensor, td_error: Tensor) -> None:
        """Set ``p = max(|td|, min_priority) ** alpha`` for ``indices``; raise ``max_priority``.

        Args:
            indices: ``(B,)`` int64 slots from :meth:`sample` (any device). Call before the buffer
                overwrites them (i.e. before the next ``add``), or the new occupant gets the old
                item's priority. Duplicates take the largest of their priorities.
            td_error: ``(B,)`` floating TD errors, finite (e.g. ``max`` over critics of
                ``|Q - y|``). Copied to the host once.
        """
        if indices.numel() == 0:
            return
        idx, p = self._priorities_from_td(indices, td_error)
        self._priority[idx] = p
        self._max_priority = max(self._max_priority, float(p.max()))
        self._set_leaves(idx)

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        self._check_sample(batch_size, generator)
        store = self._store
        if isinstance(store, _TreeStore):
            u = torch.rand(batch_size, generator=generator, dtype=_F64).numpy()
            return from_numpy(store.tree.find(u * store.tree.total))
        u = torch.rand(batch_size, generator=generator, dtype=_F64, device=self.device)
        return store.find(u * store.w.sum())

    def probabilities(self) -> Tensor:
        w = self._store.leaves()
        return from_numpy(w / w.sum())

    def config(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "min_priority": self.min_priority,
            "backend": self.backend,
            "device": str(self.device),
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            config=self.config(),
            priority=self._priority.copy(),
            max_priority=self._max_priority,
            weights=self._store.leaves(),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        cfg = state["config"]
        if (cfg["alpha"], cfg["min_priority"]) != (self.alpha, self.min_priority):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state has alpha={cfg['alpha']}, "
                f"min_priority={cfg['min_priority']}; this sampler has {self.alpha}, "
                f"{self.min_priority}"
            )
        self._priority[:] = np.asarray(state["priority"], dtype=np.float64)
        self._max_priority = float(state["max_priority"])
        self._store.load_leaves(np.asarray(state["weights"], dtype=np.float64))


def young_max_age(fade: float, floor: float) -> int:
    """Largest integer age ``a >= 0`` with ``fade ** a > floor`` (``-1`` if none).

    Items up to this age are weighted ``fade ** age``; older ones sit at the ``floor``.
    """
    if floor >= 1.0:
        return -1
    a = max(0, math.floor(math.log(floor) / math.log(fade)))
    while fade ** (a + 1) > floor:
        a += 1
    while a >= 0 and not fade**a > floor:
        a -= 1
    return a


_MAX_YOUNG_WINDOW = 1 << 27


class FadedLAPSampler(LAPSampler):
    """DR.Q faded LAP: weight ``p_i * clamp(fade ** age_i, floor, 1)``, no per-insert rescan.

    ``age_i`` counts clock ticks (inserts; env steps for one env) since item ``i`` was inserted:
    the newest item has age 0 and weight ``p_i``.

    How the fade is kept exact without touching every item per step:

    * With ``A`` = :func:`young_max_age`, an item is *young* while ``age <= A`` (weight
      ``p * fade ** age``) and *old* afterwards (weight ``p * floor``). Ages grow in lockstep, so
      items leave the young set in insertion order, exactly one candidate per tick; a ring of the
      last ``A + 1`` inserted slots finds it in O(1), and moving it is O(log n).
    * Old items live in their own store with weights ``p``; its total is scaled by ``floor``.
    * Young items live in a second store with weights ``p * fade ** (ref - t_insert)``, so the
      true weights are those times the common factor ``fade ** (now - ref)``, applied at draw
      time. Young weights thus stay within ``[fade ** A, fade ** -R]`` (about ``[0.1, 10]``
      times ``p``): every ``R = max(A, 1)`` ticks the reference ``ref`` moves to ``now`` and the
      at most ``A + 1`` young weights are recomputed from their stored ``p`` and ``t_insert``
      (never by compounding multiplications), O(1) amortised per tick. Nothing grows with the
      clock, so 10M steps or 10B steps are equally stable in float64.
    * A tree draw first picks the young or old store in proportion to
      ``fade ** (now - ref) * young_total`` and ``floor * old_total``, then descends that store
      in O(log n). A scan draw forms ``fade ** (now - ref) * young + floor * old`` in one pass
      and does a single cumsum (O(n) per draw, but no O(n) work per insert).

    Args:
        capacity: Number of slots.
        alpha: LAP priority exponent.
        min_priority: LAP ``|td|`` floor.
        fade: Per-tick decay in ``(0, 1)`` (DR.Q: 0.9999).
        floor: Weight floor relative to ``p`` in ``(0, 1]`` (DR.Q: 0.1).
        backend: ``"tree"`` or ``"scan"``.
        device: Draw device (CPU for ``"tree"``).
    """

    kind: ClassVar[str] = "faded"

    def __init__(
        self,
        capacity: int,
        *,
        alpha: float = 0.4,
        min_priority: float = 1.0,
        fade: float = 0.9999,
        floor: float = 0.1,
        backend: Backend = "tree",
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(
            capacity, alpha=alpha, min_priority=min_priority, backend=backend, device=device
        )
        if not 0.0 < fade < 1.0:
            raise ValueError(f"FadedLAPSampler: fade must be in (0, 1), got {fade}")
        if not 0.0 < floor <= 1.0:
            raise ValueError(f"FadedLAPSampler: floor must be in (0, 1], got {floor}")
        self.fade = float(fade)
        self.floor = float(floor)
        self._a = young_max_age(self.fade, self.floor)
        if self._a + 1 > _MAX_YOUNG_WINDOW:
            raise ValueError(
                f"FadedLAPSampler: fade={fade}, floor={floor} keep items young for {self._a} "
                f"ticks; at most {_MAX_YOUNG_WINDOW - 1} is supported"
            )
        self._renorm_every = max(self._a, 1)
        self._old = _make_store(backend, capacity, self.device)  # self._store holds the young
        self._t_ins = np.full(capacity, -1, dtype=np.int64)  # insertion tick per slot
        self._ring = np.full(max(self._a + 1, 1), -1, dtype=np.int64)  # slot inserted at tick t
        self._clock = 0  # ticks so far; the newest item has tick clock - 1
        self._ref = 0

    @property
    def now(self) -> int:
        """Tick of the most recent insert (``-1`` before any)."""
        return self._clock - 1

    def _ring_slots(self, lo: int, hi: int) -> IntArray:
        """Active slots still holding the items inserted at ticks ``lo..hi`` (inclusive)."""
        ticks = np.arange(lo, hi + 1, dtype=np.int64)
        slots = self._ring[ticks % (self._a + 1)]
        slots = slots[self._t_ins[slots] == ticks]  # not overwritten since
        return slots[self._active[slots]]

    def _on_insert(self, idx: IntArray) -> None:
        a, c = self._a, idx.size
        t0 = self._clock
        t_end = t0 + c
        now_after = t_end - 1
        if a >= 0:
            # 1. Earlier items whose age passes A during these ticks move to the old store.
            lo, hi = max(0, t0 - a - 1), min(t0 - 1, t_end - a - 2)
            if hi >= lo:
                slots = self._ring_slots(lo, hi)
                if slots.size:
                    self._store.set(slots, np.zeros(slots.size))
                    self._old.set(slots, self._priority[slots])
            # 2. Move the reference when it is R ticks behind; recompute the young weights.
            if now_after - self._ref > self._renorm_every:
                self._ref = now_after
                lo = max(0, now_after - a)
                if t0 - 1 >= lo:
                    slots = self._ring_slots(lo, t0 - 1)
                    if slots.size:
                        self._store.set(slots, self._young_weights(slots, self._priority[slots]))
            # 3. Remember which slot each of the last A + 1 ticks went to.
            keep_last = min(c, a + 1)
            ticks = np.arange(t_end - keep_last, t_end, dtype=np.int64)
            self._ring[ticks % (a + 1)] = idx[c - keep_last :]
        self._t_ins[idx] = np.arange(t0, t_end, dtype=np.int64)
        self._clock = t_end
        super()._on_insert(idx)

    def _young_weights(self, idx: IntArray, p: FloatArray) -> FloatArray:
        return p * np.power(self.fade, (self._ref - self._t_ins[idx]).astype(np.float64))

    def _set_leaves(self, idx: IntArray) -> None:
        p = self._priority[idx] * self._active[idx]
        young = (self.now - self._t_ins[idx]) <= self._a
        self._store.set(idx, np.where(young, self._young_weights(idx, p), 0.0))
        self._old.set(idx, np.where(young, 0.0, p))

    def _on_activate(self, idx: IntArray) -> None:
        self._set_leaves(idx)

    def _on_deactivate(self, idx: IntArray) -> None:
        zero = np.zeros(idx.size)
        self._store.set(idx, zero)
        self._old.set(idx, zero)

    def _scale(self) -> float:
        return self.fade ** (self.now - self._ref)

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        self._check_sample(batch_size, generator)
        scale, floor = self._scale(), self.floor
        young, old = self._store, self._old
        if isinstance(young, _TreeStore) and isinstance(old, _TreeStore):
            w_young = young.tree.total * scale
            w_old = old.tree.total * floor
            x = torch.rand(batch_size, generator=generator, dtype=_F64).numpy() * (w_young + w_old)
            # If the old store is empty, rounding (x == total) must not send a draw there.
            in_young = (x < w_young) | (w_old <= 0.0)
            out = np.empty(batch_size, dtype=np.int64)
            out[in_young] = young.tree.find(x[in_young] / scale)
            out[~in_young] = old.tree.find((x[~in_young] - w_young) / floor)
            return from_numpy(out)
        assert isinstance(young, _ScanStore)
        assert isinstance(old, _ScanStore)
        # One pass: the true weights (into the old store's scratch), then a single cumsum.
        w = torch.mul(young.w, scale, out=old.scratch).add_(old.w, alpha=floor)
        u = torch.rand(batch_size, generator=generator, dtype=_F64, device=self.device)
        return _scan_find(w, u * w.sum(), young.scratch)

    def probabilities(self) -> Tensor:
        w = self._store.leaves() * self._scale() + self._old.leaves() * self.floor
        return from_numpy(w / w.sum())

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg.update(fade=self.fade, floor=self.floor)
        return cfg

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            old_weights=self._old.leaves(),
            t_insert=self._t_ins.copy(),
            ring=self._ring.copy(),
            clock=self._clock,
            ref=self._ref,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        cfg = state["config"]
        if (cfg["fade"], cfg["floor"]) != (self.fade, self.floor):
            raise ValueError(
                f"FadedLAPSampler.load_state_dict: state has fade={cfg['fade']}, "
                f"floor={cfg['floor']}; this sampler has {self.fade}, {self.floor}"
            )
        super().load_state_dict(state)
        self._old.load_leaves(np.asarray(state["old_weights"], dtype=np.float64))
        self._t_ins[:] = np.asarray(state["t_insert"], dtype=np.int64)
        self._ring[:] = np.asarray(state["ring"], dtype=np.int64)
        self._clock = int(state["clock"])
        self._ref = int(state["ref"])


_SAMPLERS: dict[str, type[Sampler]] = {
    cls.kind: cls for cls in (UniformSampler, LAPSampler, FadedLAPSampler)
}


def sampler_from_config(
    kind: str, capacity: int, config: dict[str, Any], *, device: torch.device | str | None = None
) -> Sampler:
    """Rebuild a sampler from ``state_dict()["kind"]`` and its :meth:`Sampler.config`.

    Args:
        kind: ``"uniform"``, ``"lap"`` or ``"faded"``.
        capacity: Number of slots.
        config: The sampler's ``config()``.
        device: Override of the saved device (prioritised samplers only).
    """
    cls = _SAMPLERS.get(kind)
    if cls is None:
        raise ValueError(f"unknown sampler kind {kind!r}; known: {sorted(_SAMPLERS)}")
    cfg = dict(config)
    if device is not None and "device" in cfg:
        cfg["device"] = str(torch.device(device))
    return cls(capacity, **cfg)
