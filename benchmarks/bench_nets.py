"""rl-nets speed: vectorised Q-ensemble vs a loop of MLPs, integer random shift vs grid_sample,
and the dense-layer products on torch's default GEMM path (MKL ``addmm``/``mm``) vs oneDNN
(:mod:`rl_nets.gemm`) from small to MR.Q-sized layers (the evidence for ``gemm.MIN_MACS``).

Each case times a candidate against a baseline in the same process, alternating the two in
rounds so that load from other processes hits both alike, and reports the median time of each
and the ratio baseline / candidate (> 1 means the candidate is faster).

    uv run --no-sync python benchmarks/bench_nets.py            # writes benchmarks/results/nets.json
    uv run --no-sync python benchmarks/bench_nets.py --quick    # small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rl_buffers.io import atomic_write
from rl_nets import (
    MLP,
    EnsembleMLP,
    gemm,
    init_weights,
    reduce_ensemble,
    sample_shifts,
    shift_images,
)
from torch import Tensor

RESULTS = Path(__file__).parent / "results" / "nets.json"


def _median_ms(
    fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    times: list[float] = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append((clock() - start) * 1e3)
    return times


def compare(
    baseline: Callable[[], object],
    candidate: Callable[[], object],
    rounds: int,
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median ms of each over ``rounds`` alternating rounds of ``repeats`` calls (after warm-up),
    on ``clock`` (wall clock, or ``time.process_time``: CPU time, blind to preemption)."""
    for fn in (baseline, candidate):
        fn()
        fn()
    base: list[float] = []
    cand: list[float] = []
    for _ in range(rounds):
        base += _median_ms(baseline, repeats, clock)
        cand += _median_ms(candidate, repeats, clock)
    b, c = statistics.median(base), statistics.median(cand)
    return {"baseline_ms": round(b, 3), "candidate_ms": round(c, 3), "speedup": round(b / c, 3)}


def ensemble_case(members: int, batch: int, width: int, depth: int, train: bool) -> dict[str, Any]:
    """MR.Q-style Q heads (LayerNorm + ELU) on a zsa batch: N separate MLPs vs one EnsembleMLP."""
    torch.manual_seed(0)
    hidden = (width,) * depth
    mlps = [
        init_weights(MLP(width, 1, hidden, activation="elu", layer_norm="pre_activation"))
        for _ in range(members)
    ]
    ensemble = EnsembleMLP.from_mlps(mlps)
    x = torch.randn(batch, width)
    torch.testing.assert_close(ensemble(x), torch.stack([m(x) for m in mlps]))

    def loop() -> Tensor:
        q = reduce_ensemble(torch.stack([m(x) for m in mlps]), "min")
        if train:
            q.mean().backward()
        return q

    def vectorised() -> Tensor:
        q = reduce_ensemble(ensemble(x), "min")
        if train:
            q.mean().backward()
        return q

    def run(fn: Callable[[], Tensor]) -> Callable[[], object]:
        if train:
            return fn

        def no_grad() -> Tensor:
            with torch.no_grad():
                return fn()

        return no_grad

    return {
        "case": (
            f"ensemble N={members} width {width}x{depth} batch {batch} "
            f"{'forward+backward' if train else 'forward (no_grad)'}"
        ),
        "members": members,
        "batch": batch,
        "hidden": list(hidden),
        "baseline": "Python loop over N MLPs + stack",
        "candidate": "EnsembleMLP (batched matmul per layer)",
        **compare(run(loop), run(vectorised), rounds=5, repeats=3 if train else 5),
    }


def _grid_sample_shift(images: Tensor, shifts: Tensor, pad: int) -> Tensor:
    """The DrQ/MR.Q formulation: float conversion, replicate pad, bilinear grid_sample at pixel
    centres of the shifted crop."""
    b, _, h, w = images.shape
    x = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
    hp, wp = h + 2 * pad, w + 2 * pad
    offset = (pad - shifts).float()
    rows = torch.arange(h).view(1, h, 1) + offset[:, 0].view(b, 1, 1)
    cols = torch.arange(w).view(1, 1, w) + offset[:, 1].view(b, 1, 1)
    gy = ((2 * rows + 1) / hp - 1).expand(b, h, w)
    gx = ((2 * cols + 1) / wp - 1).expand(b, h, w)
    return F.grid_sample(x, torch.stack([gx, gy], -1), padding_mode="zeros", align_corners=False)


def shift_case(batch: int, channels: int, size: int, pad: int = 4) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8, generator=g)
    shifts = sample_shifts(batch, pad=pad, generator=g)
    ours = shift_images(images, shifts)
    torch.testing.assert_close(
        ours.float(), _grid_sample_shift(images, shifts, pad), atol=1e-2, rtol=0
    )
    return {
        "case": f"random shift {batch}x{channels}x{size}x{size} uint8, pad {pad}",
        "baseline": "float + replicate pad + grid_sample (MR.Q/DrQ-v2 style), float32 output",
        "candidate": "shift_images (clamped-index gather), uint8 output",
        **compare(
            lambda: _grid_sample_shift(images, shifts, pad),
            lambda: shift_images(images, shifts),
            rounds=5,
            repeats=3,
        ),
    }


def gemm_case(rows: int, k: int, n: int) -> dict[str, Any]:
    """A layer's three products on today's path (baseline) vs oneDNN (candidate)."""
    lp = torch.ops.mkldnn._linear_pointwise
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(rows, k, generator=g), torch.randn(n, k, generator=g), torch.randn(n)
    dy = torch.randn(rows, n, generator=g)
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "forward": (lambda: F.linear(x, w, b), lambda: lp(x, w, b, "none", [], "")),
        "grad_input": (lambda: dy.mm(w), lambda: lp(dy, w.t(), None, "none", [], "")),
        "grad_weight": (lambda: x.t().mm(dy), lambda: lp(dy.t(), x.t(), None, "none", [], "")),
    }
    reps = max(5, min(50, int(2e8 / (rows * k * n))))
    out: dict[str, Any] = {
        "case": f"dense layer {rows}x{k}x{n} (rows x in x out), {rows * k * n} multiply-adds",
        "baseline": "torch default (F.linear / mm: MKL)",
        "candidate": "oneDNN (torch.ops.mkldnn._linear_pointwise)",
        "macs": rows * k * n,
        "above_min_macs": rows * k * n >= gemm.MIN_MACS,
        "clock": "process CPU time (time preempted by other processes does not count)",
    }
    for what, (base, cand) in pairs.items():
        out[what] = compare(base, cand, rounds=5, repeats=reps, clock=time.process_time)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    parser.add_argument(
        "--gemm-only",
        action="store_true",
        help="only the GEMM path cases (default output benchmarks/results/nets_gemm.json)",
    )
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS.with_name("nets_gemm.json") if args.gemm_only else RESULTS
    torch.set_num_threads(args.threads)

    # (width, depth, batch): a small critic, where per-call overhead dominates, and MR.Q's value
    # head (zsa 512 -> 512 x3 -> 1, batch 256), where the matrix products dominate.
    sizes = [] if args.gemm_only else [(64, 2, 64)] if args.quick else [(64, 2, 64), (512, 3, 256)]
    shift_sizes = (32, 3, 84) if args.quick else (256, 9, 84)  # DMC-visual: 3 RGB frames
    cases: list[dict[str, Any]] = []
    for width, depth, batch in sizes:
        for members in (2, 10):
            for train in (True, False):
                cases.append(ensemble_case(members, batch, width, depth, train))
                print(json.dumps(cases[-1]))
    if not args.gemm_only:
        cases.append(shift_case(*shift_sizes))
        print(json.dumps(cases[-1]))
    if gemm.onednn_available():
        gemm_shapes = (
            [(64, 64, 64), (256, 512, 512)]
            if args.quick
            else [
                (256, 6, 256),
                (256, 17, 512),
                (100, 256, 256),
                (256, 64, 256),
                (256, 256, 256),
                (256, 512, 1),
                (256, 512, 512),
                (1280, 512, 512),
                (4096, 512, 512),
            ]
        )
        for shape in gemm_shapes:
            cases.append(gemm_case(*shape))
            print(json.dumps(cases[-1]))

    report = {
        "benchmark": "rl-nets",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "machine_report": gemm.machine_report(),
        "load_average": os.getloadavg(),
        "quick": args.quick,
        "command": " ".join(["python", *sys.argv]),
        "ratio": "speedup = baseline_ms / candidate_ms (medians)",
        "cases": cases,
    }
    with atomic_write(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
