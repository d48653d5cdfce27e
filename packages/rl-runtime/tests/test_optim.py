"""Fused Adam(W) and the compile switch."""

from __future__ import annotations

import pytest
import torch
from rl_runtime import optim
from rl_runtime.optim import fused_adam, maybe_compile


def _one_step(opt_factory, p0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    p = torch.nn.Parameter(p0.clone())
    opt = opt_factory([p])
    p.grad = grad.clone()
    opt.step()
    return p.detach()


def test_first_adam_step_by_hand() -> None:
    # Step 1 of Adam: m_hat = g, v_hat = g^2, so p <- p - lr * g / (|g| + eps) ~ p - lr * sign(g).
    p0 = torch.tensor([1.0, -2.0, 0.5])
    g = torch.tensor([0.3, -4.0, 1.0])
    lr, wd = 0.1, 0.5
    adam = _one_step(lambda ps: fused_adam(ps, lr, device="cpu"), p0, g)
    torch.testing.assert_close(adam, p0 - lr * torch.sign(g), atol=1e-6, rtol=0)
    # Coupled L2 (Adam): the decay enters the gradient, g' = g + wd * p.
    coupled = _one_step(lambda ps: fused_adam(ps, lr, weight_decay=wd, device="cpu"), p0, g)
    torch.testing.assert_close(coupled, p0 - lr * torch.sign(g + wd * p0), atol=1e-6, rtol=0)
    # Decoupled (AdamW): p <- p * (1 - lr * wd) - lr * sign(g).
    decoupled = _one_step(
        lambda ps: fused_adam(ps, lr, weight_decay=wd, decoupled=True, device="cpu"), p0, g
    )
    torch.testing.assert_close(
        decoupled, p0 * (1 - lr * wd) - lr * torch.sign(g), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("decoupled", [False, True])
def test_same_numerics_as_the_torch_optimizer_it_builds(decoupled: bool) -> None:
    """Bitwise equal to the ``torch.optim`` call the method packages made before (fused on CPU)."""
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(7, 3, generator=gen)
    grads = [torch.randn(7, 3, generator=gen) for _ in range(5)]
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ours_p, ref_p = torch.nn.Parameter(p0.clone()), torch.nn.Parameter(p0.clone())
    ours = fused_adam([ours_p], 3e-4, weight_decay=0.01, decoupled=decoupled, device="cpu")
    ref = cls([ref_p], lr=3e-4, weight_decay=0.01, fused=True)
    assert type(ours) is cls
    assert ours.defaults["fused"] is True
    for g in grads:
        for p, opt in ((ours_p, ours), (ref_p, ref)):
            p.grad = g.clone()
            opt.step()
    assert torch.equal(ours_p, ref_p)


def test_fused_only_where_a_kernel_exists() -> None:
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert fused_adam(p, 1e-3, device=torch.device("cpu")).defaults["fused"] is True
    # No fused kernel for other device types: the default implementation is asked for.
    meta = [torch.nn.Parameter(torch.zeros(2, device="meta"))]
    assert not fused_adam(meta, 1e-3, device="meta").defaults["fused"]
    # AdamW's own default decay (0.01) is never applied silently.
    assert fused_adam(p, 1e-3, decoupled=True, device="cpu").defaults["weight_decay"] == 0.0


def test_maybe_compile_swaps_only_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    def loss(x: torch.Tensor) -> torch.Tensor:
        return x.square().sum()

    assert maybe_compile(loss, False) is loss
    compiled_from: list[object] = []

    def fake_compile(fn):
        compiled_from.append(fn)
        return lambda *a: fn(*a) + 0

    monkeypatch.setattr(optim.torch, "compile", fake_compile)
    wrapped = maybe_compile(loss, True)
    assert wrapped is not loss
    assert compiled_from == [loss]
    assert wrapped(torch.ones(3)).item() == 3.0
