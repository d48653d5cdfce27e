"""HBS on NetHack: whole-loop environment steps per second against NLE's random-action rate, and
the per-step cost of the reward functions.

1. Limit. N NLE ``NetHackScore-v0`` environments (nle's task class, the same observation keys,
   glyphs/blstats/message, fixed moon phase), uniformly random actions, stepped in a Python loop
   and reset when an episode ends: the rate no trainer on these envs can beat in one process.
2. Whole loop. ``hbs.loop.train_hbs`` with ``rl-train hbs``'s ``nethack-score`` preset (N = 32,
   T = 32, one PPO pass of two minibatches per rollout, one torch thread), run for ``--steps``
   environment steps in this process, for each of ``--algo hbs | options | flat``: acting
   (controller and worker), the env step, the reward functions, exploration records, GAE and the
   PPO update, all in the time. Steps per second of the whole call.
   The two are interleaved (limit, loops, limit, loops, ...) so that a change of the machine's
   load hits both; each ratio is loop / the limit measured next to it, and the median is reported.
   Target: at least 0.5.
3. Rewards. ``compute_rewards`` of the 8 reward functions (and each alone) on recorded
   consecutive observation batches of N envs, in microseconds per env step, beside NLE's own
   time per env step from 1.

Usage: ``uv run --no-sync python benchmarks/bench_hbs_speed.py [--repeats 3] [--steps 32768]``
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

THREADS = 1


def machine() -> dict[str, Any]:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line),
            platform.processor(),
        )
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": THREADS,
        "python": platform.python_version(),
    }


def nle_random_rate(num_envs: int, seconds: float, seed: int) -> float:
    """Env steps per second of N bare NLE envs under random actions (see the module doc)."""
    from nle.env import tasks

    envs = [
        tasks.NetHackScore(observation_keys=("glyphs", "blstats", "message"), fix_moon_phase=True)
        for _ in range(num_envs)
    ]
    rng = np.random.default_rng(seed)
    for i, env in enumerate(envs):
        env.seed(seed + i, seed + i, reseed=False)
        env.reset()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        actions = rng.integers(0, 23, size=num_envs)
        for env, a in zip(envs, actions, strict=True):
            _, _, done, truncated, _ = env.step(int(a))
            if done or truncated:
                env.reset()
        steps += num_envs
    rate = steps / (time.perf_counter() - start)
    for env in envs:
        env.close()
    return rate


def loop_rate(algo: str, steps: int, seed: int, num_envs: int) -> float:
    """Env steps per second of the whole training loop (the preset, ``steps`` long)."""
    from hbs.agent import HBSAgent
    from hbs.envs import NLEVecEnv, ObsLayout
    from hbs.loop import train_hbs
    from rl_runtime.run import open_run
    from rl_train.methods.hbs import METHOD

    base = METHOD.parse(["--algo", algo, "--agent.ppo.num-envs", str(num_envs)])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(
            base,
            run=dataclasses.replace(
                base.run,
                total_steps=steps,
                eval_episodes=0,
                log_every=steps,
                checkpoint_every=10 * steps,
                checkpoint_minutes=0.0,
                root=Path(tmp),
                seed=seed,
                quiet=True,
                tensorboard=False,
            ),
        )
        a = cfg.agent
        layout = ObsLayout(a.env.observation_keys)
        with open_run("hbs", cfg) as run:
            envs = NLEVecEnv(a.env, a.ppo.num_envs)
            agent = HBSAgent(a, layout, 23, seed=seed)
            start = time.perf_counter()
            train_hbs(run, envs=envs, agent=agent, cfg=a, layout=layout)
            elapsed = time.perf_counter() - start
            envs.close()
    return steps / elapsed


def reward_costs(num_envs: int, batches: int, repeats: int) -> dict[str, float]:
    """Microseconds per env step of compute_rewards, all functions and each alone."""
    from hbs.config import DEFAULT_REWARDS, EnvConfig
    from hbs.envs import NLEVecEnv
    from hbs.rewards import RewardState, check_rewards, compute_rewards

    env = NLEVecEnv(EnvConfig(), num_envs)
    obs = env.reset(list(range(num_envs)))
    rng = np.random.default_rng(0)
    seeds = itertools.count(1000)
    recorded = []
    for _ in range(batches):
        r = env.step(torch.from_numpy(rng.integers(0, 23, num_envs)), lambda i: next(seeds))
        recorded.append((obs, r.final_obs, r.terminated))
        obs = r.obs
    env.close()
    out: dict[str, float] = {}
    sets: list[tuple[str, ...]] = [DEFAULT_REWARDS, *((n,) for n in DEFAULT_REWARDS)]
    for names in sets:
        specs = check_rewards(names, env.layout.keys)
        times = []
        for _ in range(repeats):
            state = RewardState(specs, num_envs)
            start = time.perf_counter()
            for prev, nxt, died in recorded:
                compute_rewards(env.layout, prev, nxt, died, state)
            times.append((time.perf_counter() - start) / (batches * num_envs))
        key = "all" if len(names) > 1 else next(iter(names))
        out[key] = round(1e6 * statistics.median(times), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=32_768, help="steps per loop measurement")
    parser.add_argument("--limit-seconds", type=float, default=15.0)
    parser.add_argument("--algos", nargs="+", default=["hbs", "options", "flat"])
    parser.add_argument("--num-envs", type=int, default=32, help="N (the preset's is 32)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hbs_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    num_envs = args.num_envs
    load_start = os.getloadavg()
    limits: list[float] = []
    loops: dict[str, list[float]] = {a: [] for a in args.algos}
    ratios: dict[str, list[float]] = {a: [] for a in args.algos}
    for rep in range(args.repeats):
        limit = nle_random_rate(num_envs, args.limit_seconds, seed=rep)
        limits.append(limit)
        print(f"[{rep}] NLE random actions, N={num_envs}: {limit:.0f} steps/s", flush=True)
        for algo in args.algos:
            rate = loop_rate(algo, args.steps, seed=rep, num_envs=num_envs)
            loops[algo].append(rate)
            ratios[algo].append(rate / limit)
            print(f"[{rep}] loop {algo}: {rate:.0f} steps/s ({rate / limit:.2f} of the limit)",
                  flush=True)  # fmt: skip
    limit_step_us = 1e6 / statistics.median(limits)
    rewards = reward_costs(num_envs, batches=200, repeats=3)
    print(f"rewards: {rewards} us per env step; NLE: {limit_step_us:.1f} us per env step")
    result = {
        "benchmark": "hbs_speed",
        "command": " ".join(["uv run --no-sync python", *sys.argv]),
        "machine": machine(),
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "num_envs": num_envs,
        "observation_keys": ["glyphs", "blstats", "message"],
        "loop_steps_per_measurement": args.steps,
        "nle_random_steps_per_s": [round(x, 1) for x in limits],
        "loop_steps_per_s": {a: [round(x, 1) for x in v] for a, v in loops.items()},
        "ratio_loop_over_limit": {a: [round(x, 3) for x in v] for a, v in ratios.items()},
        "ratio_median": {a: round(statistics.median(v), 3) for a, v in ratios.items()},
        "target_ratio": 0.5,
        "reward_us_per_env_step": rewards,
        "nle_us_per_env_step": round(limit_step_us, 2),
        "reward_share_of_nle_step": round(rewards["all"] / limit_step_us, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratio_median"]), "->", args.out)


if __name__ == "__main__":
    main()
