"""Sum tree: totals equal the sum of leaves, draws land where the prefix sums say."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rl_buffers import SumTree

weights = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(deadline=None, max_examples=60)
@given(
    capacity=st.integers(1, 70),
    updates=st.lists(
        st.tuples(st.integers(0, 10**6), weights, st.booleans()), min_size=1, max_size=60
    ),
)
def test_total_equals_sum_of_leaves_after_random_updates(
    capacity: int, updates: list[tuple[int, float, bool]]
) -> None:
    tree = SumTree(capacity)
    ref = np.zeros(capacity)
    for raw_idx, value, batched in updates:
        i = raw_idx % capacity
        j = (i + 1) % capacity
        if batched and j != i:  # vector path, including a duplicate carrying the same value
            tree.set(np.array([i, i, j]), np.array([value, value, ref[j]]))
        else:
            tree.set_one(i, value)
        ref[i] = value
        np.testing.assert_array_equal(tree.leaves, ref)
        assert tree.total == pytest.approx(ref.sum(), rel=1e-12, abs=1e-300)
    # Every parent is exactly left + right: a rebuild from the leaves gives the same tree.
    rebuilt = SumTree(capacity)
    rebuilt.rebuild(ref.copy())
    assert rebuilt.total == tree.total


@settings(deadline=None, max_examples=60)
@given(
    leaves=st.lists(st.one_of(st.just(0.0), weights), min_size=1, max_size=50).filter(
        lambda w: sum(w) > 0
    ),
    us=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=20),
)
def test_find_matches_prefix_sums_and_never_returns_zero_weight(
    leaves: list[float], us: list[float]
) -> None:
    w = np.array(leaves)
    tree = SumTree(w.size)
    tree.rebuild(w)
    x = np.array(us) * tree.total
    got = tree.find(x)
    assert (w[got] > 0).all()
    # Exact answer where rounding is not an issue: searchsorted on the exact cumulative sums.
    cdf = np.cumsum(w)
    expect = np.searchsorted(cdf, x, side="right")
    far_from_edges = np.abs(cdf[np.minimum(expect, w.size - 1)] - x) > 1e-9 * tree.total
    far_from_edges &= np.abs(np.concatenate([[0.0], cdf])[expect] - x) > 1e-9 * tree.total
    np.testing.assert_array_equal(got[far_from_edges], expect[far_from_edges])


def test_find_at_the_total_lands_on_last_positive_leaf() -> None:
    tree = SumTree(5)
    tree.rebuild(np.array([1.0, 2.0, 3.0, 0.0, 0.0]))
    assert tree.find(np.array([6.0, 6.0 * (1 + 1e-15), 0.0, 1.0, 2.999]))[:4].tolist() == [
        2,
        2,
        0,
        1,
    ]


def test_state_dict_round_trip_is_bitwise() -> None:
    rng = np.random.default_rng(0)
    tree = SumTree(37)
    for _ in range(200):
        tree.set(rng.integers(0, 37, 3), np.full(3, rng.random()))
    other = SumTree(37)
    other.load_state_dict(tree.state_dict())
    x = rng.random(100) * tree.total
    assert other.total == tree.total
    np.testing.assert_array_equal(other.find(x), tree.find(x))


def test_bad_capacity_and_rebuild_shape() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SumTree(0)
    with pytest.raises(ValueError, match="expected shape"):
        SumTree(3).rebuild(np.zeros(4))
