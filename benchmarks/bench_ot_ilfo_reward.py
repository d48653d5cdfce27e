"""ot-ilfo reward cost: one episode's OT rewards (Sinkhorn, log-Sinkhorn, EMD) beside TD3 updates.

For each state dimension ``d`` (17: HalfCheetah/Walker2d, 27: Ant's first 27 entries) a smooth
expert trajectory of ``T = 1000`` steps and a learner trajectory (the expert plus noise: an agent
part-way through learning) are scored with each solver, at the paper's settings (``(s, s')``
atoms, sqrt-Euclidean cost, reg 0.05). The baseline, timed in the same process, is one TD3
update of the paper's learner (256-256 networks, batch 100); the paper does 1000 updates per
1000-step episode, so ``reward_share`` = reward time / (reward time + 1000 updates) is the
fraction of training time the reward costs. Numpy/BLAS and torch run on one thread.

    uv run --no-sync python benchmarks/bench_ot_ilfo_reward.py          # results/ot_ilfo_reward.json
    uv run --no-sync python benchmarks/bench_ot_ilfo_reward.py --quick  # T = 200, a smoke run
"""

# ruff: noqa: E402  (BLAS thread variables must be set before numpy is first imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: POT's matrix products on one thread

import argparse
import json
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import ot
import torch
from ot_ilfo import OTConvergenceWarning, OTRewarder, RewardConfig, TD3Agent, TD3Config
from rl_buffers import TransitionBatch
from rl_buffers.io import atomic_write

RESULTS = Path(__file__).parent / "results" / "ot_ilfo_reward.json"
SOLVERS = ("sinkhorn", "emd", "sinkhorn_log")


def trajectories(d: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth expert state trajectory ``(T + 1, d)`` and a noisy learner copy."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 8 * np.pi, steps + 1)[:, None]
    phases = rng.uniform(0, 2 * np.pi, size=(1, d))
    freqs = rng.uniform(0.5, 2.0, size=(1, d))
    expert = np.sin(freqs * t + phases) * rng.uniform(0.2, 3.0, size=(1, d))
    learner = expert + rng.normal(scale=0.3, size=expert.shape) * expert.std(axis=0)
    return expert, learner


def time_reward(d: int, steps: int, solver: str, repeats: int) -> dict[str, Any]:
    expert, learner = trajectories(d, steps, seed=d)
    rewarder = OTRewarder([expert], RewardConfig(solver=solver))  # type: ignore[arg-type]
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times: list[float] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OTConvergenceWarning)
        start = time.perf_counter()
        result = rewarder.rewards(learner)
        times.append(time.perf_counter() - start)
        for _ in range(repeats - 1):
            start = time.perf_counter()
            result = rewarder.rewards(learner)
            times.append(time.perf_counter() - start)
    return {
        "solver": solver,
        "d": d,
        "T": steps,
        "seconds_median": round(statistics.median(times), 4),
        "seconds_all": [round(x, 4) for x in times],
        "iterations": result.info.iterations,
        "converged": result.info.converged,
        "warnings": len(caught),
        "ot_return": round(float(result.rewards.sum()), 4),
        "rewards": result.rewards,
    }


def time_td3_update(d: int, repeats: int) -> float:
    agent = TD3Agent(TD3Config(horizon=1000), d + 1, 6, seed=0)
    g = torch.Generator().manual_seed(0)
    batches = [
        TransitionBatch(
            obs=torch.randn(100, d + 1, generator=g),
            action=torch.rand(100, 6, generator=g) * 2 - 1,
            reward=torch.randn(100, generator=g),
            next_obs=torch.randn(100, d + 1, generator=g),
            not_done=torch.ones(100),
            indices=torch.arange(100),
        )
        for _ in range(8)
    ]
    for b in batches[:4]:  # warm-up
        agent.update(b)
    start = time.perf_counter()
    for i in range(repeats):
        agent.update(batches[i % len(batches)])
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="T = 200, fewer repeats")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = 200 if args.quick else 1000
    cases: list[dict[str, Any]] = []
    for d in (17, 27):
        update_s = time_td3_update(d, 50 if args.quick else 300)
        by_solver = {}
        for solver in SOLVERS:
            repeats = 1 if solver == "sinkhorn_log" else (2 if args.quick else 5)
            by_solver[solver] = time_reward(d, steps, solver, repeats)
        emd_rewards = by_solver["emd"]["rewards"]
        sink_rewards = by_solver["sinkhorn"]["rewards"]
        for solver, case in by_solver.items():
            rewards = case.pop("rewards")
            reward_s = case["seconds_median"]
            case["td3_update_seconds"] = round(update_s, 5)
            # Baseline: the episode's TD3 updates (one per environment step, as the paper).
            case["reward_share"] = round(reward_s / (reward_s + steps * update_s), 4)
            case["ratio_vs_episode_updates"] = round(reward_s / (steps * update_s), 4)
            case["max_abs_diff_vs_emd"] = round(float(np.abs(rewards - emd_rewards).max()), 5)
            case["max_abs_diff_vs_sinkhorn"] = round(float(np.abs(rewards - sink_rewards).max()), 6)
            cases.append(case)
            print(
                f"d={d:2d} T={steps} {solver:12s} {reward_s:8.3f} s/episode "
                f"({case['iterations']} it, converged={case['converged']}) | "
                f"{steps} TD3 updates {steps * update_s:7.2f} s | share {case['reward_share']:.3f}"
            )
    out = {
        "benchmark": "ot_ilfo_reward",
        "torch": torch.__version__,
        "pot": ot.__version__,
        "threads": {"torch": torch.get_num_threads(), "blas": 1},
        "machine": platform.machine(),
        "processor": platform.processor(),
        "load_average": list(os.getloadavg()),
        "quick": args.quick,
        "baseline": "1000 TD3 updates (256-256, batch 100) per 1000-step episode",
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
