from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from rl_nets import (
    MLP,
    EnsembleLinear,
    EnsembleMLP,
    init_weights,
    random_members,
    reduce_ensemble,
)
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

CONFIGS: list[dict[str, Any]] = [
    {"activation": "relu"},
    {"activation": "elu", "layer_norm": "pre_activation"},
    {"activation": "gelu", "layer_norm": "post_activation", "norm_affine": True},
    {
        "activation": "elu",
        "layer_norm": "pre_activation",
        "output_layer_norm": True,
        "output_activation": "elu",
    },
    {"activation": "silu", "output_layer_norm": True, "norm_affine": True},
]


def _mlps(n: int, seed: int, **kwargs: Any) -> list[MLP]:
    torch.manual_seed(seed)
    mlps = [MLP(5, 3, (16, 8), **kwargs) for _ in range(n)]
    with torch.no_grad():  # move affine LayerNorm parameters off (1, 0) so they matter
        for m in mlps:
            for name, p in m.named_parameters():
                if "norm" in name:
                    p.add_(0.3 * torch.randn_like(p))
    return mlps


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_equals_separate_mlps(kwargs: dict[str, Any]) -> None:
    mlps = _mlps(4, seed=0, **kwargs)
    ensemble = EnsembleMLP.from_mlps(mlps)
    x = torch.randn(2, 7, 5)
    expected = torch.stack([m(x) for m in mlps])  # (4, 2, 7, 3)
    torch.testing.assert_close(ensemble(x), expected)
    # Per-member inputs: member n reads x_n.
    xs = torch.randn(4, 6, 5)
    expected = torch.stack([m(xs[n]) for n, m in enumerate(mlps)])
    torch.testing.assert_close(ensemble(xs, per_member=True), expected)


def test_equals_torch_func_vmap_reference() -> None:
    mlps = _mlps(5, seed=1, activation="elu", layer_norm="pre_activation")
    params, buffers = stack_module_state(mlps)  # type: ignore[arg-type]
    base = MLP(5, 3, (16, 8), activation="elu", layer_norm="pre_activation").to("meta")

    def call(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(base, (p, b), (x,))

    x = torch.randn(9, 5)
    expected = torch.vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    torch.testing.assert_close(EnsembleMLP.from_mlps(mlps)(x), expected)


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_member_extraction_round_trip(kwargs: dict[str, Any]) -> None:
    torch.manual_seed(2)
    ensemble = EnsembleMLP(3, 5, 3, (16, 8), **kwargs)
    x = torch.randn(11, 5)
    y = ensemble(x)
    members = [ensemble.member(n) for n in range(3)]
    for n, m in enumerate(members):
        torch.testing.assert_close(m(x), y[n])
    torch.testing.assert_close(EnsembleMLP.from_mlps(members)(x), y)
    # A member is a copy, not a view.
    with torch.no_grad():
        members[0].out.weight.add_(1.0)
    torch.testing.assert_close(ensemble(x), y)


def test_single_sample_and_hand_computed_reduction() -> None:
    values = torch.tensor([[1.0, 5.0], [3.0, 2.0], [2.0, 8.0]])  # (N=3, B=2)
    torch.testing.assert_close(reduce_ensemble(values, "min"), torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(reduce_ensemble(values, "mean"), torch.tensor([2.0, 5.0]))
    torch.testing.assert_close(reduce_ensemble(values, "max"), torch.tensor([3.0, 8.0]))
    torch.testing.assert_close(reduce_ensemble(values.T, "min", dim=1), torch.tensor([1.0, 2.0]))
    ensemble = EnsembleMLP(2, 4, 1, (8,))
    assert ensemble(torch.randn(4)).shape == (2, 1)
    assert reduce_ensemble(ensemble(torch.randn(32, 4)), "min").shape == (32, 1)


@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_random_members_are_distinct_and_reproducible(size: int, num: int, seed: int) -> None:
    num = min(num, size)
    values = torch.arange(size, dtype=torch.float32).unsqueeze(1).expand(size, 3)
    picked = random_members(values, num, generator=torch.Generator().manual_seed(seed))
    assert picked.shape == (num, 3)
    ids = picked[:, 0].long().tolist()
    assert len(set(ids)) == num
    again = random_members(values, num, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(picked, again)


def test_members_are_initialised_independently() -> None:
    torch.manual_seed(3)
    ensemble = EnsembleMLP(4, 6, 2, (32,))
    first = ensemble.hidden[0]
    assert isinstance(first, EnsembleLinear)
    w = first.weight  # (4, 32, 6)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(w[i], w[j])
    # Default init equals N consecutive nn.Linear default inits (each member its own draw).
    torch.manual_seed(4)
    layer = EnsembleLinear(3, 6, 5)
    torch.manual_seed(4)
    reference = [nn.Linear(6, 5) for _ in range(3)]
    for n, ref in enumerate(reference):
        torch.testing.assert_close(layer.weight[n], ref.weight)
        assert layer.bias is not None
        torch.testing.assert_close(layer.bias[n], ref.bias)


def test_init_weights_per_member_matches_sequential_xavier() -> None:
    ensemble = EnsembleMLP(3, 6, 2, (32, 16))
    init_weights(ensemble, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    for layer in [*ensemble.hidden, ensemble.out]:
        assert isinstance(layer, EnsembleLinear)
        for n in range(3):
            ref = torch.empty(layer.out_features, layer.in_features)
            nn.init.xavier_uniform_(ref, gain=math.sqrt(2), generator=g)
            torch.testing.assert_close(layer.weight[n], ref)
        assert layer.bias is not None
        assert bool((layer.bias == 0).all())


def test_members_train_independently() -> None:
    torch.manual_seed(6)
    ensemble = EnsembleMLP(3, 4, 1, (8,), layer_norm="pre_activation", norm_affine=True)
    ensemble(torch.randn(10, 4))[1].sum().backward()
    for name, p in ensemble.named_parameters():
        assert p.grad is not None, name
        assert bool(p.grad[1].abs().sum() > 0), name
        assert bool((p.grad[0] == 0).all()), name
        assert bool((p.grad[2] == 0).all()), name


def test_state_dict_round_trip() -> None:
    torch.manual_seed(7)
    a = EnsembleMLP(2, 4, 3, (8,), layer_norm="pre_activation", norm_affine=True)
    b = EnsembleMLP(2, 4, 3, (8,), layer_norm="pre_activation", norm_affine=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 4)
    torch.testing.assert_close(a(x), b(x))


def test_linear_without_bias() -> None:
    layer = EnsembleLinear(2, 3, 4, bias=False)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(layer(x), torch.stack([x[n] @ layer.weight[n].T for n in range(2)]))
    torch.testing.assert_close(
        layer(x[0]), torch.stack([x[0] @ layer.weight[n].T for n in range(2)])
    )


def test_bad_input_is_named() -> None:
    ensemble = EnsembleMLP(3, 4, 1, (8,))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\)"):
        ensemble(torch.randn(5, 6))
    with pytest.raises(
        ValueError, match=r"per_member=True, x must have shape \(3, \.\.\., 4\), got \(2, 5, 4\)"
    ):
        ensemble(torch.randn(2, 5, 4), per_member=True)
    with pytest.raises(ValueError, match=r"x must have shape \(3, M, 4\) or \(M, 4\)"):
        ensemble.hidden[0](torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="expected 3 MLPs, got 2"):
        ensemble.load_mlps([MLP(4, 1, (8,)), MLP(4, 1, (8,))])
    with pytest.raises(ValueError, match=r"mlps\[1\] differs .*hidden_sizes"):
        ensemble.load_mlps([MLP(4, 1, (8,)), MLP(4, 1, (9,)), MLP(4, 1, (8,))])
    with pytest.raises(IndexError, match=r"member index must be in \[0, 3\), got 3"):
        ensemble.member(3)
    with pytest.raises(ValueError, match="reduction must be"):
        reduce_ensemble(torch.zeros(2, 3), "median")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="num must be <= the ensemble size 2"):
        random_members(torch.zeros(2, 3), 3, generator=torch.Generator())
    with pytest.raises(ValueError, match="num_members must be a positive int"):
        EnsembleMLP(0, 4, 1)
