"""MR.Q / DR.Q learning curves: several seeds of a preset, evaluated periodically; JSON + PNG.

The training loop is the package's documented schedule (random warm-up, then per step: act, add,
target sync + encoder burst when due, one value/policy update). Each evaluation runs
``--eval-episodes`` greedy episodes on a separately seeded environment. The baseline is a uniform
random policy evaluated on the same episodes, reported beside the curves.

    uv run --no-sync python benchmarks/bench_mrq_learning.py --preset test --env InvertedPendulum-v5 \\
        --steps 3000 --seeds 0 1 2 --algorithms mrq drq
    uv run --no-sync python benchmarks/bench_mrq_learning.py --preset gym --env HalfCheetah-v5 \\
        --steps 1000000 --eval-interval 5000            # the paper's setting (days on a CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mrq_drq import PRESETS, MRQAgent, MRQConfig, check_spaces, drq, make_buffer, make_env
from mrq_drq.config import atari, dmc, dmc_visual, gym, tiny
from mrq_drq.schedule import training_step
from rl_buffers.io import atomic_write

RESULTS = Path(__file__).parent / "results"
SUITE_PRESETS = {"gym": gym, "dmc": dmc, "dmc_visual": dmc_visual, "atari": atari, "test": tiny}


def evaluate(cfg: MRQConfig, policy: Any, episodes: int, seed: int) -> float:
    env = make_env(cfg.env, seed=seed, evaluation=True)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(env, obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def run(cfg: MRQConfig, steps: int, eval_interval: int, episodes: int, seed: int) -> dict[str, Any]:
    env = make_env(cfg.env, seed=seed)
    spec = check_spaces(env.observation_space, env.action_space)
    agent = MRQAgent(cfg, spec, seed=seed)
    buffer = make_buffer(cfg, spec)
    gen = torch.Generator().manual_seed(seed)
    curve: list[tuple[int, float]] = []
    obs, _ = env.reset(seed=seed)
    start = time.perf_counter()
    for t in range(1, steps + 1):
        if t <= cfg.schedule.random_steps:
            action = env.action_space.sample()
        else:
            action = agent.act(obs, explore=True)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, float(reward), next_obs, terminated, truncated)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if t > cfg.schedule.random_steps:
            training_step(agent, buffer, gen)
        if t % eval_interval == 0:
            score = evaluate(cfg, lambda e, o: agent.act(o, explore=False), episodes, 10_000 + seed)
            curve.append((t, score))
            print(
                f"seed {seed} step {t}: {score:.1f} ({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
    return {"seed": seed, "curve": curve, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--preset", choices=sorted(SUITE_PRESETS), default="test")
    parser.add_argument("--env", default="InvertedPendulum-v5")
    parser.add_argument("--algorithms", nargs="+", choices=["mrq", "drq"], default=["mrq", "drq"])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval-interval", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="mrq_learning")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    assert set(PRESETS) >= {"gym", "test"}

    results: dict[str, Any] = {
        "benchmark": "mrq_learning",
        "preset": args.preset,
        "env": args.env,
        "steps": args.steps,
        "threads": args.threads,
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
        "algorithms": {},
    }
    base = SUITE_PRESETS[args.preset](args.env)
    random_score = evaluate(base, lambda e, o: e.action_space.sample(), args.eval_episodes, 10_000)
    results["random_policy_return"] = random_score
    for algorithm in args.algorithms:
        cfg = drq(base) if algorithm == "drq" else base
        runs = [run(cfg, args.steps, args.eval_interval, args.eval_episodes, s) for s in args.seeds]
        results["algorithms"][algorithm] = {"config": cfg.to_dict(), "runs": runs}

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    with atomic_write(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {out}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib ships with the workspace's rl-train
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for algorithm, data in results["algorithms"].items():
        curves = np.array([[s for _, s in r["curve"]] for r in data["runs"]])
        x = [t for t, _ in data["runs"][0]["curve"]]
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(x, mean, label=f"{algorithm} ({len(data['runs'])} seeds)")
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.axhline(random_score, color="gray", linestyle="--", label="random policy")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(f"{args.env} ({args.preset} preset)")
    ax.legend()
    fig.tight_layout()
    png = RESULTS / f"{args.name}.png"
    with atomic_write(png, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
