"""Fast GEMM path vs today's path: DriftQL's and OT-ILfO's update steps on the CPU.

Every dense layer of these methods is an ``rl_nets`` block (``MLP``, ``EnsembleMLP``), so it
runs on the path :mod:`rl_nets.gemm` picks. This script builds each method's agent twice from the
same seed, one whose updates run under the ``"auto"`` setting (oneDNN or torch's default per
product, chosen by timing the network's own shapes once) and one forced onto today's path
(``"default"``: ``addmm``/``mm``, MKL), checks that their first update's losses agree to fp32
tolerance, then times their ``update`` calls alternately in rounds so that load from other
processes hits both alike. It reports the median ms per update of each and the ratio
today / fast (> 1: the fast path is faster), per thread count.

* DriftQL (``driftql.make_agent``, the paper's networks: actor and critic 4 x 512 GELU, critic
  LayerNorm, 2 critics) at OGBench cube-single's sizes (observation 28, action 5), batch 256,
  the default number of drift samples; also FQL's update (same networks, 10-step flow).
* OT-ILfO's learner (``ot_ilfo.TD3Agent``, the paper's TD3: 256 x 256 ReLU, twin critics) at
  HalfCheetah's sizes (observation 17 + the time entry, action 6), batch 100 (its trainer's).

    uv run --no-sync python benchmarks/bench_fastpath_methods.py           # threads 1 and 2
    uv run --no-sync python benchmarks/bench_fastpath_methods.py --quick   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from driftql import default_config, make_agent
from ot_ilfo import TD3Agent, TD3Config
from rl_buffers import TransitionBatch
from rl_buffers.io import atomic_write
from rl_nets import gemm
from torch import Tensor

RESULTS = Path(__file__).parent / "results" / "fastpath_methods.json"


def _batch(size: int, obs_dim: int, action_dim: int) -> TransitionBatch:
    g = torch.Generator().manual_seed(0)
    return TransitionBatch(
        obs=torch.randn(size, obs_dim, generator=g),
        action=torch.rand(size, action_dim, generator=g) * 2 - 1,
        reward=-torch.rand(size, generator=g),
        next_obs=torch.randn(size, obs_dim, generator=g),
        not_done=torch.ones(size),
        indices=torch.arange(size),
    )


def _time_batch(size: int, obs_dim: int, action_dim: int) -> TransitionBatch:
    """A TD3 batch whose last observation entry is a time to horizon in (0, 1]."""
    b = _batch(size, obs_dim, action_dim)
    g = torch.Generator().manual_seed(1)
    t = torch.randint(1, 1001, (size, 1), generator=g) / 1000
    return TransitionBatch(
        obs=torch.cat([b.obs[:, :-1], t], 1),
        action=b.action,
        reward=b.reward,
        next_obs=torch.cat([b.next_obs[:, :-1], (t - 1e-3).clamp(min=0.0)], 1),
        not_done=b.not_done,
        indices=b.indices,
    )


def _max_metric_gap(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    return max(abs(float(a[k]) - float(b[k])) for k in a)


def compare(
    name: str,
    build: Callable[[], Any],
    batch: TransitionBatch,
    rounds: int,
    repeats: int,
) -> dict[str, Any]:
    """Median ms per ``update`` of two same-seed agents, one per path, timed alternately."""
    agents: dict[str, tuple[Any, gemm.GemmPath]] = {
        "fast": (build(), "auto"),
        "today": (build(), "default"),
    }
    first: dict[str, Mapping[str, Tensor]] = {}
    for label, (agent, path) in agents.items():
        with gemm.use_gemm_path(path):
            first[label] = agent.update(batch)
            agent.update(batch)  # warm-up
    gap = _max_metric_gap(first["fast"], first["today"])
    times: dict[str, list[float]] = {label: [] for label in agents}
    cpu: dict[str, list[float]] = {label: [] for label in agents}
    for _ in range(rounds):
        for label, (agent, path) in agents.items():
            with gemm.use_gemm_path(path):
                for _ in range(repeats):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    agent.update(batch)
                    times[label].append((time.perf_counter() - start) * 1e3)
                    cpu[label].append((time.process_time() - start_cpu) * 1e3)
    fast, today = statistics.median(times["fast"]), statistics.median(times["today"])
    fast_cpu, today_cpu = statistics.median(cpu["fast"]), statistics.median(cpu["today"])
    case = {
        "case": name,
        "threads": torch.get_num_threads(),
        "fast_ms": round(fast, 2),
        "today_ms": round(today, 2),
        "today_over_fast": round(today / fast, 3),
        "fast_cpu_ms": round(fast_cpu, 2),
        "today_cpu_ms": round(today_cpu, 2),
        "today_over_fast_cpu_times": round(today_cpu / fast_cpu, 3),
        "first_update_max_metric_gap": gap,
    }
    print(json.dumps(case), flush=True)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small networks, few rounds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeats = 1, 1

    drift_obs, drift_act = 28, 5  # OGBench cube-single
    td3_obs, td3_act = 17 + 1, 6  # HalfCheetah + time to horizon
    cfg_drift = default_config("driftql")
    cfg_fql = default_config("fql")
    td3_cfg = TD3Config()
    if args.quick:
        import dataclasses

        small = (64, 64)
        cfg_drift = dataclasses.replace(
            cfg_drift,
            actor=dataclasses.replace(cfg_drift.actor, hidden_sizes=small),
            critic=dataclasses.replace(cfg_drift.critic, hidden_sizes=small),
        )
        cfg_fql = dataclasses.replace(
            cfg_fql,
            actor=dataclasses.replace(cfg_fql.actor, hidden_sizes=small),
            critic=dataclasses.replace(cfg_fql.critic, hidden_sizes=small),
        )
        td3_cfg = dataclasses.replace(td3_cfg, hidden_sizes=small)
    cpu = torch.device("cpu")
    results: dict[str, Any] = {
        "benchmark": "fastpath_methods",
        "command": " ".join(["python", *sys.argv]),
        "machine": gemm.machine_report(),
        "load_average_at_start": os.getloadavg(),
        "quick": args.quick,
        "timing": (
            f"median ms per update over {args.rounds} alternating rounds x {args.repeats} calls "
            "(x4 for TD3), after 2 warm-up updates each, wall clock (*_ms) and process CPU time "
            "(*_cpu_ms: time preempted by other processes does not count); today_over_fast = "
            "today's path / fast path"
        ),
        "paths": (
            "fast: rl_nets.gemm 'auto' (oneDNN or torch's default per product, chosen by timing "
            "each layer shape once); today: every product on torch's default path (addmm/mm)"
        ),
        "networks": {
            "driftql": f"actor/critic {cfg_drift.actor.hidden_sizes} GELU, "
            f"{cfg_drift.drift.num_samples} drift samples, obs {drift_obs}, action {drift_act}, "
            "batch 256",
            "fql": f"actor/critic {cfg_fql.actor.hidden_sizes} GELU, obs {drift_obs}, "
            f"action {drift_act}, batch 256",
            "ot_ilfo_td3": f"TD3 {td3_cfg.hidden_sizes} ReLU, obs {td3_obs} (incl. time), "
            f"action {td3_act}, batch 100",
        },
        "cases": [],
    }
    drift_batch = _batch(256, drift_obs, drift_act)
    td3_batch = _time_batch(100, td3_obs, td3_act)
    for threads in args.threads:
        torch.set_num_threads(threads)
        load_before = os.getloadavg()
        cases = [
            compare(
                "driftql update",
                lambda: make_agent(cfg_drift, drift_obs, drift_act, device=cpu, seed=0),
                drift_batch,
                args.rounds,
                args.repeats,
            ),
            compare(
                "fql update",
                lambda: make_agent(cfg_fql, drift_obs, drift_act, device=cpu, seed=0),
                drift_batch,
                args.rounds,
                args.repeats,
            ),
            compare(
                "ot-ilfo td3 update",
                lambda: TD3Agent(td3_cfg, td3_obs, td3_act, seed=0),
                td3_batch,
                args.rounds,
                args.repeats * 4,  # a TD3 step is ~10x cheaper
            ),
        ]
        for case in cases:
            case["load_average_before"] = load_before
            case["load_average_after"] = os.getloadavg()
        results["cases"] += cases
    results["gemm_decisions"] = gemm.gemm_decisions()
    results["load_average_at_end"] = os.getloadavg()
    if not args.quick:
        with atomic_write(args.out, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
