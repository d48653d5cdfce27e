"""Networks: shapes, the sigmoid range, the map/flat split, Batch Renormalization's modes, init."""

from __future__ import annotations

import math

import torch
from leo.config import NetworkConfig, PPOConfig
from leo.goals import CRAFTAX_CLASSIC_LAYOUT, ObsLayout
from leo.networks import ActorCritic, BatchRenorm, LEONetwork, UVFANetwork

NET = NetworkConfig(width=64, dense_layers=2, conv_features=8)


def test_leo_network_gives_every_goals_values_in_0_1() -> None:
    lay = CRAFTAX_CLASSIC_LAYOUT
    net = LEONetwork(lay, 136, 17, NET).eval()
    q = net(torch.rand(5, lay.dim))
    assert q.shape == (5, 136, 17)
    assert bool(((q > 0) & (q < 1)).all())
    # encoder output: the conv's (7, 9, 8) map, flattened, beside the 176 flat entries
    assert net.encoder.out_dim == 7 * 9 * 8 + lay.flat_size


def test_the_map_part_goes_through_the_conv_and_the_flat_part_around_it() -> None:
    lay = ObsLayout((2, 3), (("m", 2),), (("f", (1, 3)),))
    net = LEONetwork(lay, 4, 2, NetworkConfig(width=8, dense_layers=1, conv_features=4,
                                              norm_input=False))  # fmt: skip
    x = torch.zeros(1, lay.dim)
    base = net.encoder(x)
    x_flat = x.clone()
    x_flat[0, lay.flat_index("f", 0, 1)] = 1.0
    changed = (net.encoder(x_flat) - base).abs() > 0
    assert changed[0, -3:].tolist() == [False, True, False]  # the flat part passes unchanged
    assert not bool(changed[0, :-3].any())


def test_uvfa_and_actor_critic_take_the_goal_as_an_input() -> None:
    lay = CRAFTAX_CLASSIC_LAYOUT
    uvfa = UVFANetwork(lay, lay.dim, 17, NET).eval()
    ac = ActorCritic(lay, lay.dim, 17, NET, PPOConfig(actor_layers=1, critic_layers=1)).eval()
    obs = torch.rand(3, lay.dim)
    g1, g2 = torch.zeros(3, lay.dim), torch.zeros(3, lay.dim)
    g2[:, 5] = 1.0
    assert uvfa(obs, g1).shape == (3, 17)
    assert not torch.allclose(uvfa(obs, g1), uvfa(obs, g2))
    logits, value = ac(obs, g1)
    assert logits.shape == (3, 17)
    assert value.shape == (3,)
    # actor head initialised with gain 0.01: near-uniform policy at the start
    assert float(torch.softmax(logits.detach(), -1).max()) < 0.2


def test_batch_renorm_uses_batch_statistics_in_training_and_running_ones_in_eval() -> None:
    bn = BatchRenorm(2, momentum=0.9, warmup=2)
    x = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    y = bn.train()(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(2), atol=1e-6, rtol=0)  # batch-normalised
    torch.testing.assert_close(bn.running_mean, torch.tensor([0.2, 2.0]))  # 0.9*0 + 0.1*mean
    torch.testing.assert_close(bn.running_var, torch.tensor([0.9 + 0.1, 0.9 + 10.0]))
    z = bn.eval()(x)
    expected = (x - bn.running_mean) / torch.sqrt(bn.running_var + 1e-3)
    torch.testing.assert_close(z, expected)
    assert int(bn.steps) == 1


def test_dense_layers_are_orthogonal_with_gain_sqrt2_and_zero_bias() -> None:
    net = LEONetwork(ObsLayout(None, (), (("p", (2,)),)), 3, 4, NetworkConfig(width=16))
    lin = net.trunk[3]  # second dense layer (Linear, LayerNorm, ReLU, Linear, ...)
    w = lin.weight
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(16), atol=1e-5, rtol=0)
    assert bool((lin.bias == 0).all())
    head = net.head.weight  # (G*A, width) = (12, 16): rows orthonormal, gain 1
    torch.testing.assert_close(head @ head.T, torch.eye(12), atol=1e-5, rtol=0)
    assert math.isclose(float(torch.sigmoid(torch.zeros(()))), 0.5)
