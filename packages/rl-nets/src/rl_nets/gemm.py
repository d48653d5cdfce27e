"""Dense layers on the fastest correct CPU matrix-multiply path torch offers.

Torch computes ``nn.Linear`` on the CPU with ``addmm``/``mm`` from its BLAS (MKL in the official
x86 wheels). MKL is widely reported to pick slower kernels on non-Intel CPUs, and torch also ships
oneDNN, which it exposes as ``torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")`` =
``x @ w.T + b`` (an internal op: no stability promise). This module computes a dense layer's
three products — forward ``x @ W.T + b``, input gradient ``g @ W`` and weight gradient ``g.T @ x``
— each on one of two paths:

* ``"default"``: today's path, exactly what ``F.linear`` and its autograd do;
* ``"onednn"``: ``_linear_pointwise`` (the two gradients as products with transposed views).

Which one is chosen by :func:`gemm_path` (``RL_NETS_GEMM`` in the environment, or
:func:`set_gemm_path`, or the :func:`use_gemm_path` context):

* ``"auto"`` (the default): a product smaller than :data:`MIN_MACS` multiply-adds stays on the
  default path (per-call overhead dominates there, ``benchmarks/bench_nets.py``); for every larger
  ``(rows, in, out, threads)``, rows rounded up to a power of two (so that varying batch sizes
  share a few decisions), the three products are timed once on both paths with operands of that
  shape (interleaved, best of several) and oneDNN is kept for a product only where it wins by at
  least :data:`AUTO_MARGIN`. Decisions are kept for the process (:func:`gemm_decisions`) and
  stored for the machine (one small JSON file per shape under ``~/.cache/rl_nets/gemm/<CPU and
  torch fingerprint>``, or ``$RL_NETS_GEMM_CACHE``; first writer wins), so that every process on
  the machine, a resumed run included, takes the same paths.
* ``"default"``: always today's path (bitwise the same as ``F.linear``).
* ``"onednn"``: oneDNN for every product it can take.

Whatever the setting, the default path is used where oneDNN is absent or wrong: torch without
``torch.ops.mkldnn._linear_pointwise`` or without mkldnn, a first-use self-check against the
default path that fails (a warning says so once), a non-CPU tensor, a dtype other than float32,
CPU autocast, dynamic shapes under ``torch.compile``, and functorch transforms (``vmap``,
``grad``). Under ``torch.compile`` with static shapes the decision is taken while tracing and the
oneDNN products run as the opaque custom op ``rl_nets::onednn_linear`` (inductor lowers
``_linear_pointwise`` itself only for constant, prepacked weights). Both paths are
deterministic run to run; they differ from each other by float rounding only (fp32 tolerance).
Under ``"auto"`` the choice comes from timings: runs on one machine agree bit for bit through the
stored decisions (unless ``RL_NETS_GEMM_CACHE=off``), runs on different machines may not; force a
path for bitwise reproducibility across machines.

:class:`FastLinear` is a drop-in ``nn.Linear`` (same parameters and ``state_dict`` keys) whose
forward is :func:`linear`; :class:`rl_nets.MLP` and :class:`rl_nets.EnsembleLinear` use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AUTO_MARGIN",
    "CACHE_ENV_VAR",
    "ENV_VAR",
    "GEMM_PATHS",
    "MIN_MACS",
    "FastLinear",
    "GemmPath",
    "GemmPlan",
    "clear_gemm_decisions",
    "ensemble_linear",
    "gemm_decisions",
    "gemm_path",
    "linear",
    "machine_report",
    "onednn_available",
    "plan_for",
    "set_gemm_path",
    "use_gemm_path",
]

GemmPath = Literal["auto", "default", "onednn"]
"""How dense layers pick their matrix-multiply path (see the module docstring)."""

GEMM_PATHS: tuple[GemmPath, ...] = ("auto", "default", "onednn")
ENV_VAR = "RL_NETS_GEMM"
"""Environment variable that sets the path (``auto``, ``default`` or ``onednn``)."""

CACHE_ENV_VAR = "RL_NETS_GEMM_CACHE"
"""Environment variable: folder of the ``"auto"`` decisions shared by the machine's processes
(``off``: none, each process decides alone)."""

MIN_MACS = 1 << 24
"""Under ``"auto"``, products of fewer multiply-adds (rows x in x out) stay on the default path."""

AUTO_MARGIN = 0.03
"""Under ``"auto"``, oneDNN must be at least this much faster (relative) to be chosen."""

_Op = Literal["forward", "grad_input", "grad_weight"]


class GemmPlan(NamedTuple):
    """The path of each of a layer's three products (``True``: oneDNN)."""

    forward: bool
    grad_input: bool
    grad_weight: bool

    @property
    def any_onednn(self) -> bool:
        return self.forward or self.grad_input or self.grad_weight


_DEFAULT_PLAN = GemmPlan(False, False, False)
_ONEDNN_PLAN = GemmPlan(True, True, True)

_forced: GemmPath | None = None
_decisions: dict[tuple[int, int, int, int], GemmPlan] = {}
_timings: dict[tuple[int, int, int, int], dict[str, float]] = {}
_available: bool | None = None


def _onednn_op() -> Callable[..., Tensor] | None:
    """``torch.ops.mkldnn._linear_pointwise`` when this torch has it (looked up on every call, so
    that a test can take it away)."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return cast(Callable[..., Tensor], torch.ops.mkldnn._linear_pointwise)
    except (AttributeError, RuntimeError):
        return None


def _self_check(op: Callable[..., Tensor]) -> str | None:
    """Compare the three oneDNN products (with the transposed views the backward passes) to the
    default path on small random operands; return what went wrong, or None."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(37, 29, generator=gen)
    w = torch.randn(23, 29, generator=gen)
    b = torch.randn(23, generator=gen)
    g = torch.randn(37, 23, generator=gen)
    cases = (
        ("forward", op(x, w, b, "none", [], ""), torch.addmm(b, x, w.t())),
        ("forward without bias", op(x, w, None, "none", [], ""), x.mm(w.t())),
        ("input gradient", op(g, w.t(), None, "none", [], ""), g.mm(w)),
        ("weight gradient", op(g.t(), x.t(), None, "none", [], ""), g.t().mm(x)),
    )
    for what, got, want in cases:
        if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
            return f"{what} differs from addmm/mm"
    return None


def onednn_available() -> bool:
    """Whether the oneDNN path exists in this torch and passes its self-check (run once)."""
    global _available
    op = _onednn_op()
    if op is None:
        return False
    if _available is None:
        try:
            problem = _self_check(op)
        except RuntimeError as err:
            problem = f"raised {type(err).__name__}: {str(err).splitlines()[0]}"
        _available = problem is None
        if problem is not None:
            warnings.warn(
                f"rl_nets: oneDNN linear (torch.ops.mkldnn._linear_pointwise) {problem}; dense "
                "layers use torch's default matrix multiply",
                RuntimeWarning,
                stacklevel=2,
            )
    return _available


def _check_path(path: str, what: str = "GEMM path") -> GemmPath:
    for known in GEMM_PATHS:
        if path == known:
            return known
    raise ValueError(f"{what} must be one of {list(GEMM_PATHS)}, got {path!r}")


def gemm_path() -> GemmPath:
    """The path in force: :func:`set_gemm_path`'s, else ``$RL_NETS_GEMM``, else ``"auto"``."""
    if _forced is not None:
        return _forced
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if not env:
        return "auto"
    return _check_path(env, ENV_VAR)


def set_gemm_path(path: GemmPath | None) -> None:
    """Force a path for this process (``None``: back to ``$RL_NETS_GEMM`` / ``"auto"``)."""
    global _forced
    _forced = None if path is None else _check_path(path)


@contextmanager
def use_gemm_path(path: GemmPath) -> Generator[None]:
    """Force ``path`` inside a ``with`` block (restores the previous setting)."""
    global _forced
    previous = _forced
    _forced = _check_path(path)
    try:
        yield
    finally:
        _forced = previous


def gemm_decisions() -> dict[str, dict[str, Any]]:
    """The ``"auto"`` decisions made so far: ``"rows x in x out @ threads"`` (rows rounded up to a
    power of two) -> the path of each product and the timings (best CPU ms of each path) they
    came from."""
    out: dict[str, dict[str, Any]] = {}
    for key, plan in sorted(_decisions.items()):
        m, k, n, threads = key
        out[f"{m}x{k}x{n}@{threads}"] = {
            **{op: "onednn" if on else "default" for op, on in plan._asdict().items()},
            "best_ms": _timings.get(key, {}),
        }
    return out


def clear_gemm_decisions() -> None:
    """Forget this process's ``"auto"`` decisions and the self-check (made or read again on next
    use; the decisions stored for the machine stay)."""
    global _available
    _decisions.clear()
    _timings.clear()
    _available = None


def _operands_ok(*tensors: Tensor) -> bool:
    """Whether these operands may take the oneDNN path at all (float32 on the CPU)."""
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def _best_ms(
    fns: dict[str, Callable[[], object]], rounds: int = 6, calls: int = 2
) -> dict[str, float]:
    """Best milliseconds per call of each function, timed in interleaved rounds after a warm-up.

    The clock is the process's CPU time: time the process spends preempted by others' work
    (shared machines) does not count, so the decision follows the kernels, not the load."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.process_time()
            for _ in range(calls):
                fn()
            times[name].append((time.process_time() - start) * 1e3 / calls)
    return {name: round(min(v), 4) for name, v in times.items()}


def _measure(
    m: int, k: int, n: int, op: Callable[..., Tensor]
) -> tuple[GemmPlan, dict[str, float]]:
    """Time the three products of an ``(m, k) x (n, k)`` layer on both paths (own operands, drawn
    from a private generator so that the caller's random streams are untouched)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = torch.randn(m, k, generator=gen)
        w = torch.randn(n, k, generator=gen)
        b = torch.randn(n, generator=gen)
        g = torch.randn(m, n, generator=gen)
        wt = w.t()
        fns: dict[str, Callable[[], object]] = {
            "forward/default": lambda: F.linear(x, w, b),
            "forward/onednn": lambda: op(x, w, b, "none", [], ""),
            "grad_input/default": lambda: g.mm(w),
            "grad_input/onednn": lambda: op(g, wt, None, "none", [], ""),
            "grad_weight/default": lambda: x.t().mm(g),
            "grad_weight/onednn": lambda: op(g.t(), x.t(), None, "none", [], ""),
        }
        best = _best_ms(fns)
    choice = [
        best[f"{what}/onednn"] < (1.0 - AUTO_MARGIN) * best[f"{what}/default"]
        for what in ("forward", "grad_input", "grad_weight")
    ]
    return GemmPlan(*choice), best


def _decide(m: int, k: int, n: int) -> GemmPlan:
    """The plan of an ``(m rows, k in, n out)`` float32 CPU layer under the current setting."""
    path = gemm_path()
    if path == "default":
        return _DEFAULT_PLAN
    op = _onednn_op()
    if op is None or not onednn_available():
        return _DEFAULT_PLAN
    if path == "onednn":
        return _ONEDNN_PLAN
    if m * k * n < MIN_MACS:
        return _DEFAULT_PLAN
    rows = 1 << (m - 1).bit_length()  # row counts share the decision of their power-of-two bucket
    key = (rows, k, n, torch.get_num_threads())
    plan = _decisions.get(key)
    if plan is None:
        plan, _timings[key] = _shared_decision(key, lambda: _measure(rows, k, n, op))
        _decisions[key] = plan
    return plan


def _cache_dir() -> Path | None:
    """Where ``"auto"`` decisions are shared between processes: ``$RL_NETS_GEMM_CACHE`` (``off``:
    nowhere), else ``$XDG_CACHE_HOME/rl_nets/gemm`` or ``~/.cache/rl_nets/gemm``, in a folder
    named after this machine's CPU and torch build (:func:`machine_report`)."""
    setting = os.environ.get(CACHE_ENV_VAR, "").strip()
    if setting.lower() in ("off", "none", "0"):
        return None
    if setting:
        base = Path(setting)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "rl_nets" / "gemm"
    report = machine_report()
    for volatile in ("torch_threads", "gemm_path", "onednn_linear_available", "cpu_count"):
        report.pop(volatile)
    fingerprint = hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:16]
    return base / fingerprint


def _read_decision(path: Path) -> tuple[GemmPlan, dict[str, float]] | None:
    """A stored decision, or None if the file is absent or not one (then it is ignored)."""
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    entry = cast(dict[str, object], data)
    flags = [entry.get(op) for op in GemmPlan._fields]
    best = entry.get("best_ms", {})
    if not all(isinstance(f, bool) for f in flags) or not isinstance(best, dict):
        return None
    timings = {
        str(name): float(v)
        for name, v in cast(dict[object, object], best).items()
        if isinstance(v, int | float)
    }
    return GemmPlan(*(bool(f) for f in flags)), timings


def _shared_decision(
    key: tuple[int, int, int, int], measure: Callable[[], tuple[GemmPlan, dict[str, float]]]
) -> tuple[GemmPlan, dict[str, float]]:
    """The machine's stored decision for ``key``, else ``measure()`` stored for the next
    processes (first writer wins: every process on this machine then takes the same paths, so a
    resumed run computes bit for bit what an uninterrupted one would)."""
    folder = _cache_dir()
    m, k, n, threads = key
    target = None if folder is None else folder / f"{m}x{k}x{n}@{threads}.json"
    if target is not None and (stored := _read_decision(target)) is not None:
        return stored
    plan, best = measure()
    if target is None:
        return plan, best
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**plan._asdict(), "best_ms": best}), encoding="utf-8")
        try:
            os.link(tmp, target)  # atomic, and fails if another process stored it first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    except OSError:
        return plan, best  # read-only or full disk: this process keeps its own decision
    return _read_decision(target) or (plan, best)


def _plan_bits(m: int, k: int, n: int) -> int:
    """:func:`_decide` as a bit mask that torch.compile takes as a constant (run, not traced)."""
    plan = _decide(m, k, n)
    return int(plan.forward) | int(plan.grad_input) << 1 | int(plan.grad_weight) << 2


_decide_while_compiling = cast(
    Callable[[int, int, int], int],
    torch.compiler.assume_constant_result(_plan_bits),  # pyright: ignore[reportUnknownMemberType]
)


def plan_for(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> GemmPlan:
    """The path of each product of ``linear(x, weight, bias)`` under the current setting.

    Args:
        x: ``(..., in)`` input.
        weight: ``(out, in)``.
        bias: ``(out,)`` or None.

    Returns:
        The plan; all ``False`` (today's path) whenever oneDNN may not be used.
    """
    operands = (x, weight) if bias is None else (x, weight, bias)
    if not _operands_ok(*operands) or x.dim() == 0 or weight.dim() != 2:
        return _DEFAULT_PLAN
    k, n = weight.shape[1], weight.shape[0]
    if x.shape[-1] != k or k == 0 or n == 0 or x.numel() == 0:
        return _DEFAULT_PLAN
    m = x.numel() // k
    if torch.is_autocast_enabled("cpu"):
        return _DEFAULT_PLAN  # autocast picks the matmul dtype; leave it to F.linear
    if torch.compiler.is_compiling():
        if not isinstance(m, int):  # pyright: ignore[reportUnnecessaryIsInstance]
            return _DEFAULT_PLAN  # dynamic shapes: no constant to decide on
        bits = _decide_while_compiling(m, k, n)
        return GemmPlan(bool(bits & 1), bool(bits & 2), bool(bits & 4))
    if torch._C._are_functorch_transforms_active():  # pyright: ignore[reportPrivateUsage]
        return _DEFAULT_PLAN  # vmap / grad transforms: autograd.Function without vmap rules
    return _decide(m, k, n)


@torch.library.custom_op("rl_nets::onednn_linear", mutates_args=())
def _onednn_linear_op(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight.T + bias`` on oneDNN, as an opaque op that torch.compile calls as it is
    (inductor lowers ``_linear_pointwise`` only for constant, prepacked weights)."""
    op = _onednn_op()
    if op is None:
        return F.linear(x, weight, bias)
    return op(x, weight, bias, "none", [], "")


def _onednn_linear_fake(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return x.new_empty(x.shape[0], weight.shape[0])


_onednn_linear_op.register_fake(_onednn_linear_fake)  # pyright: ignore[reportUnknownMemberType]


def _onednn(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """oneDNN's ``x @ weight.T + bias`` for 2-D ``x``: the raw op in eager mode (no dispatch
    overhead), the custom op while torch.compile traces, ``F.linear`` if the op went away."""
    if torch.compiler.is_compiling():
        return _onednn_linear_op(x, weight, bias)
    op = _onednn_op()
    if op is None:
        return F.linear(x, weight, bias)
    return op(x, weight, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """``x @ W.T + b`` for 2-D ``x`` with each of the three products on the path given."""

    @staticmethod
    def forward(  # pyright: ignore[reportIncompatibleMethodOverride]
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        plan: tuple[bool, bool, bool],
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.grad_input_onednn, ctx.grad_weight_onednn = plan[1], plan[2]
        ctx.has_bias = bias is not None
        return _onednn(x, weight, bias) if plan[0] else F.linear(x, weight, bias)

    @staticmethod
    def backward(  # pyright: ignore[reportIncompatibleMethodOverride]
        ctx: Any, grad: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        x, weight = cast(tuple[Tensor, Tensor], ctx.saved_tensors)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _onednn(grad, weight.t(), None) if ctx.grad_input_onednn else grad.mm(weight)
        if ctx.needs_input_grad[1]:
            if ctx.grad_weight_onednn:
                grad_w = _onednn(grad.t(), x.t(), None)
            else:
                grad_w = x.t().mm(grad).t()  # the layout addmm's autograd produces
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b, None


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)`` with each product on the path :func:`plan_for` picks.

    Args:
        x: ``(..., in)`` input (any number of leading dimensions).
        weight: ``(out, in)``.
        bias: ``(out,)`` or None.

    Returns:
        ``(..., out)``; equal to ``F.linear`` to fp32 rounding, and bitwise equal to it when every
        product is on the default path.
    """
    plan = plan_for(x, weight, bias)
    if not plan.any_onednn:
        return F.linear(x, weight, bias)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    if not needs_grad:
        y = _onednn(x2, weight, bias) if plan.forward else F.linear(x2, weight, bias)
    else:
        y = _OneDNNLinear.apply(x2, weight, bias, tuple(plan))
    return cast(Tensor, y).reshape(*lead, weight.shape[0])


def ensemble_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor | None:
    """Member-wise ``x_n @ weight[n].T + bias[n]`` through :func:`linear`, or None when every
    product of the members' shape is on the default path (the caller then keeps its batched
    matmul).

    Args:
        x: ``(N, M, in)`` per-member input or ``(M, in)`` shared by the members.
        weight: ``(N, out, in)``.
        bias: ``(N, out)`` or None.

    Returns:
        ``(N, M, out)`` or None.
    """
    shared = x.dim() == 2
    first = x if shared else x[0]
    if not plan_for(first, weight[0], None if bias is None else bias[0]).any_onednn:
        return None
    outs = [
        linear(x if shared else x[i], weight[i], None if bias is None else bias[i])
        for i in range(weight.shape[0])
    ]
    return torch.stack(outs)


_ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "asimd",
    "sve",
)


def machine_report() -> dict[str, Any]:
    """What decides the GEMM paths' speed here, for benchmark records: CPU model, vendor, family
    and model numbers and the vector flags (Linux ``/proc/cpuinfo``), torch's CPU capability, its
    BLAS and oneDNN, the thread count, whether oneDNN passed its self-check and the path setting."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if not key:
                    break  # end of the first processor's block
                info.setdefault(key, value.strip())
    except OSError:
        pass
    flags = set((info.get("flags") or info.get("Features") or "").split())
    config = torch.__config__.show()
    onednn = next((line.strip() for line in config.splitlines() if "MKL-DNN" in line), "")
    blas = next((line.strip() for line in config.splitlines() if "Math Kernel" in line), "")
    return {
        "cpu_model": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": info.get("vendor_id", ""),
        "cpu_family_model_stepping": [
            info.get("cpu family", ""),
            info.get("model", ""),
            info.get("stepping", ""),
        ],
        "cpu_isa_flags": sorted(flags & set(_ISA_FLAGS)),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_blas": blas.lstrip("- ") or "not MKL",
        "torch_onednn": onednn.lstrip("- ") or "none",
        "torch_threads": torch.get_num_threads(),
        "onednn_linear_available": onednn_available(),
        "gemm_path": gemm_path(),
    }


class FastLinear(nn.Linear):
    """``nn.Linear`` whose products take the path :func:`linear` picks.

    Same constructor, parameters, ``state_dict`` keys and initialisation as ``nn.Linear`` (it is
    one: ``isinstance(layer, nn.Linear)`` holds), so a checkpoint written with either loads into
    the other.

    Shapes:
        ``forward``: ``(..., in_features)`` → ``(..., out_features)``.
    """

    def forward(self, input: Tensor) -> Tensor:
        return linear(input, self.weight, self.bias)
