"""Quantile matching and the fairness measures, by hand and as invariants."""

from __future__ import annotations

import pytest
import torch
from fairbisim.envs import GroupCounts
from fairbisim.fairness import fairness_metrics, quantile_pairs
from hypothesis import given, settings
from hypothesis import strategies as st


def test_quantile_pairs_by_hand() -> None:
    s0 = torch.tensor([3.0, 1.0, 2.0, 4.0])
    s1 = torch.tensor([10.0, 30.0, 20.0, 40.0])
    i0, i1 = quantile_pairs(s0, s1, 4)
    # ranks 0..3 of each group: (1, 10), (2, 20), (3, 30), (4, 40)
    assert i0.tolist() == [1, 2, 0, 3]
    assert i1.tolist() == [0, 2, 1, 3]
    # two quantiles (0.25, 0.75) of 4 samples: ranks 1 and 3
    i0, i1 = quantile_pairs(s0, s1, 2)
    assert s0[i0].tolist() == [2.0, 4.0]
    assert s1[i1].tolist() == [20.0, 40.0]
    # groups of different sizes: 2 samples vs 4, quantiles 1/8, 3/8, 5/8, 7/8
    i0, i1 = quantile_pairs(torch.tensor([5.0, 1.0]), s1, 4)
    assert i0.tolist() == [1, 1, 0, 0]
    assert s1[i1].tolist() == [10.0, 20.0, 30.0, 40.0]


def test_quantile_pairs_break_ties_at_random_and_reject_empty_groups() -> None:
    s0 = torch.zeros(100)  # one credit cluster: every sample ties
    s1 = torch.arange(100.0)
    g = torch.Generator().manual_seed(0)
    i0, _ = quantile_pairs(s0, s1, 50, g)
    assert len(set(i0.tolist())) == 50  # distinct samples, not always the first ones
    assert i0.tolist() != list(range(0, 100, 2))
    with pytest.raises(ValueError, match="non-empty"):
        quantile_pairs(torch.zeros(0), s1, 4)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=1, max_size=30),
    st.lists(st.floats(-5, 5), min_size=1, max_size=30),
    st.integers(1, 20),
)
def test_quantile_pairs_are_monotone_in_both_groups(a: list[float], b: list[float], k: int) -> None:
    s0, s1 = torch.tensor(a), torch.tensor(b)
    i0, i1 = quantile_pairs(s0, s1, k, torch.Generator().manual_seed(1))
    assert (s0[i0].diff() >= 0).all()
    assert (s1[i1].diff() >= 0).all()
    assert len(i0) == len(i1) == k


def test_fairness_metrics_by_hand() -> None:
    counts = GroupCounts(
        applicants=torch.tensor([10.0, 20.0], dtype=torch.float64),
        accepted=torch.tensor([5.0, 4.0], dtype=torch.float64),
        qualified=torch.tensor([4.0, 8.0], dtype=torch.float64),
        true_positives=torch.tensor([3.0, 2.0], dtype=torch.float64),
    )
    m = {k: float(v) for k, v in fairness_metrics(counts).items()}
    assert m["acceptance_rate_g0"] == 0.5
    assert m["acceptance_rate_g1"] == 0.2
    assert m["acceptance_gap"] == pytest.approx(0.3)
    assert m["tpr_g0"] == 0.75
    assert m["tpr_g1"] == 0.25
    assert m["tpr_gap"] == 0.5
