"""Sum tree over non-negative float64 weights: O(log n) update and O(log n) draw per item.

The tree is a flat array of ``2 * P`` float64 (``P`` the next power of two >= capacity); node ``i``
has children ``2i`` and ``2i + 1``, the root is node 1 and leaf ``j`` is node ``P + j``. Every
parent is always stored as ``left + right`` recomputed from its children (never updated by adding
a delta), so there is no drift however many updates run: the root equals the sum of the leaves
summed pairwise, bit for bit, and :meth:`SumTree.rebuild` reproduces the same array.

Draws are vectorised over the batch with numpy: one gather/compare per level, no Python loop per
item.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["SumTree"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class SumTree:
    """Sum tree over ``capacity`` non-negative weights (leaves start at 0).

    Args:
        capacity: Number of leaves (>= 1).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._size = 1 << (capacity - 1).bit_length()  # P: leaves live at [P, P + capacity)
        self._depth = self._size.bit_length() - 1  # levels between root and leaves
        self._tree: FloatArray = np.zeros(2 * self._size, dtype=np.float64)

    @property
    def total(self) -> float:
        """Sum of all leaves."""
        return float(self._tree[1])

    @property
    def leaves(self) -> FloatArray:
        """Read-only view of the ``(capacity,)`` leaf weights."""
        view = self._tree[self._size : self._size + self.capacity]
        view.flags.writeable = False
        return view

    def get(self, indices: IntArray) -> FloatArray:
        """Leaf weights at ``indices`` (``(B,)`` int64) as ``(B,)`` float64."""
        return self._tree[self._size + indices]

    def set(self, indices: IntArray, values: FloatArray) -> None:
        """Set leaves ``indices`` to ``values`` and recompute their ancestors.

        Args:
            indices: ``(B,)`` int64 leaf indices in ``[0, capacity)``. Duplicates must carry equal
                values (the caller resolves conflicts).
            values: ``(B,)`` float64, finite and >= 0.
        """
        if indices.size == 0:
            return
        if indices.size == 1:
            self.set_one(int(indices[0]), float(values[0]))
            return
        tree = self._tree
        node = indices + self._size
        tree[node] = values
        for _ in range(self._depth):
            node = node >> 1  # duplicates just recompute the same parent twice
            tree[node] = tree[2 * node] + tree[2 * node + 1]

    def set_one(self, index: int, value: float) -> None:
        """Scalar fast path of :meth:`set` (plain Python loop over ``log2(P)`` levels)."""
        tree = self._tree
        node = index + self._size
        tree[node] = value
        while node > 1:
            node >>= 1
            tree[node] = tree[2 * node] + tree[2 * node + 1]

    def find(self, x: FloatArray) -> IntArray:
        """Leaf index of each prefix-sum target: the ``j`` with ``S(j) <= x < S(j + 1)``.

        ``S(j)`` is the sum of leaves ``< j``. A draw never lands on a zero-weight leaf: when
        float rounding near a boundary (an ``x`` at or just above a subtree's sum) walks a
        descent into an empty subtree, that draw is redone with a guarded descent that never
        enters a zero-sum subtree, landing on the nearest positive leaf instead.

        Args:
            x: ``(B,)`` float64 targets in ``[0, total)``; requires ``total > 0``.

        Returns:
            ``(B,)`` int64 leaf indices.
        """
        tree = self._tree
        rest = x.copy()
        node = np.ones(x.shape, dtype=np.int64)
        for _ in range(self._depth):  # 4 vectorised ops per level
            node <<= 1  # left child
            left_sum = tree[node]
            go_right = rest >= left_sum  # the left subtree covers [0, left_sum)
            np.subtract(rest, left_sum, out=rest, where=go_right)
            node += go_right
        bad = tree[node] <= 0.0
        if bad.any():
            node[bad] = self._find_guarded(x[bad])
        return node - self._size

    def _find_guarded(self, x: FloatArray) -> IntArray:
        """Descent that goes right only into a non-empty right subtree (returns tree nodes)."""
        tree = self._tree
        rest = x.copy()
        node = np.ones(x.shape, dtype=np.int64)
        for _ in range(self._depth):
            node <<= 1
            left_sum = tree[node]
            go_right = (rest >= left_sum) & (tree[node + 1] > 0.0)
            np.subtract(rest, left_sum, out=rest, where=go_right)
            node += go_right
        return node

    def rebuild(self, leaves: FloatArray) -> None:
        """Replace all leaves with ``leaves`` (``(capacity,)`` float64) and recompute every node."""
        if leaves.shape != (self.capacity,):
            raise ValueError(
                f"SumTree.rebuild: expected shape ({self.capacity},), got {leaves.shape}"
            )
        tree = self._tree
        tree[:] = 0.0
        tree[self._size : self._size + self.capacity] = leaves
        lo = self._size
        while lo > 1:
            hi, lo = lo, lo >> 1
            tree[lo:hi] = tree[2 * lo : 2 * hi : 2] + tree[2 * lo + 1 : 2 * hi : 2]

    def state_dict(self) -> dict[str, Any]:
        """Leaves only; the inner nodes are a pure function of them."""
        return {"capacity": self.capacity, "leaves": self.leaves.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (the tree is rebuilt bit for bit)."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"SumTree.load_state_dict: capacity {state['capacity']} != {self.capacity}"
            )
        self.rebuild(np.asarray(state["leaves"], dtype=np.float64))
