"""MR.Q / DR.Q learning curves: several seeds of a preset, evaluated periodically; JSON + PNG.

The training loop is the package's documented schedule (random warm-up, then per step: act, add,
target sync + encoder burst when due, one value/policy update). Each evaluation runs
``--eval-episodes`` greedy episodes on a separately seeded environment. The baseline is a uniform
random policy evaluated on the same episodes, reported beside the curves.

    uv run --no-sync python benchmarks/bench_mrq_learning.py --preset test --env InvertedPendulum-v5 \\
        --steps 3000 --seeds 0 1 2 --algorithms mrq drq
    uv run --no-sync python benchmarks/bench_mrq_learning.py --preset gym --env HalfCheetah-v5 \\
        --steps 1000000 --eval-interval 5000            # the paper's setting (days on a CPU)

``--jobs N`` trains N (algorithm, seed) runs at once, each in its own process with ``--threads``
torch threads. Each finished run is written to ``results/<name>.runs/<algorithm>-<seed>.json`` at
once, and a rerun with the same arguments reuses those files, so a killed benchmark loses at most
the runs in flight. ``--reference results.txt`` reads the official MR.Q repository's results file
(``results/gym_results.txt`` of facebookresearch/MRQ: ``Env: Gym-<id>`` headers, then a
``Timestep`` row and one tab-separated row of per-seed returns per evaluation) and puts the
matching environment's mean and standard deviation beside the curves, in the JSON and the figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mrq_drq import MRQAgent, MRQConfig, check_spaces, drq, make_buffer, make_env
from mrq_drq.config import atari, dmc, dmc_visual, gym, tiny
from mrq_drq.schedule import training_step
from rl_buffers.io import atomic_write
from rl_runtime.evaluation import agent_policy, evaluate, to_env_action

RESULTS = Path(__file__).parent / "results"
SUITE_PRESETS = {"gym": gym, "dmc": dmc, "dmc_visual": dmc_visual, "atari": atari, "test": tiny}


def evaluate_agent(cfg: MRQConfig, agent: MRQAgent, episodes: int, seed: int) -> float:
    """Mean return of the deterministic policy (the runtime's seeded evaluation loop)."""
    env = make_env(cfg.env, seed=seed, evaluation=True)
    policy = agent_policy(agent, env.action_space, agent.device)
    result = evaluate(policy, env, episodes=episodes, seed=seed)
    env.close()
    return result.mean_return


def run(
    cfg: MRQConfig,
    steps: int,
    eval_interval: int,
    episodes: int,
    seed: int,
    compile: bool = False,
    threads: int = 1,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    env = make_env(cfg.env, seed=seed)
    spec = check_spaces(env.observation_space, env.action_space)
    agent = MRQAgent(cfg, spec, seed=seed, compile=compile)
    buffer = make_buffer(cfg, spec)
    gen = torch.Generator().manual_seed(seed)
    curve: list[tuple[int, float]] = []
    obs, _ = env.reset(seed=seed)
    start = time.perf_counter()
    for t in range(1, steps + 1):
        if t <= cfg.schedule.random_steps:
            action = env.action_space.sample()
        else:
            action = to_env_action(agent.act(obs, explore=True), env.action_space)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, float(reward), next_obs, terminated, truncated)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if t > cfg.schedule.random_steps:
            training_step(agent, buffer, gen)
        if t % eval_interval == 0:
            score = evaluate_agent(cfg, agent, episodes, 10_000 + seed)
            curve.append((t, score))
            print(
                f"{cfg.algorithm} seed {seed} step {t}: {score:.1f}"
                f" ({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
    return {"seed": seed, "curve": curve, "seconds": round(time.perf_counter() - start, 1)}


def read_reference(path: Path, env_id: str) -> dict[str, Any]:
    """Mean and std over seeds of one environment in an official MR.Q results file.

    The environment is matched on its name without the version (``HalfCheetah-v5`` finds
    ``Gym-HalfCheetah-v4``); a file without it, or with a malformed row, is an error naming both.
    """
    stem = env_id.rsplit("-v", 1)[0]
    blocks = path.read_text().split("Env: ")[1:]
    for block in blocks:
        lines = [line for line in block.splitlines() if line.strip() and not line.startswith("-")]
        name = lines[0].strip()
        if name.removeprefix("Gym-").rsplit("-v", 1)[0] != stem:
            continue
        steps, means, stds, seeds = [], [], [], 0
        for number, line in enumerate(lines[2:], start=3):
            fields = line.split()
            try:
                values = np.array([float(v) for v in fields[1:]])
                steps.append(int(fields[0]))
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}: {name}, row {number}: not numbers: {line!r}") from exc
            seeds = max(seeds, len(values))
            means.append(float(values.mean()))
            stds.append(float(values.std()))
        return {
            "source": str(path.name),
            "env": name,
            "seeds": seeds,
            "steps": steps,
            "mean": means,
            "std": stds,
        }
    raise ValueError(f"{path}: no environment matching {env_id!r} (looked for {stem!r})")


def seed_stats(data: dict[str, Any]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``(steps, mean, std)`` over an algorithm's seeds at each evaluation (std with ddof 0)."""
    curves = np.array([[s for _, s in r["curve"]] for r in data["runs"]])
    return [t for t, _ in data["runs"][0]["curve"]], curves.mean(0), curves.std(0)


def markdown_table(results: dict[str, Any]) -> str:
    """Mean ± std over seeds at each evaluation, one row per algorithm (and the reference's
    values at the same steps, where it has them)."""
    algorithms = results["algorithms"]
    steps = seed_stats(next(iter(algorithms.values())))[0]
    lines = ["| | " + " | ".join(f"{t:,}" for t in steps) + " |"]
    lines.append("|---" * (len(steps) + 1) + "|")
    for name, data in algorithms.items():
        _, mean, std = seed_stats(data)
        cells = [f"{m:.0f} ± {s:.0f}" for m, s in zip(mean, std, strict=True)]
        lines.append(f"| {name} ({len(data['runs'])} seeds) | " + " | ".join(cells) + " |")
    ref = results.get("reference")
    if ref is not None:
        at = dict(zip(ref["steps"], zip(ref["mean"], ref["std"], strict=True), strict=True))
        cells = [f"{at[t][0]:.0f} ± {at[t][1]:.0f}" if t in at else "–" for t in steps]
        lines.append(f"| official ({ref['seeds']} seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run_job(job: tuple[MRQConfig, argparse.Namespace, int, Path]) -> dict[str, Any]:
    cfg, args, seed, out = job
    result = run(
        cfg, args.steps, args.eval_interval, args.eval_episodes, seed, args.compile, args.threads
    )
    with atomic_write(out, "w") as f:
        json.dump({**result, "config": cfg.to_dict()}, f, indent=2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--preset", choices=sorted(SUITE_PRESETS), default="test")
    parser.add_argument("--env", default="InvertedPendulum-v5")
    parser.add_argument("--algorithms", nargs="+", choices=["mrq", "drq"], default=["mrq", "drq"])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval-interval", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the updates")
    parser.add_argument("--reference", type=Path, help="official MR.Q results file to compare")
    parser.add_argument("--name", default="mrq_learning")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference = read_reference(args.reference, args.env) if args.reference else None

    results: dict[str, Any] = {
        "benchmark": "mrq_learning",
        "preset": args.preset,
        "env": args.env,
        "steps": args.steps,
        "threads": args.threads,
        "jobs": args.jobs,
        "compile": args.compile,
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
        "algorithms": {},
    }
    base = SUITE_PRESETS[args.preset](args.env)
    env = make_env(base.env, seed=10_000, evaluation=True)
    env.action_space.seed(10_000)
    random_score = evaluate(
        lambda o: env.action_space.sample(), env, episodes=args.eval_episodes, seed=10_000
    ).mean_return
    env.close()
    results["random_policy_return"] = random_score
    if reference is not None:
        results["reference"] = reference
    runs_dir = RESULTS / f"{args.name}.runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    configs = {a: drq(base) if a == "drq" else base for a in args.algorithms}
    done: dict[tuple[str, int], dict[str, Any]] = {}
    todo = []
    for algorithm, cfg in configs.items():
        for seed in args.seeds:
            out = runs_dir / f"{algorithm}-{seed}.json"
            if out.exists():
                previous = json.loads(out.read_text())
                same = previous.get("config") == cfg.to_dict() and previous["curve"]
                if same and previous["curve"][-1][0] == args.steps:
                    print(f"reusing {out}")
                    done[algorithm, seed] = previous
                    continue
            todo.append(((algorithm, seed), (cfg, args, seed, out)))
    if args.jobs > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(args.jobs, len(todo))) as pool:
            keys = [k for k, _ in todo]
            done.update(
                zip(keys, pool.map(_run_job, [j for _, j in todo], chunksize=1), strict=True)
            )
    else:
        for key, job in todo:
            done[key] = _run_job(job)
    for algorithm, cfg in configs.items():
        results["algorithms"][algorithm] = {
            "config": cfg.to_dict(),
            "runs": [
                {k: v for k, v in done[algorithm, s].items() if k != "config"} for s in args.seeds
            ],
        }

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    with atomic_write(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {out}")
    print(markdown_table(results))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib ships with the workspace's rl-train
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for algorithm, data in results["algorithms"].items():
        x, mean, std = seed_stats(data)
        ax.plot(x, mean, label=f"{algorithm} ({len(data['runs'])} seeds)")
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    if reference is not None:
        keep = [i for i, t in enumerate(reference["steps"]) if t <= args.steps]
        x = [reference["steps"][i] for i in keep]
        mean = np.array([reference["mean"][i] for i in keep])
        std = np.array([reference["std"][i] for i in keep])
        label = f"official MR.Q, {reference['env']} ({reference['seeds']} seeds)"
        ax.plot(x, mean, color="black", marker="o", label=label)
        ax.fill_between(x, mean - std, mean + std, color="black", alpha=0.1)
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
