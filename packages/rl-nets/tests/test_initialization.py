from __future__ import annotations

import math

import pytest
import torch
from rl_nets import MLP, RELU_GAIN, EnsembleLinear, PixelEncoder, init_weights
from torch import nn


def test_relu_gain() -> None:
    assert nn.init.calculate_gain("relu") == pytest.approx(RELU_GAIN)


def test_xavier_matches_torch_in_module_order_and_zeroes_biases() -> None:
    mlp = MLP(7, 3, (64, 32), layer_norm="pre_activation", norm_affine=True)
    with torch.no_grad():
        for p in mlp.parameters():
            p.fill_(0.5)
    returned = init_weights(mlp, generator=torch.Generator().manual_seed(0))
    assert returned is mlp
    g = torch.Generator().manual_seed(0)
    for layer in [*mlp.hidden, mlp.out]:
        assert isinstance(layer, nn.Linear)
        ref = torch.empty_like(layer.weight)
        nn.init.xavier_uniform_(ref, gain=RELU_GAIN, generator=g)
        torch.testing.assert_close(layer.weight, ref)
        assert bool((layer.bias == 0).all())
    # LayerNorm scale/shift are not touched.
    for norm in mlp.norms:
        assert isinstance(norm, nn.LayerNorm)
        assert bool((norm.weight == 0.5).all())


def test_xavier_bound_and_spread() -> None:
    layer = init_weights(nn.Linear(400, 200), gain=2.0, generator=torch.Generator().manual_seed(1))
    bound = 2.0 * math.sqrt(6.0 / 600)
    w = layer.weight.detach()
    assert float(w.abs().max()) <= bound
    assert float(w.abs().max()) > 0.99 * bound
    assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)


@pytest.mark.parametrize("gain", [1.0, 0.01, RELU_GAIN])
def test_orthogonal_linear_and_conv(gain: float) -> None:
    linear = init_weights(nn.Linear(16, 8), "orthogonal", gain=gain)
    torch.testing.assert_close(
        linear.weight @ linear.weight.T, gain**2 * torch.eye(8), rtol=0, atol=1e-5
    )
    conv = init_weights(nn.Conv2d(4, 6, 3), "orthogonal", gain=gain)
    flat = conv.weight.reshape(6, -1)  # (6, 36): rows orthonormal up to gain
    torch.testing.assert_close(flat @ flat.T, gain**2 * torch.eye(6), rtol=0, atol=1e-5)
    assert conv.bias is not None
    assert bool((conv.bias == 0).all())


def test_orthogonal_ensemble_members_each_orthogonal_and_distinct() -> None:
    layer = init_weights(EnsembleLinear(3, 12, 5), "orthogonal", gain=1.0)
    for n in range(3):
        torch.testing.assert_close(
            layer.weight[n] @ layer.weight[n].T, torch.eye(5), rtol=0, atol=1e-5
        )
    assert not torch.equal(layer.weight[0], layer.weight[1])


def test_encoder_convs_get_xavier_with_conv_fans() -> None:
    encoder = init_weights(PixelEncoder(3, 64, 16), generator=torch.Generator().manual_seed(2))
    conv = encoder.convs[2]
    assert isinstance(conv, nn.Conv2d)
    bound = RELU_GAIN * math.sqrt(6.0 / (32 * 9 + 32 * 9))
    assert float(conv.weight.detach().abs().max()) <= bound
    assert conv.bias is not None
    assert bool((conv.bias == 0).all())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scheme must be"):
        init_weights(nn.Linear(2, 2), "kaiming")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="gain must be"):
        init_weights(nn.Linear(2, 2), gain=0.0)
