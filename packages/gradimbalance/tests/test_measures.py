"""The estimator, the gain, GRPO's advantages and the gradient-proportional arm, by hand."""

from __future__ import annotations

import math

import pytest
import torch
from gradimbalance.measures import (
    CrossProductAccumulator,
    cross_product_sq_norm,
    gradient_proportional_probs,
    group_advantages,
    learning_gain,
    plain_sq_norm,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def test_cross_product_by_hand() -> None:
    g = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, -1.0]])
    # pairs: <g1,g2> = 3, <g1,g3> = -2, <g2,g3> = 0 -> mean over the 3 pairs = 1/3
    assert cross_product_sq_norm(g).item() == pytest.approx(1.0 / 3.0)
    assert plain_sq_norm(g).item() == pytest.approx((4 / 3) ** 2 + (1 / 3) ** 2)
    with pytest.raises(ValueError, match="m >= 2"):
        cross_product_sq_norm(g[:1])


def test_estimator_is_unbiased_where_the_plain_norm_is_biased_by_trace_cov_over_m() -> None:
    """Synthetic gradients g_i = mu + noise, noise ~ N(0, diag(sigma^2)): over many trials the
    cross-product estimate averages to ||mu||^2 and ||mean g||^2 to ||mu||^2 + tr(Cov)/m."""
    gen = torch.Generator().manual_seed(0)
    d, m, trials = 20, 4, 40_000
    mu = torch.randn(d, generator=gen, dtype=torch.float64) * 0.3
    sigma = torch.rand(d, generator=gen, dtype=torch.float64) + 0.5
    grads = mu + sigma * torch.randn(trials, m, d, generator=gen, dtype=torch.float64)
    total = grads.sum(1)  # (trials, d)
    est = (total.square().sum(1) - grads.square().sum((1, 2))) / (m * (m - 1))  # (trials,)
    plain = grads.mean(1).square().sum(1)  # (trials,)
    target = mu.square().sum().item()
    bias = sigma.square().sum().item() / m
    se_est = est.std().item() / math.sqrt(trials)
    se_plain = plain.std().item() / math.sqrt(trials)
    assert abs(est.mean().item() - target) < 4 * se_est
    assert abs(plain.mean().item() - (target + bias)) < 4 * se_plain
    assert bias > 20 * se_plain  # the bias is far outside the noise: the test can fail
    # The batched function agrees with the per-trial formula.
    assert cross_product_sq_norm(grads[0]).item() == pytest.approx(est[0].item())
    # And its estimate can be negative when the noise dominates (no clamping).
    assert (est < 0).any()


@settings(max_examples=40, deadline=None)
@given(m=st.integers(2, 6), seed=st.integers(0, 1000))
def test_accumulator_equals_the_batched_estimator(m: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    grads = [[torch.randn(3, 2, generator=gen), torch.randn(4, generator=gen)] for _ in range(m)]
    acc = CrossProductAccumulator()
    for g in grads:
        acc.add(g)
    flat = torch.stack([torch.cat([p.reshape(-1) for p in g]) for g in grads]).double()
    assert acc.estimate() == pytest.approx(cross_product_sq_norm(flat).item(), rel=1e-9, abs=1e-12)
    assert acc.plain() == pytest.approx(plain_sq_norm(flat).item(), rel=1e-9)
    assert acc.mean_sq() == pytest.approx(flat.square().sum(1).mean().item(), rel=1e-9)


def test_accumulator_counts_unreached_parameters_as_zero() -> None:
    acc = CrossProductAccumulator()
    acc.add([torch.tensor([1.0, 0.0]), None])
    acc.add([torch.tensor([1.0, 2.0]), None])
    assert acc.estimate() == pytest.approx(1.0)  # <g1, g2> over the one pair
    with pytest.raises(ValueError, match=">= 2"):
        CrossProductAccumulator().estimate()


def test_learning_gain_by_hand() -> None:
    r = [0.0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.9]
    # t = 3, s = 2: mean(R4, R5) - mean(R1, R2) = 0.55 - 0.15
    assert learning_gain(r, 3, 2) == pytest.approx(0.4)
    # t = 3, s = 3: mean(R4..R6) - mean(R0..R2) = 2/3 - 0.1
    assert learning_gain(r, 3, 3) == pytest.approx(2 / 3 - 0.1)
    assert math.isnan(learning_gain(r, 1, 2))  # window before step 0
    assert math.isnan(learning_gain(r, 5, 2))  # window past the end
    # A step where the task was not drawn is left out of its window.
    assert learning_gain([0.0, math.nan, 1.0, 1.0, 0.5], 2, 2) == pytest.approx(0.75 - 0.0)
    with pytest.raises(ValueError, match="window must be >= 1"):
        learning_gain(r, 3, 0)


def test_group_advantages_by_hand() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv = group_advantages(rewards, 4)
    # group 1: mean 0.25, unbiased std sqrt(0.25) = 0.5
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25]) / (0.5 + 1e-4)
    torch.testing.assert_close(adv[:4], expected)
    assert (adv[4:] == 0).all()  # all-equal group: exactly zero
    assert (group_advantages(torch.zeros(6), 3) == 0).all()
    torch.testing.assert_close(
        group_advantages(rewards, 4, scale="none")[:4], torch.tensor([0.75, -0.25, -0.25, -0.25])
    )
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(rewards, 3)


def test_gradient_proportional_probabilities() -> None:
    p = gradient_proportional_probs([3.0, 1.0, 0.0, -2.0], floor=0.05)
    # (1 - 4 * 0.05) = 0.8 shared as 3:1:0:0
    assert p == pytest.approx([0.05 + 0.6, 0.05 + 0.2, 0.05, 0.05])
    assert sum(p) == pytest.approx(1.0)
    assert gradient_proportional_probs([-1.0, 0.0], 0.1) == [0.5, 0.5]
    assert gradient_proportional_probs([math.nan, 1.0], 0.1) == [0.5, 0.5]
    with pytest.raises(ValueError, match="impossible"):
        gradient_proportional_probs([1.0, 1.0, 1.0], 0.4)
