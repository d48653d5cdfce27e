"""The blocks trace into one graph under torch.compile, and run on CUDA when it is present."""

from __future__ import annotations

import pytest
import torch
from rl_nets import (
    MLP,
    EnsembleMLP,
    PixelEncoder,
    TwoHot,
    avg_l1_norm,
    frozen_copy,
    random_shift,
    reduce_ensemble,
    simnorm,
    soft_update,
)
from torch import Tensor

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")


@pytest.mark.slow
def test_update_step_compiles_without_graph_breaks() -> None:
    torch.manual_seed(0)
    encoder = MLP(6, 16, (32,), activation="elu", layer_norm="pre_activation")
    critic = EnsembleMLP(2, 16 + 2, 1, (32,), activation="elu", layer_norm="pre_activation")
    reward_head = MLP(16, 65, (32,), activation="elu", layer_norm="pre_activation")
    two_hot = TwoHot()

    def step(obs: Tensor, action: Tensor, reward: Tensor) -> Tensor:
        z = simnorm(avg_l1_norm(encoder(obs)), group_size=8)
        q = reduce_ensemble(critic(torch.cat([z, action], -1)), "min")
        return q.mean() + two_hot.loss(reward_head(z), reward).mean()

    compiled = torch.compile(step, backend="eager", fullgraph=True)
    obs, action, reward = torch.randn(8, 6), torch.randn(8, 2), torch.randn(8) * 10
    torch.testing.assert_close(compiled(obs, action, reward), step(obs, action, reward))


@pytest.mark.gpu
@requires_cuda
def test_blocks_on_cuda_match_cpu() -> None:
    torch.manual_seed(1)
    cuda = torch.device("cuda")
    ensemble = EnsembleMLP(4, 5, 1, (64, 64), layer_norm="pre_activation")
    x = torch.randn(32, 5)
    torch.testing.assert_close(
        ensemble.to(cuda)(x.to(cuda)).cpu(), ensemble.cpu()(x), rtol=1e-4, atol=1e-4
    )

    two_hot = TwoHot().to(cuda)
    r = torch.randn(1000, device=cuda) * 100
    torch.testing.assert_close(two_hot.decode_probs(two_hot.encode(r)), r, rtol=1e-5, atol=1e-4)

    obs = torch.randint(0, 256, (16, 9, 84, 84), dtype=torch.uint8)
    g_cpu = torch.Generator().manual_seed(2)
    g_cuda = torch.Generator(device=cuda).manual_seed(2)
    shifted = random_shift(obs.to(cuda), generator=g_cuda)
    assert shifted.device.type == "cuda"
    assert shifted.dtype == torch.uint8
    # A CPU generator works for CUDA images too, and gives the same result as on CPU.
    assert torch.equal(
        random_shift(obs.to(cuda), generator=g_cpu).cpu(),
        random_shift(obs, generator=torch.Generator().manual_seed(2)),
    )

    encoder = PixelEncoder(9, 84).to(cuda)
    assert encoder(shifted).shape == (16, 512)
    target = frozen_copy(encoder)
    soft_update(target, encoder, 0.5)
