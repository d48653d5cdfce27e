from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rl_nets import AvgL1Norm, SimNorm, avg_l1_norm, simnorm

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


def test_avg_l1_norm_hand_computed() -> None:
    x = torch.tensor([[1.0, -3.0], [0.0, 0.0], [2.0, 2.0]])
    expected = torch.tensor([[0.5, -1.5], [0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(avg_l1_norm(x), expected)
    torch.testing.assert_close(AvgL1Norm()(x), expected)


def test_avg_l1_norm_eps_bounds_divisor() -> None:
    x = torch.tensor([1e-9, -1e-9])
    # mean |x| = 1e-9 < eps = 1e-8: divided by eps, not by 1e-9.
    torch.testing.assert_close(avg_l1_norm(x, eps=1e-8), x / 1e-8)


@given(arrays("float64", st.tuples(st.integers(1, 4), st.integers(1, 8)), elements=finite))
def test_avg_l1_norm_rows_have_unit_mean_abs(a) -> None:  # type: ignore[no-untyped-def]
    x = torch.from_numpy(a)
    y = avg_l1_norm(x)
    scale = x.abs().mean(-1)
    big = scale > 1e-6
    torch.testing.assert_close(y.abs().mean(-1)[big], torch.ones_like(scale)[big])
    # Invariant to positive rescaling of a row.
    torch.testing.assert_close(avg_l1_norm(3.5 * x)[big], y[big])


def test_avg_l1_norm_bad_input() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        avg_l1_norm(torch.ones(3, dtype=torch.int32))
    with pytest.raises(ValueError, match="eps must be"):
        AvgL1Norm(eps=0.0)
    with pytest.raises(ValueError, match="d >= 1"):
        avg_l1_norm(torch.tensor(1.0))


def test_simnorm_hand_computed() -> None:
    x = torch.tensor([0.0, math.log(3.0), 5.0, 5.0])
    torch.testing.assert_close(simnorm(x, group_size=2), torch.tensor([0.25, 0.75, 0.5, 0.5]))
    # temperature 0.5 doubles the logits: softmax(0, 2 ln 3) = (1/10, 9/10).
    torch.testing.assert_close(
        SimNorm(group_size=2, temperature=0.5)(x), torch.tensor([0.1, 0.9, 0.5, 0.5])
    )


@given(
    arrays("float64", st.tuples(st.integers(1, 3), st.sampled_from([4, 8, 16])), elements=finite),
    st.sampled_from([1, 2, 4]),
    st.floats(0.1, 10.0),
)
def test_simnorm_groups_are_on_the_simplex(a, group_size: int, temperature: float) -> None:  # type: ignore[no-untyped-def]
    x = torch.from_numpy(a)
    y = simnorm(x, group_size, temperature)
    assert y.shape == x.shape
    groups = y.reshape(*x.shape[:-1], -1, group_size)
    assert bool((groups >= 0).all())
    torch.testing.assert_close(groups.sum(-1), torch.ones(groups.shape[:-1], dtype=y.dtype))
    # Softmax is shift-invariant within a group.
    torch.testing.assert_close(simnorm(x + 7.0, group_size, temperature), y)


def test_simnorm_bad_input() -> None:
    with pytest.raises(ValueError, match="multiple of group_size=8"):
        simnorm(torch.zeros(2, 12), group_size=8)
    with pytest.raises(ValueError, match="temperature"):
        SimNorm(temperature=0.0)
    with pytest.raises(ValueError, match="group_size must be a positive int"):
        SimNorm(group_size=0)
