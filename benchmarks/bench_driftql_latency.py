"""DriftQL cost: action latency (one pass) vs FQL's 10-step Euler flow and FQL's one-step policy,
and the time of one update step of DriftQL (N = 8, 16, 32), FQL and BC.

All agents use the paper's networks (actor and critic 4 x 512, GELU; critic LayerNorm) at
OGBench cube-single's sizes (observation 28, action 5). Latency cases time ``agent.act`` /
``agent.flow_act`` (the public acting path: input check, noise draw, forward, clip) at batch 1
(acting in one environment) and 256 (a batch of environments). The calls alternate in rounds so
that load from other processes hits every candidate alike; medians are reported, with ratios
against FQL's flow (the baseline the paper compares against) measured in the same process.

    uv run --no-sync python benchmarks/bench_driftql_latency.py          # writes results JSON
    uv run --no-sync python benchmarks/bench_driftql_latency.py --quick  # small sizes, smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from driftql import AgentConfig, FQLAgent, default_config, make_agent
from rl_buffers import TransitionBatch
from rl_buffers.io import atomic_write

RESULTS = Path(__file__).parent / "results" / "driftql_latency.json"
OBS_DIM, ACTION_DIM = 28, 5  # OGBench cube-single


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(
    fns: dict[str, Callable[[], object]], device: torch.device, rounds: int, repeats: int
) -> dict[str, float]:
    """Median ms per call of each function over ``rounds`` alternating rounds (after warm-up)."""
    for fn in fns.values():
        for _ in range(2):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                _sync(device)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def _sized(cfg: AgentConfig, width: int, depth: int, **drift: Any) -> AgentConfig:
    hidden = (width,) * depth
    return dataclasses.replace(
        cfg,
        actor=dataclasses.replace(cfg.actor, hidden_sizes=hidden),
        critic=dataclasses.replace(cfg.critic, hidden_sizes=hidden),
        drift=dataclasses.replace(cfg.drift, **drift),
    )


def latency_cases(
    width: int, depth: int, device: torch.device, rounds: int, repeats: int
) -> list[dict[str, Any]]:
    drift = make_agent(_sized(default_config("driftql"), width, depth), OBS_DIM, ACTION_DIM,
                       device=device, seed=0)  # fmt: skip
    fql = make_agent(_sized(default_config("fql"), width, depth), OBS_DIM, ACTION_DIM,
                     device=device, seed=0)  # fmt: skip
    assert isinstance(fql, FQLAgent)
    cases: list[dict[str, Any]] = []
    for batch in (1, 256):
        obs = torch.randn(batch, OBS_DIM, device=device)
        ms = alternate(
            {
                "fql_flow_10_euler": lambda obs=obs: fql.flow_act(obs),
                "driftql_one_pass": lambda obs=obs: drift.act(obs),
                "fql_one_step_policy": lambda obs=obs: fql.act(obs),
            },
            device,
            rounds,
            repeats,
        )
        case = {
            "case": f"action latency, batch {batch}",
            "batch": batch,
            **{f"{k}_ms": round(v, 4) for k, v in ms.items()},
            "flow_over_driftql": round(ms["fql_flow_10_euler"] / ms["driftql_one_pass"], 3),
            "flow_over_fql_one_step": round(ms["fql_flow_10_euler"] / ms["fql_one_step_policy"], 3),
            "driftql_over_fql_one_step": round(
                ms["driftql_one_pass"] / ms["fql_one_step_policy"], 3
            ),
        }
        print(json.dumps(case))
        cases.append(case)
    return cases


def _batch(size: int, device: torch.device) -> TransitionBatch:
    g = torch.Generator().manual_seed(0)
    return TransitionBatch(
        obs=torch.randn(size, OBS_DIM, generator=g).to(device),
        action=(torch.rand(size, ACTION_DIM, generator=g) * 2 - 1).to(device),
        reward=-torch.rand(size, generator=g).to(device),
        next_obs=torch.randn(size, OBS_DIM, generator=g).to(device),
        not_done=torch.ones(size, device=device),
        indices=torch.arange(size, device=device),
    )


def update_case(
    width: int,
    depth: int,
    batch_size: int,
    samples: tuple[int, ...],
    device: torch.device,
    rounds: int,
    repeats: int,
) -> dict[str, Any]:
    batch = _batch(batch_size, device)
    agents: dict[str, Any] = {
        "fql": make_agent(_sized(default_config("fql"), width, depth), OBS_DIM, ACTION_DIM,
                          device=device, seed=0),
        "bc": make_agent(_sized(default_config("bc"), width, depth), OBS_DIM, ACTION_DIM,
                         device=device, seed=0),
    }  # fmt: skip
    for n in samples:
        agents[f"driftql_n{n}"] = make_agent(
            _sized(default_config("driftql"), width, depth, num_samples=n),
            OBS_DIM,
            ACTION_DIM,
            device=device,
            seed=0,
        )
    ms = alternate(
        {name: (lambda a=a: a.update(batch)) for name, a in agents.items()},
        device,
        rounds,
        repeats,
    )
    case: dict[str, Any] = {
        "case": f"update step, batch {batch_size}",
        "batch": batch_size,
        "ms_per_update": {k: round(v, 3) for k, v in ms.items()},
        "ratio_over_fql": {k: round(v / ms["fql"], 3) for k, v in ms.items()},
    }
    print(json.dumps(case))
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="small networks (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    width, depth = (64, 2) if args.quick else (512, 4)  # paper: 4 x 512
    samples = (8, 16, 32)
    cases = latency_cases(width, depth, device, rounds=5, repeats=20 if args.quick else 10)
    cases.append(update_case(width, depth, 256, samples, device, rounds=3, repeats=2))

    report = {
        "benchmark": "driftql-latency",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else (platform.processor() or platform.machine())
        ),
        "machine": platform.machine(),
        "quick": args.quick,
        "networks": f"actor and critic {depth} x {width} GELU (critic LayerNorm), 2 critics",
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "fql_flow_steps": 10,
        "driftql_num_samples": list(samples),
        "timing": "median ms per call over alternating rounds, after 2 warm-up calls each",
        "ratios": (
            "flow_over_driftql = FQL 10-step flow ms / DriftQL one-pass ms (> 1: DriftQL faster); "
            "ratio_over_fql = algorithm's update ms / FQL update ms"
        ),
        "cases": cases,
    }
    with atomic_write(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
