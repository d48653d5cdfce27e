from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from rl_nets import ACTIVATION_NAMES, MLP, make_activation
from torch import nn


def _set_linear(layer: nn.Linear, weight: list[list[float]], bias: list[float]) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))


@pytest.mark.parametrize("batch_shape", [(), (5,), (2, 3)])
@pytest.mark.parametrize("hidden", [(), (8,), (16, 8, 4)])
def test_shapes(batch_shape: tuple[int, ...], hidden: tuple[int, ...]) -> None:
    mlp = MLP(6, 3, hidden, layer_norm="pre_activation")
    y = mlp(torch.randn(*batch_shape, 6))
    assert y.shape == (*batch_shape, 3)
    assert len(mlp.hidden) == len(hidden)


def test_hand_computed_relu_no_norm() -> None:
    mlp = MLP(2, 1, (2,), activation="relu")
    _set_linear(mlp.hidden[0], [[1.0, 2.0], [-1.0, 1.0]], [0.0, -1.0])  # pyright: ignore[reportArgumentType]
    _set_linear(mlp.out, [[3.0, -2.0]], [0.5])
    # x = (1, 1): hidden pre-act (3, -1) -> relu (3, 0) -> 3*3 + 0.5 = 9.5
    assert mlp(torch.tensor([1.0, 1.0])).item() == pytest.approx(9.5)
    # x = (-1, 2): pre-act (3, 2) -> 9 - 4 + 0.5 = 5.5
    assert mlp(torch.tensor([-1.0, 2.0])).item() == pytest.approx(5.5)


def test_hand_computed_layer_norm_placement() -> None:
    # Hidden pre-activation is (-1, 3): mean 1, variance 4.
    eps = 1e-5
    pre = MLP(2, 1, (2,), activation="relu", layer_norm="pre_activation", norm_eps=eps)
    post = MLP(2, 1, (2,), activation="relu", layer_norm="post_activation", norm_eps=eps)
    for mlp in (pre, post):
        _set_linear(mlp.hidden[0], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])  # pyright: ignore[reportArgumentType]
        _set_linear(mlp.out, [[1.0, 2.0]], [0.0])
    x = torch.tensor([-1.0, 3.0])
    # pre: LN -> (-2, 2)/sqrt(4+eps) -> relu -> (0, 2/sqrt(4+eps)) -> 0 + 2*that
    assert pre(x).item() == pytest.approx(4 / math.sqrt(4 + eps), rel=1e-6)
    # post: relu -> (0, 3): mean 1.5, var 2.25 -> LN -> (-1.5, 1.5)/sqrt(2.25+eps) -> -1.5 + 3
    assert post(x).item() == pytest.approx(1.5 / math.sqrt(2.25 + eps), rel=1e-6)


def test_matches_mrq_base_mlp_reference() -> None:
    torch.manual_seed(0)
    mlp = MLP(7, 5, (16, 16), activation="elu", layer_norm="pre_activation")
    x = torch.randn(4, 7)
    l1, l2 = mlp.hidden[0], mlp.hidden[1]
    assert isinstance(l1, nn.Linear)
    assert isinstance(l2, nn.Linear)
    h = F.elu(F.layer_norm(F.linear(x, l1.weight, l1.bias), (16,)))
    h = F.elu(F.layer_norm(F.linear(h, l2.weight, l2.bias), (16,)))
    expected = F.linear(h, mlp.out.weight, mlp.out.bias)
    torch.testing.assert_close(mlp(x), expected)


def test_layer_norm_is_non_affine_by_default() -> None:
    plain = MLP(4, 2, (8, 8))
    normed = MLP(4, 2, (8, 8), layer_norm="pre_activation", output_layer_norm=True)
    affine = MLP(4, 2, (8, 8), layer_norm="pre_activation", norm_affine=True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(normed) == count(plain) == 4 * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2
    assert count(affine) == count(plain) + 2 * (8 + 8)


def test_output_layer_norm_and_activation() -> None:
    torch.manual_seed(1)
    mlp = MLP(3, 6, (8,), output_layer_norm=True)
    y = mlp(torch.randn(10, 3))
    torch.testing.assert_close(y.mean(-1), torch.zeros(10), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(10), atol=1e-3, rtol=0)
    linear = MLP(3, 6, (8,))
    squashed = MLP(3, 6, (8,), output_activation="tanh")
    squashed.load_state_dict(linear.state_dict())
    x = torch.randn(10, 3)
    torch.testing.assert_close(squashed(x), torch.tanh(linear(x)))
    assert squashed.output_layer is squashed.out


def test_every_activation_name_builds_and_behaves() -> None:
    x = torch.linspace(-3, 3, 13)
    expected = {
        "relu": F.relu(x),
        "elu": F.elu(x),
        "gelu": F.gelu(x),
        "silu": F.silu(x),
        "tanh": torch.tanh(x),
        "mish": F.mish(x),
        "leaky_relu": F.leaky_relu(x),
        "sigmoid": torch.sigmoid(x),
        "identity": x,
    }
    assert set(expected) == set(ACTIVATION_NAMES)
    for name in ACTIVATION_NAMES:
        torch.testing.assert_close(make_activation(name)(x), expected[name])
        mlp = MLP(2, 2, (3,), activation=name)
        assert mlp(torch.randn(2)).shape == (2,)


def test_gradients_reach_every_parameter() -> None:
    mlp = MLP(4, 2, (8, 8), layer_norm="post_activation", norm_affine=True, output_layer_norm=True)
    mlp(torch.randn(16, 4)).square().sum().backward()
    for name, p in mlp.named_parameters():
        assert p.grad is not None, name
        assert bool(p.grad.abs().sum() > 0), name


def test_bad_input_is_named() -> None:
    mlp = MLP(4, 2, (8,))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\), got \(3, 5\)"):
        mlp(torch.randn(3, 5))
    with pytest.raises(TypeError, match=r"floating-point dtype, got torch\.int64"):
        mlp(torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        mlp([1.0, 2.0, 3.0, 4.0])  # pyright: ignore[reportArgumentType]


def test_bad_construction_is_named() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(4, 2, activation="swish")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="layer_norm must be one of"):
        MLP(4, 2, layer_norm="before")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match=r"hidden_sizes\[1\] must be a positive int, got 0"):
        MLP(4, 2, (8, 0))
    with pytest.raises(ValueError, match="in_dim must be a positive int"):
        MLP(0, 2)
