from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from rl_nets import MLP, TargetMismatchError, frozen_copy, hard_update, soft_update
from torch import nn


class _Net(nn.Module):
    def __init__(self, hidden: int = 8, *, extra: bool = False, running_stats: bool = True):
        super().__init__()
        self.lin1 = nn.Linear(3, hidden)
        self.bn = nn.BatchNorm1d(hidden, track_running_stats=running_stats)
        self.lin2 = nn.Linear(hidden, 1)
        self.extra = nn.Linear(1, 1) if extra else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin2(torch.relu(self.bn(self.lin1(x))))
        return y if self.extra is None else self.extra(y)


def _net(hidden: int = 8, *, extra: bool = False, running_stats: bool = True) -> _Net:
    return _Net(hidden, extra=extra, running_stats=running_stats)


def _fill(module: nn.Module, value: float) -> None:
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            t.fill_(value)


def test_frozen_copy() -> None:
    torch.manual_seed(0)
    source = _net()
    source(torch.randn(4, 3)).sum().backward()
    target = frozen_copy(source)
    assert all(not p.requires_grad and p.grad is None for p in target.parameters())
    assert all(p.requires_grad for p in source.parameters())
    assert target.training == source.training
    source.eval()
    target.eval()
    x = torch.randn(5, 3)
    torch.testing.assert_close(target(x), source(x))
    with torch.no_grad():
        source.lin1.weight.add_(1.0)
        source.get_buffer("bn.running_mean").add_(1.0)
    assert not torch.equal(target.lin1.weight, source.lin1.weight)
    assert not torch.equal(
        target.get_buffer("bn.running_mean"), source.get_buffer("bn.running_mean")
    )


def test_soft_update_hand_computed() -> None:
    source, target = _net(), frozen_copy(_net())
    _fill(source, 1.0)
    _fill(target, 0.0)
    soft_update(target, source, 0.25)
    for name, p in target.named_parameters():
        assert bool((p == 0.25).all()), name
    assert bool((target.get_buffer("bn.running_var") == 0.25).all())
    # Integer buffers are counters: copied, not averaged.
    assert int(target.get_buffer("bn.num_batches_tracked")) == 1


def test_tau_zero_and_one_are_exact() -> None:
    torch.manual_seed(1)
    source, target = _net(), frozen_copy(_net())
    before = {k: v.clone() for k, v in target.state_dict().items()}
    soft_update(target, source, 0.0)
    for k, v in target.state_dict().items():
        assert torch.equal(v, before[k]), k
    soft_update(target, source, 1.0)
    for k, v in target.state_dict().items():
        assert torch.equal(v, source.state_dict()[k]), k


@given(st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_soft_update_is_a_convex_combination(tau: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    source = frozen_copy(MLP(3, 2, (4,)))
    target = frozen_copy(MLP(3, 2, (4,)))
    with torch.no_grad():
        for p in [*source.parameters(), *target.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g))
    old = {k: v.clone() for k, v in target.state_dict().items()}
    soft_update(target, source, tau)
    for k, v in target.state_dict().items():
        expected = (1 - tau) * old[k] + tau * source.state_dict()[k]
        torch.testing.assert_close(v, expected, rtol=1e-5, atol=1e-6)


def test_buffer_policies() -> None:
    source, target = _net(), frozen_copy(_net())
    _fill(source, 1.0)
    for policy, expected in [("ignore", 0.0), ("copy", 1.0), ("average", 0.5)]:
        _fill(target, 0.0)
        soft_update(target, source, 0.5, buffers=policy)  # type: ignore[arg-type]
        assert bool((target.get_buffer("bn.running_mean") == expected).all()), policy
        assert bool((target.lin1.weight == 0.5).all()), policy


def test_hard_update_copies_parameters_and_buffers() -> None:
    torch.manual_seed(2)
    source, target = _net(), frozen_copy(_net())
    source.train()
    source(torch.randn(16, 3))  # moves BatchNorm running stats
    hard_update(target, source)
    for k, v in target.state_dict().items():
        assert torch.equal(v, source.state_dict()[k]), k


def test_target_never_receives_gradients() -> None:
    torch.manual_seed(3)
    online = MLP(3, 1, (8,))
    target = frozen_copy(online)
    x = torch.randn(4, 3)
    with torch.no_grad():
        y = target(x)
    (online(x) - y).square().mean().backward()
    assert all(p.grad is None for p in target.parameters())
    assert all(p.grad is not None for p in online.parameters())
    # Even without no_grad the frozen target builds no graph to its parameters.
    assert not target(x).requires_grad


def test_mismatch_names_the_offender() -> None:
    source = _net(8)
    with pytest.raises(
        TargetMismatchError,
        match=r"parameter 'lin1\.weight': target shape \(9, 3\) != source shape \(8, 3\)",
    ):
        soft_update(frozen_copy(_net(9)), source, 0.1)
    bigger = frozen_copy(_net(8, extra=True))
    with pytest.raises(
        TargetMismatchError,
        match=r"target has 8 parameters and source has 6; in source only: \[\]; in target only: \['extra\.weight', 'extra\.bias'\]",
    ):
        hard_update(bigger, source)
    no_stats = frozen_copy(_net(8, running_stats=False))
    with pytest.raises(
        TargetMismatchError,
        match=r"buffer.*in source only: \['bn\.running_mean', 'bn\.running_var', 'bn\.num_batches_tracked'\]",
    ):
        soft_update(no_stats, source, 0.1)
    with pytest.raises(
        TargetMismatchError,
        match=r"parameter 'lin1\.weight': target dtype torch.float64 != source dtype torch.float32",
    ):
        hard_update(frozen_copy(_net()).double(), source)


def test_trainable_or_swapped_target_is_rejected() -> None:
    online = _net()
    target = frozen_copy(online)
    with pytest.raises(TargetMismatchError, match=r"target parameter 'lin1\.weight' requires grad"):
        soft_update(online, target, 0.1)  # arguments swapped
    with pytest.raises(TargetMismatchError, match="requires grad"):
        hard_update(_net(), online)
    with pytest.raises(TargetMismatchError, match="same module"):
        soft_update(target, target, 0.1)


@pytest.mark.parametrize("tau", [-0.1, 1.5, float("nan"), float("inf")])
def test_bad_tau(tau: float) -> None:
    with pytest.raises(ValueError, match="tau must be in"):
        soft_update(frozen_copy(_net()), _net(), tau)


def test_bad_buffer_policy() -> None:
    with pytest.raises(ValueError, match="buffers must be"):
        soft_update(frozen_copy(_net()), _net(), 0.1, buffers="mean")  # pyright: ignore[reportArgumentType]
