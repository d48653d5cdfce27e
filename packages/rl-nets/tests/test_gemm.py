"""rl_nets.gemm: the oneDNN path against today's path (F.linear / addmm) on every layer shape the
methods use, the fallbacks, determinism per path, checkpoints across paths, the auto rule, and a
pin on the torch internal it relies on."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from rl_nets import MLP, EnsembleLinear, EnsembleMLP, FastLinear, gemm, init_weights
from torch import Tensor, nn

# (rows, in, out) of every dense layer of the methods at their published sizes.
MRQ_SHAPES = [  # MR.Q / DR.Q, HalfCheetah (obs 17, action 6), batch 256, 5-step unroll
    (256, 17, 512),  # state encoder, first layer
    (1280, 17, 512),  # target encoding of the 5 unrolled next states
    (256, 512, 512),  # every 512 -> 512 hidden layer; zs output
    (1280, 512, 512),
    (256, 6, 256),  # action embedding
    (1280, 6, 256),  # the 5 actions embedded in one call
    (256, 768, 512),  # g's first layer on zs || za
    (256, 512, 578),  # MDP head: 1 + 512 + 65
    (256, 512, 1),  # Q output
    (256, 512, 6),  # policy output
    (1, 17, 512),  # acting
]
DRIFTQL_SHAPES = [  # DriftQL / FQL, e.g. cube (obs 28, action 5), noise 5, batch 256, 512 x 4
    (256, 33, 512),  # actor first layer on obs || noise
    (256, 512, 512),
    (256, 512, 5),
    (256, 33, 512),  # critic first layer on obs || action
    (256, 512, 1),
]
OT_ILFO_SHAPES = [  # TD3, HalfCheetah, 256 x 256 hidden, batch 256
    (256, 17, 256),
    (256, 256, 256),
    (256, 256, 6),
    (256, 23, 256),
    (256, 256, 1),
]
ALL_SHAPES = sorted(set(MRQ_SHAPES + DRIFTQL_SHAPES + OT_ILFO_SHAPES))

needs_onednn = pytest.mark.skipif(
    not gemm.onednn_available(), reason="this torch has no working oneDNN linear"
)


@pytest.fixture(autouse=True)
def _fresh_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv(gemm.ENV_VAR, raising=False)
    monkeypatch.setenv(gemm.CACHE_ENV_VAR, str(tmp_path / "gemm-cache"))
    gemm.set_gemm_path(None)
    gemm.clear_gemm_decisions()
    yield
    gemm.set_gemm_path(None)
    gemm.clear_gemm_decisions()


def _operands(rows: int, k: int, n: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=gen)
    w = torch.randn(n, k, generator=gen) / k**0.5
    b = torch.randn(n, generator=gen)
    g = torch.randn(rows, n, generator=gen)
    return x, w, b, g


def _run(
    fn: Callable[[Tensor, Tensor, Tensor | None], Tensor],
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    g: Tensor,
) -> list[Tensor]:
    """Output and the gradients of every operand for upstream gradient ``g``."""
    xs = x.clone().requires_grad_()
    ws = w.clone().requires_grad_()
    bs = None if b is None else b.clone().requires_grad_()
    y = fn(xs, ws, bs)
    y.backward(g)
    out = [y.detach(), xs.grad, ws.grad] + ([] if bs is None else [bs.grad])
    assert all(t is not None for t in out)
    return [t for t in out if t is not None]


def _assert_fp32_close(got: list[Tensor], want: list[Tensor]) -> None:
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        scale = b.abs().max().item() + 1.0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-6 * scale)


@needs_onednn
@pytest.mark.parametrize(("rows", "k", "n"), ALL_SHAPES)
def test_onednn_matches_todays_path_on_every_method_shape(rows: int, k: int, n: int) -> None:
    x, w, b, g = _operands(rows, k, n)
    for bias in (b, None):
        want = _run(F.linear, x, w, bias, g)
        with gemm.use_gemm_path("onednn"):
            assert gemm.plan_for(x, w, bias) == gemm.GemmPlan(True, True, True)
            got = _run(gemm.linear, x, w, bias, g)
        _assert_fp32_close(got, want)


@needs_onednn
@pytest.mark.parametrize(("rows", "k", "n"), [(256, 512, 512), (256, 768, 512), (256, 17, 512)])
def test_batched_inputs_match(rows: int, k: int, n: int) -> None:
    """(B, T, in) inputs, also non-contiguous ones, as the unrolled encoders pass them."""
    x, w, b, g = _operands(rows, k, n)
    x3, g3 = x.reshape(4, rows // 4, k), g.reshape(4, rows // 4, n)
    xt = x.reshape(rows // 4, 4, k).transpose(0, 1)  # non-contiguous (4, rows/4, k)
    for inp in (x3, xt):
        for bias in (b, None):
            want = _run(F.linear, inp, w, bias, g3)
            with gemm.use_gemm_path("onednn"):
                got = _run(gemm.linear, inp, w, bias, g3)
            _assert_fp32_close(got, want)


@needs_onednn
def test_each_mixed_plan_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every combination of paths for the three products gives today's result."""
    x, w, b, g = _operands(64, 48, 40)
    want = _run(F.linear, x, w, b, g)
    for bits in range(8):
        plan = gemm.GemmPlan(bool(bits & 1), bool(bits & 2), bool(bits & 4))
        monkeypatch.setattr(gemm, "plan_for", lambda *_, plan=plan: plan)
        _assert_fp32_close(_run(gemm.linear, x, w, b, g), want)


@needs_onednn
@pytest.mark.parametrize("members", [2, 10])
def test_ensemble_linear_matches_batched_matmul(members: int) -> None:
    torch.manual_seed(0)
    layer = EnsembleLinear(members, 33, 64)
    shared = torch.randn(32, 33)
    per_member = torch.randn(members, 32, 33)
    for x in (shared, per_member):
        outs: list[list[Tensor]] = []
        for path in ("default", "onednn"):
            layer.zero_grad(set_to_none=True)
            xs = x.clone().requires_grad_()
            with gemm.use_gemm_path(path):  # type: ignore[arg-type]
                y = layer(xs)
            y.square().sum().backward()
            assert layer.bias is not None
            assert layer.bias.grad is not None
            assert layer.weight.grad is not None
            assert xs.grad is not None
            outs.append([y.detach(), xs.grad, layer.weight.grad, layer.bias.grad])
        _assert_fp32_close(outs[1], outs[0])


def test_default_path_is_bitwise_todays_path() -> None:
    x, w, b, g = _operands(256, 512, 512)
    want = _run(F.linear, x, w, b, g)
    with gemm.use_gemm_path("default"):
        got = _run(gemm.linear, x, w, b, g)
    for a, c in zip(got, want, strict=True):
        assert torch.equal(a, c)


@pytest.mark.parametrize("path", ["default", "onednn", "auto"])
def test_each_path_is_bitwise_deterministic(path: str) -> None:
    torch.manual_seed(0)
    net = init_weights(MLP(40, 7, (512, 512), activation="elu", layer_norm="pre_activation"))
    x = torch.randn(3, 256, 40)
    runs: list[list[Tensor]] = []
    with gemm.use_gemm_path(path):  # type: ignore[arg-type]
        for _ in range(3):
            net.zero_grad(set_to_none=True)
            net(x).square().mean().backward()
            runs.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
    for other in runs[1:]:
        assert all(torch.equal(a, c) for a, c in zip(runs[0], other, strict=True))


class _PlainMLP(nn.Module):
    """rl_nets.MLP's parameter layout with torch's own nn.Linear (what older checkpoints hold)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(20, 64), nn.Linear(64, 64)])
        self.out = nn.Linear(64, 3)


def test_checkpoint_written_on_one_path_loads_on_the_other() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 20)
    with gemm.use_gemm_path("onednn"):
        writer = MLP(20, 3, (64, 64))
        y_written = writer(x).detach()
        state = writer.state_dict()
    assert set(state) == set(_PlainMLP().state_dict())
    assert all(isinstance(m, nn.Linear) for m in (*writer.hidden, writer.out))
    with gemm.use_gemm_path("default"):
        reader = MLP(20, 3, (64, 64))
        reader.load_state_dict(state, strict=True)
        torch.testing.assert_close(reader(x), y_written, rtol=1e-5, atol=1e-6)
    plain = _PlainMLP()
    plain.load_state_dict(reader.state_dict(), strict=True)
    reader.load_state_dict(plain.state_dict(), strict=True)


def test_fast_linear_is_an_nn_linear() -> None:
    layer = FastLinear(5, 4, bias=False)
    assert isinstance(layer, nn.Linear)
    assert layer.bias is None
    assert list(layer.state_dict()) == list(nn.Linear(5, 4, bias=False).state_dict())
    x = torch.randn(3, 5)
    torch.testing.assert_close(layer(x), x @ layer.weight.T)


# -- fallbacks ---------------------------------------------------------------------------------


def test_absent_onednn_falls_back_to_todays_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemm, "_onednn_op", lambda: None)
    x, w, b, g = _operands(256, 512, 512)
    want = _run(F.linear, x, w, b, g)
    for path in ("onednn", "auto"):
        with gemm.use_gemm_path(path):  # type: ignore[arg-type]
            assert not gemm.onednn_available()
            assert gemm.plan_for(x, w, b) == gemm.GemmPlan(False, False, False)
            got = _run(gemm.linear, x, w, b, g)
        assert all(torch.equal(a, c) for a, c in zip(got, want, strict=True))


def test_torch_without_mkldnn_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    x, w, b, _ = _operands(8, 4, 3)
    with gemm.use_gemm_path("onednn"):
        assert gemm.plan_for(x, w, b) == gemm.GemmPlan(False, False, False)


def test_wrong_onednn_is_detected_and_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(x: Tensor, w: Tensor, b: Tensor | None, *_: Any) -> Tensor:
        return F.linear(x, w, b) * 1.01

    monkeypatch.setattr(gemm, "_onednn_op", lambda: wrong)
    x, w, b, _ = _operands(8, 4, 3)
    with gemm.use_gemm_path("onednn"), pytest.warns(RuntimeWarning, match="differs"):
        assert gemm.plan_for(x, w, b) == gemm.GemmPlan(False, False, False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once only
        with gemm.use_gemm_path("onednn"):
            torch.testing.assert_close(gemm.linear(x, w, b), F.linear(x, w, b))


@needs_onednn
def test_other_devices_dtypes_and_transforms_take_todays_path() -> None:
    with gemm.use_gemm_path("onednn"):
        meta = torch.empty(256, 512, device="meta"), torch.empty(512, 512, device="meta")
        assert not gemm.plan_for(*meta).any_onednn  # a non-CPU tensor (as CUDA would be)
        assert gemm.linear(*meta).shape == (256, 512)
        x64, w64, b64, _ = (t.double() for t in _operands(16, 8, 4))
        assert not gemm.plan_for(x64, w64, b64).any_onednn
        assert torch.equal(gemm.linear(x64, w64, b64), F.linear(x64, w64, b64))
        x, w, b, _ = _operands(6, 8, 4)
        batched = torch.func.vmap(lambda r: gemm.linear(r, w, b))(x.reshape(2, 3, 8))
        torch.testing.assert_close(batched.reshape(6, 4), F.linear(x, w, b))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not gemm.plan_for(x, w, b).any_onednn
            assert gemm.linear(x, w, b).dtype == torch.bfloat16


@needs_onednn
@pytest.mark.slow
def test_under_torch_compile_the_products_match() -> None:
    """Compiled, the oneDNN products run as an opaque custom op (inductor's own lowering of
    ``_linear_pointwise`` only accepts constant weights); forward and gradients match eager."""
    torch.manual_seed(0)
    net = init_weights(MLP(64, 3, (256, 256), activation="elu", layer_norm="pre_activation"))
    x = torch.randn(2, 128, 64)

    def grads(fn: Callable[[], Tensor]) -> list[Tensor]:
        net.zero_grad(set_to_none=True)
        loss = fn()
        loss.backward()
        return [loss.detach()] + [p.grad.clone() for p in net.parameters() if p.grad is not None]

    def loss() -> Tensor:
        return net(x).square().mean()

    with gemm.use_gemm_path("default"):
        want = grads(loss)
    with gemm.use_gemm_path("onednn"):
        got = grads(torch.compile(loss, fullgraph=True))
    _assert_fp32_close(got, want)


# -- choosing a path ---------------------------------------------------------------------------


def test_path_setting_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gemm.gemm_path() == "auto"
    monkeypatch.setenv(gemm.ENV_VAR, "OneDNN ")
    assert gemm.gemm_path() == "onednn"
    with gemm.use_gemm_path("default"):
        assert gemm.gemm_path() == "default"
    assert gemm.gemm_path() == "onednn"
    gemm.set_gemm_path("auto")
    assert gemm.gemm_path() == "auto"
    monkeypatch.setenv(gemm.ENV_VAR, "mkl")
    gemm.set_gemm_path(None)
    with pytest.raises(ValueError, match="RL_NETS_GEMM must be one of"):
        gemm.gemm_path()
    with pytest.raises(ValueError, match="GEMM path must be one of"):
        gemm.set_gemm_path("fast")  # type: ignore[arg-type]


@needs_onednn
def test_auto_keeps_small_products_on_todays_path() -> None:
    x, w, b, g = _operands(64, 64, 64)  # 64^3 < MIN_MACS multiply-adds
    assert gemm.MIN_MACS > 64**3
    want = _run(F.linear, x, w, b, g)
    got = _run(gemm.linear, x, w, b, g)
    assert all(torch.equal(a, c) for a, c in zip(got, want, strict=True))
    assert gemm.gemm_decisions() == {}


@needs_onednn
def test_auto_rule_on_given_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    """oneDNN is kept for a product only when it is at least AUTO_MARGIN faster; decided once."""
    calls: list[int] = []
    fake = {
        "forward/default": 1.0,
        "forward/onednn": 0.9,  # 10% faster: oneDNN
        "grad_input/default": 1.0,
        "grad_input/onednn": 0.99,  # 1% faster: inside the margin, default
        "grad_weight/default": 1.0,
        "grad_weight/onednn": 1.2,  # slower: default
    }

    def best_ms(fns: dict[str, Callable[[], object]], *_: int) -> dict[str, float]:
        assert set(fns) == set(fake)
        calls.append(1)
        return fake

    monkeypatch.setattr(gemm, "_best_ms", best_ms)
    x, w, b, g = _operands(256, 256, 256)
    want = _run(F.linear, x, w, b, g)
    for _ in range(2):
        assert gemm.plan_for(x, w, b) == gemm.GemmPlan(True, False, False)
        _assert_fp32_close(_run(gemm.linear, x, w, b, g), want)
    assert len(calls) == 1
    threads = torch.get_num_threads()
    decided = gemm.gemm_decisions()[f"256x256x256@{threads}"]
    assert decided["forward"] == "onednn"
    assert decided["grad_input"] == "default"
    assert decided["best_ms"] == fake


@needs_onednn
def test_auto_measurement_leaves_the_global_rng_alone() -> None:
    x, w, b, _ = _operands(256, 256, 256)
    state = torch.get_rng_state()
    gemm.linear(x, w, b)
    assert gemm.gemm_decisions()  # it measured
    assert torch.equal(torch.get_rng_state(), state)


def test_mlp_and_ensemble_use_fast_linears() -> None:
    mlp = MLP(4, 2, (8,))
    assert all(type(m) is FastLinear for m in (*mlp.hidden, mlp.out))
    ens = EnsembleMLP(2, 4, 1, (8,))
    torch.testing.assert_close(ens(torch.ones(3, 4))[1], ens.member(1)(torch.ones(3, 4)))


# -- the torch internal this relies on ---------------------------------------------------------


@pytest.mark.skipif(
    not torch.backends.mkldnn.is_available()
    or platform.machine().lower() not in ("x86_64", "amd64"),
    reason="oneDNN is optional outside x86-64 builds",
)
def test_torch_internal_linear_pointwise_is_pinned() -> None:
    """``torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")`` must exist and compute
    ``x @ w.T + b``, also with transposed (non-contiguous) operands and no bias, on this torch. If
    a torch upgrade renames or changes it, this fails here instead of the layers silently
    falling back."""
    op = torch.ops.mkldnn._linear_pointwise
    x, w, b, g = _operands(37, 29, 23)
    torch.testing.assert_close(op(x, w, b, "none", [], ""), torch.addmm(b, x, w.t()))
    torch.testing.assert_close(op(x, w, None, "none", [], ""), x @ w.t())
    torch.testing.assert_close(op(g, w.t(), None, "none", [], ""), g @ w)
    torch.testing.assert_close(op(g.t(), x.t(), None, "none", [], ""), g.t() @ x)
    x3 = x.reshape(1, 37, 29)
    assert op(x3, w, b, "none", [], "").shape == (1, 37, 23)
    assert gemm.onednn_available()


# -- decisions shared by the machine's processes -----------------------------------------------


def _fake_best_ms(
    forward_onednn: float, calls: list[int]
) -> Callable[[dict[str, Callable[[], object]]], dict[str, float]]:
    def best_ms(fns: dict[str, Callable[[], object]], *_: int) -> dict[str, float]:
        calls.append(1)
        return {name: (forward_onednn if name == "forward/onednn" else 1.0) for name in fns}

    return best_ms


@needs_onednn
def test_a_stored_decision_is_what_the_next_process_takes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(gemm, "_best_ms", _fake_best_ms(0.5, calls))
    x, w, b, _ = _operands(256, 256, 256)
    assert gemm.plan_for(x, w, b) == gemm.GemmPlan(True, False, False)
    stored = list((tmp_path / "gemm-cache").rglob("256x256x256@*.json"))
    assert len(stored) == 1
    assert json.loads(stored[0].read_text())["forward"] is True
    # A new process (memory cleared) whose own timing would say otherwise reads the stored one.
    gemm.clear_gemm_decisions()
    monkeypatch.setattr(gemm, "_best_ms", _fake_best_ms(2.0, calls))
    assert gemm.plan_for(x, w, b) == gemm.GemmPlan(True, False, False)
    assert len(calls) == 1
    # A corrupt file is ignored (measured again, not trusted), and the cache can be switched off.
    stored[0].write_text("{not json")
    gemm.clear_gemm_decisions()
    assert gemm.plan_for(x, w, b) == gemm.GemmPlan(False, False, False)
    assert len(calls) == 2
    monkeypatch.setenv(gemm.CACHE_ENV_VAR, "off")
    gemm.clear_gemm_decisions()
    stored[0].unlink()
    gemm.plan_for(x, w, b)
    assert not list((tmp_path / "gemm-cache").rglob("*.json"))


@needs_onednn
def test_two_processes_take_the_same_paths(tmp_path: Path) -> None:
    probe = (
        "import torch; from rl_nets import gemm; torch.set_num_threads(1); "
        "x, w = torch.randn(256, 512), torch.randn(512, 512); "
        "print(list(gemm.plan_for(x, w, None)))"
    )
    env = {**os.environ, gemm.CACHE_ENV_VAR: str(tmp_path / "shared")}
    env.pop(gemm.ENV_VAR, None)
    plans = [
        subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert plans[0] == plans[1]
    assert len(list((tmp_path / "shared").rglob("256x512x512@1.json"))) == 1


@needs_onednn
def test_row_counts_share_their_power_of_two_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(gemm, "_best_ms", _fake_best_ms(0.5, calls))
    w = torch.randn(256, 256)
    for rows in (300, 400, 512):
        assert gemm.plan_for(torch.randn(rows, 256), w).forward
    assert len(calls) == 1
    assert list(gemm.gemm_decisions()) == [f"512x256x256@{torch.get_num_threads()}"]
