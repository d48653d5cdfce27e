"""OT-ILfO learning: true return reached from one action-free demonstration, as a fraction of the
expert's, per task and learner (TD3, MR.Q), several seeds; JSON + table.

Per task the expert (``--experts ENV=scripted:NAME`` or ``ENV=RUN_DIR``) is rolled out by the
project's ``make_demos`` twice: ``--num-demos`` episodes saved as the demonstration dataset that
the runs learn from (their return is ``demo_return``), and ``--eval-episodes`` episodes, never
trained on, whose mean is ``expert_return``. A uniformly random policy evaluated on the
trainer's evaluation starts gives ``random_return``. Each (task, learner, seed) is one run of
``rl_train.methods.ot_ilfo.train`` (preset ``pendulum`` for Pendulum-v1, ``gym`` otherwise,
``--learner`` set); its ``eval/return`` curve (the environment's reward, never learned from)
gives the final evaluation and the mean of the last three. Per cell: mean ± std across seeds
(ddof=0) of the agent's return, of ``(agent - random) / (expert - random)`` and of
``agent / expert`` (on tasks with negative returns, such as Pendulum, agent/expert > 1 means
WORSE than the expert; the first ratio is the one to read).

Runs are named ``<learner>-<steps>st-bench`` under ``--root``: re-running reuses finished runs.

    uv run --no-sync python benchmarks/bench_ot_ilfo_learning.py --tasks Pendulum-v1 \\
        --learners td3 mrq --seeds 0 1 2 --steps 20000 --eval-every 2000 --eval-episodes 10
    uv run --no-sync python benchmarks/bench_ot_ilfo_learning.py --steps 400 --eval-every 200 \\
        --eval-episodes 1 --random-steps 200 --seeds 0 --root /tmp/boil --out /tmp/boil.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from bench_driftql_offline import (  # the sibling benchmark's helpers (run from benchmarks/)
    bench_run_config,
    curve_of,
    final_and_last_k,
    fmt,
    machine_info,
    markdown_table,
    mean_std,
)
from mrq_drq import config as mrq_presets
from ot_ilfo import SCRIPTED, episode_return
from rl_buffers import DatasetError, load_minari
from rl_buffers.io import atomic_write
from rl_runtime.evaluation import evaluate
from rl_runtime.run import env_slug
from rl_train.methods.ot_ilfo import (
    METHOD,
    OTILfODemosConfig,
    OTILfOTrainConfig,
    make_demos,
    train,
)

RESULTS = Path(__file__).parent / "results" / "ot_ilfo_learning.json"
LEARNERS = ("td3", "mrq")
LAST_K = 3


def parse_expert(spec: str) -> tuple[str, str]:
    """``ENV=scripted:NAME`` or ``ENV=RUN_DIR`` -> (env, expert)."""
    env, sep, expert = spec.partition("=")
    if not sep or not env or not expert:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected ENV=scripted:NAME or ENV=RUN_DIR")
    if expert.startswith("scripted:"):
        name = expert.removeprefix("scripted:")
        if name not in SCRIPTED:
            raise argparse.ArgumentTypeError(
                f"{spec!r}: unknown scripted expert {name!r}; known: {', '.join(SCRIPTED)}"
            )
    elif not (Path(expert) / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"{spec!r}: {expert} is not a run directory")
    return env, expert


def demos_config(
    env: str, expert: str, dataset_id: str, episodes: int, root: Path, seed: int
) -> OTILfODemosConfig:
    """``make_demos`` settings for a scripted or run-directory expert."""
    source: dict[str, Any] = (
        {"scripted": expert.removeprefix("scripted:")}
        if expert.startswith("scripted:")
        else {"expert": Path(expert)}
    )
    return OTILfODemosConfig(
        env=env,
        episodes=episodes,
        dataset_id=dataset_id,
        minari_root=root,
        overwrite=True,
        seed=seed,
        **source,
    )


def expert_returns(
    env: str, expert: str, num_demos: int, eval_episodes: int, root: Path, reuse: bool = False
) -> tuple[str, float, float]:
    """Save the demonstration; returns ``(demo dataset id, demo return, expert eval return)``.

    With ``reuse``, datasets already under ``root`` with the expected number of episodes are read
    instead of rolled out again (so that concurrent invocations never rewrite a dataset that
    another one is about to load)."""
    slug = env_slug(env).lower()

    def rollouts(dataset_id: str, episodes: int, seed: int) -> float:
        if reuse:
            try:
                existing = load_minari(dataset_id, root=root)
            except DatasetError:
                existing = []
            if len(existing) == episodes:
                return float(np.mean([episode_return(ep) for ep in existing]))
        make_demos(demos_config(env, expert, dataset_id, episodes, root, seed=seed))
        return float(np.mean([episode_return(ep) for ep in load_minari(dataset_id, root=root)]))

    demo_id = f"bench/{slug}/demo-v0"
    demo = rollouts(demo_id, num_demos, seed=0)
    # Held-out starts (seeds 10_000 + i), not the demonstration's: the expert's typical return.
    held_out = rollouts(f"bench/{slug}/expert-eval-v0", eval_episodes, seed=10_000)
    return demo_id, demo, held_out


def random_return(env_id: str, episodes: int, seed: int) -> float:
    """Uniform random actions on the trainer's evaluation starts of run seed ``seed``."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    with env:
        result = evaluate(
            lambda _obs: env.action_space.sample(),
            env,
            episodes=episodes,
            seed=seed,  # the trainer evaluates with the run's seed
        )
    return result.mean_return


def base_config(env: str, learner: str, mrq_size: str = "preset") -> OTILfOTrainConfig:
    """The method's preset for ``env`` with ``learner``; ``mrq_size="tiny"`` swaps in MR.Q's
    small-width ``tiny`` preset (for CPU budgets) instead of the preset's MR.Q."""
    preset = METHOD.presets["pendulum" if env == "Pendulum-v1" else "gym"]
    cfg = dataclasses.replace(preset, env=env, learner=learner)  # type: ignore[arg-type]
    if mrq_size == "tiny":
        cfg = dataclasses.replace(cfg, mrq=mrq_presets.tiny(env))
    return cfg


def train_one(
    env: str, learner: str, seed: int, demo_id: str, args: argparse.Namespace
) -> dict[str, Any]:
    base = base_config(env, learner, args.mrq_size)
    time_tag = ""
    if learner == "mrq" and args.mrq_time_input:
        base = dataclasses.replace(base, mrq_time_input=True)
        time_tag = "-time"
    cfg = dataclasses.replace(
        base,
        demos=demo_id,
        minari_root=args.demos_root,
        num_demos=args.num_demos,
        random_steps=base.random_steps if args.random_steps is None else args.random_steps,
        run=bench_run_config(args, seed, f"{learner}{time_tag}-{args.steps}st-bench"),
    )
    start = time.perf_counter()
    run_dir = train(cfg)
    seconds = time.perf_counter() - start
    curve = curve_of(run_dir, "eval/return")
    final, last_k = final_and_last_k(curve, LAST_K)
    print(
        f"{env} {learner} seed {seed}: final {final:.1f}, last-{LAST_K} {last_k:.1f} "
        f"({seconds:.0f}s, {run_dir})",
        flush=True,
    )
    return {
        "env": env,
        "learner": learner,
        "seed": seed,
        "run_dir": str(run_dir),
        "random_steps": cfg.random_steps,
        "curve": curve,
        "final": final,
        f"last{LAST_K}": last_k,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["Pendulum-v1"], help="Gymnasium ids")
    parser.add_argument(
        "--experts",
        nargs="+",
        type=parse_expert,
        default=[("Pendulum-v1", "scripted:pendulum-swingup")],
        help="ENV=scripted:NAME or ENV=RUN_DIR (an mrq-drq or ot-ilfo td3 run), one per task",
    )
    parser.add_argument("--learners", nargs="+", choices=LEARNERS, default=list(LEARNERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--num-demos", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=2_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument(
        "--random-steps", type=int, default=None, help="default: the preset's (1k / 10k)"
    )
    parser.add_argument(
        "--mrq-size",
        choices=("preset", "tiny"),
        default="preset",
        help="MR.Q learner: the preset's (paper widths off Pendulum) or the small `tiny` preset",
    )
    parser.add_argument(
        "--mrq-time-input",
        action="store_true",
        help="give MR.Q the time-to-horizon entry that the paper's TD3 has",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path("runs/bench_ot_ilfo_learning"))
    parser.add_argument("--demos-root", type=Path, default=None, help="default: ROOT/demos")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--reuse-demos",
        action="store_true",
        help="read the demonstration and expert-check datasets already under --demos-root "
        "instead of rolling the expert out again (same expert assumed)",
    )
    args = parser.parse_args()
    experts = dict(args.experts)
    missing = [t for t in args.tasks if t not in experts]
    if missing:
        parser.error(f"--experts: no expert for task(s) {missing}")
    if args.eval_episodes < 1:
        parser.error(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    if args.demos_root is None:
        args.demos_root = args.root / "demos"
    torch.set_num_threads(args.threads)

    results: dict[str, Any] = {
        "benchmark": "ot_ilfo_learning",
        **machine_info(args.device, args.threads),
        "budget": {
            "env_steps": args.steps,
            "eval_every": args.eval_every,
            "eval_episodes": args.eval_episodes,
            "num_demos": args.num_demos,
            "random_steps": args.random_steps,
        },
        "mrq": {"size": args.mrq_size, "time_input": args.mrq_time_input},
        "seeds": args.seeds,
        "learners": args.learners,
        "std": "across seeds, ddof=0",
        "normalised": "(agent - random) / (expert - random), expert = expert_return",
        "tasks": {},
        "runs": [],
    }
    for env in args.tasks:
        demo_id, demo, held_out = expert_returns(
            env, experts[env], args.num_demos, args.eval_episodes, args.demos_root, args.reuse_demos
        )
        rand = float(np.mean([random_return(env, args.eval_episodes, s) for s in args.seeds]))
        results["tasks"][env] = {
            "expert": experts[env],
            "demos": demo_id,
            "demo_return": demo,
            "expert_return": held_out,
            "random_return": rand,
        }
        print(f"{env}: demo {demo:.1f}, expert {held_out:.1f}, random {rand:.1f}", flush=True)
        for learner in args.learners:
            for seed in args.seeds:
                results["runs"].append(train_one(env, learner, seed, demo_id, args))

    stats = ("final", f"last{LAST_K}")
    cells: dict[str, dict[str, Any]] = {}
    for env in args.tasks:
        ref = results["tasks"][env]
        for learner in args.learners:
            runs = [r for r in results["runs"] if r["env"] == env and r["learner"] == learner]
            cell: dict[str, Any] = {}
            for s in stats:
                agent = [r[s] for r in runs]
                cell[s] = {
                    "return": mean_std(agent),
                    "normalised": mean_std(
                        [
                            (a - ref["random_return"])
                            / (ref["expert_return"] - ref["random_return"])
                            for a in agent
                        ]
                    ),
                    "agent/expert": mean_std([a / ref["expert_return"] for a in agent]),
                }
            cells.setdefault(env, {})[learner] = cell
    results["cells"] = cells

    with atomic_write(args.out, "w") as f:
        json.dump(results, f, indent=2)
    cols = [
        f"{env} (expert {results['tasks'][env]['expert_return']:.0f}, "
        f"random {results['tasks'][env]['random_return']:.0f})"
        for env in args.tasks
    ]
    by_col = dict(zip(cols, args.tasks, strict=True))
    for s in stats:
        print(f"\n{s} evaluation: return; (agent - random)/(expert - random); agent/expert\n")
        print(
            markdown_table(
                "learner",
                args.learners,
                cols,
                lambda lr, c, s=s: "; ".join(
                    fmt(cells[by_col[c]][lr][s][k], d)
                    for k, d in (("return", 1), ("normalised", 2), ("agent/expert", 2))
                ),
            )
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
