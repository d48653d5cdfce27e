from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from rl_nets import TwoHot, TwoHotInterpolation, symexp, symlog

TOP = math.expm1(10.0)  # symexp(10) ≈ 22025.47, MR.Q's largest bin
TOP32 = float(
    torch.tensor(TOP, dtype=torch.float32).nextafter(torch.tensor(0.0))
)  # inside the float32 bins
INTERPOLATIONS: list[TwoHotInterpolation] = ["raw", "symlog"]


def test_symlog_symexp_hand_computed() -> None:
    x = torch.tensor([0.0, math.e - 1, -(math.e - 1), math.expm1(2.0)])
    torch.testing.assert_close(symlog(x), torch.tensor([0.0, 1.0, -1.0, 2.0]))
    torch.testing.assert_close(
        symexp(torch.tensor([0.0, 1.0, -2.0])), torch.tensor([0.0, math.e - 1, -math.expm1(2.0)])
    )


@given(st.floats(-1e30, 1e30, allow_nan=False))
def test_symexp_inverts_symlog_float64(v: float) -> None:
    x = torch.tensor([v], dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-12, atol=1e-300)


@given(st.floats(-1e6, 1e6, allow_nan=False, width=32))
def test_symexp_inverts_symlog_float32(v: float) -> None:
    x = torch.tensor([v], dtype=torch.float32)
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=2e-6, atol=1e-30)
    torch.testing.assert_close(symlog(symexp(symlog(x))), symlog(x), rtol=2e-6, atol=1e-30)


def test_mrq_bins() -> None:
    th = TwoHot()
    assert th.bins.shape == th.symlog_bins.shape == (65,)
    torch.testing.assert_close(th.symlog_bins, torch.linspace(-10, 10, 65))
    assert th.bins[32].item() == 0.0
    assert th.bins[-1].item() == pytest.approx(TOP, rel=1e-7)
    assert th.bins[0].item() == pytest.approx(-TOP, rel=1e-7)
    assert bool((th.bins.diff() > 0).all())
    # Bins are derived from the arguments, not saved.
    assert th.state_dict() == {}


def test_encode_hand_computed_three_bins() -> None:
    # Bins at symlog -1, 0, 1, i.e. raw -(e-1), 0, e-1.
    x = torch.tensor([(math.e - 1) / 4, 0.0, -(math.e - 1)])
    raw = TwoHot(3, -1.0, 1.0, interpolation="raw").encode(x)
    torch.testing.assert_close(
        raw, torch.tensor([[0.0, 0.75, 0.25], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    )
    s = math.log1p((math.e - 1) / 4)  # symlog of the first value, ≈ 0.3574
    sym = TwoHot(3, -1.0, 1.0, interpolation="symlog").encode(x)
    torch.testing.assert_close(
        sym, torch.tensor([[0.0, 1 - s, s], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    )


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_out_of_range_values_clamp_to_edge_bins(interpolation: TwoHotInterpolation) -> None:
    th = TwoHot(interpolation=interpolation)
    # The edge itself, beyond it (MR.Q's upper-index clamp to num_bins fails there), and ±inf.
    x = torch.tensor([TOP, 1e6, float("inf"), -TOP, -1e6, float("-inf")], dtype=torch.float64)
    probs = th.encode(x)
    last = torch.zeros(65, dtype=torch.float64)
    last[-1] = 1.0
    for row in probs[:3]:
        torch.testing.assert_close(row, last)
    for row in probs[3:]:
        torch.testing.assert_close(row, last.flip(0))
    decoded = th.decode_probs(probs)
    torch.testing.assert_close(
        decoded, torch.tensor([TOP] * 3 + [-TOP] * 3, dtype=torch.float64), rtol=1e-6, atol=0
    )


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@given(st.floats(-TOP32, TOP32, allow_nan=False))
def test_round_trip_inside_range_float64(interpolation: TwoHotInterpolation, v: float) -> None:
    th = TwoHot(interpolation=interpolation).double()
    x = torch.tensor([v], dtype=torch.float64)
    probs = th.encode(x)
    assert bool((probs >= 0).all())
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, dtype=torch.float64))
    nonzero = probs[0].nonzero().flatten()
    assert 1 <= len(nonzero) <= 2
    if len(nonzero) == 2:
        assert int(nonzero[1] - nonzero[0]) == 1
    # Bins are float32-rounded; the round trip is exact up to float64 arithmetic on those bins.
    torch.testing.assert_close(th.decode_probs(probs), x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@given(st.lists(st.floats(-TOP32, TOP32, allow_nan=False, width=32), min_size=1, max_size=16))
def test_round_trip_inside_range_float32(
    interpolation: TwoHotInterpolation, values: list[float]
) -> None:
    th = TwoHot(interpolation=interpolation)
    x = torch.tensor(values, dtype=torch.float32)
    probs = th.encode(x)
    assert probs.dtype == torch.float32
    assert probs.shape == (len(values), 65)
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(values)))
    torch.testing.assert_close(th.decode_probs(probs), x, rtol=1e-5, atol=1e-5)


@given(st.floats(-1e12, 1e12, allow_nan=False))
def test_any_value_decodes_to_its_clamped_value(v: float) -> None:
    th = TwoHot(num_bins=11, low=-3.0, high=3.0).double()
    x = torch.tensor(v, dtype=torch.float64)
    expected = x.clamp(th.bins[0], th.bins[-1])
    torch.testing.assert_close(th.decode_probs(th.encode(x)), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_decode_logits(interpolation: TwoHotInterpolation) -> None:
    th = TwoHot(interpolation=interpolation)
    # Uniform logits: the bins are symmetric, so the expectation is 0.
    torch.testing.assert_close(th.decode(torch.zeros(3, 65)), torch.zeros(3), atol=1e-3, rtol=0)
    # A confident one-hot decodes to its bin.
    logits = torch.full((65,), -1e4)
    logits[40] = 0.0
    assert th.decode(logits).item() == pytest.approx(th.bins[40].item(), rel=1e-6)
    # logits = log(two-hot) decode to the encoded value.
    x = torch.tensor([-123.4, 0.7, 5000.0])
    torch.testing.assert_close(
        th.decode(th.encode(x).clamp_min(1e-30).log()), x, rtol=1e-5, atol=1e-5
    )


def test_loss_hand_computed_and_gradient() -> None:
    th = TwoHot()
    target = torch.tensor([3.0, -1000.0, 0.0])
    # Uniform logits: log_softmax = -log(65) for every bin, and the labels sum to 1.
    loss = th.loss(torch.zeros(3, 65), target)
    torch.testing.assert_close(loss, torch.full((3,), math.log(65.0)))
    # d loss / d logits = softmax(logits) - twohot(target).
    logits = torch.randn(3, 65, requires_grad=True)
    th.loss(logits, target).sum().backward()
    assert logits.grad is not None
    torch.testing.assert_close(logits.grad, logits.detach().softmax(-1) - th.encode(target))


def test_loss_minimum_is_label_entropy() -> None:
    th = TwoHot()
    target = torch.tensor([2.5])
    labels = th.encode(target)
    entropy = -(labels[labels > 0] * labels[labels > 0].log()).sum()
    best = th.loss(labels.clamp_min(1e-30).log(), target)
    torch.testing.assert_close(best, entropy.reshape(1), rtol=1e-5, atol=1e-5)
    assert bool((th.loss(torch.randn(1, 65), target) > best).all())


def test_loss_does_not_differentiate_the_target() -> None:
    th = TwoHot()
    target = torch.tensor([1.5, 2.0], requires_grad=True)
    th.loss(torch.randn(2, 65, requires_grad=True), target).sum().backward()
    assert target.grad is None


def test_module_follows_dtype() -> None:
    th = TwoHot().double()
    assert th.bins.dtype == torch.float64
    x = torch.tensor([1.0], dtype=torch.float64)
    assert th.encode(x).dtype == torch.float64
    assert th.decode(torch.zeros(1, 65, dtype=torch.float64)).dtype == torch.float64


def test_bad_input_is_named() -> None:
    th = TwoHot()
    with pytest.raises(ValueError, match="x contains NaN"):
        th.encode(torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="floating-point"):
        th.encode(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"logits must have shape \(\.\.\., 65\), got \(4, 64\)"):
        th.decode(torch.zeros(4, 64))
    with pytest.raises(ValueError, match=r"probs must have shape \(\.\.\., 65\)"):
        th.decode_probs(torch.zeros(4, 51))
    with pytest.raises(
        ValueError, match=r"target must have the batch shape of logits \(4,\), got \(4, 1\)"
    ):
        th.loss(torch.zeros(4, 65), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="num_bins must be an int >= 2"):
        TwoHot(num_bins=1)
    with pytest.raises(ValueError, match="low < high"):
        TwoHot(low=1.0, high=1.0)
    with pytest.raises(ValueError, match="interpolation"):
        TwoHot(interpolation="linear")  # pyright: ignore[reportArgumentType]
