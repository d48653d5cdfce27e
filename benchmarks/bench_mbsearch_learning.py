"""MR.Q, MR.Q+MPC and MRS.Q at small widths on Gym tasks: returns and overestimation.

Each (arm, seed) is one ``rl-train mbsearch`` run (``--preset laptop``: MR.Q's tiny widths with
65 reward bins; the arm's own settings; a smaller planner than TD-MPC2's so that a CPU budget
covers it: ``--planner-samples`` sequences, ``--planner-iterations`` iterations, 1/8 elites,
1/16 policy-prior sequences), run as a subprocess with one torch thread, ``--jobs`` at a time.
Reads each run's ``metrics.jsonl``: greedy evaluation returns and the ``train/overestimation``
diagnostic (``(Q(s,a) - G) / |G|`` over every finished training episode, minimum over the
critics). Writes JSON (and a PNG with ``--plot``) to ``benchmarks/results/``.

    uv run --no-sync python benchmarks/bench_mbsearch_learning.py --env InvertedPendulum-v5 \\
        --steps 1000 --seeds 0 1 2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rl_buffers.io import atomic_write

RESULTS = Path(__file__).parent / "results"
ARMS = ("mrq", "mpc", "mrsq")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return next(
        (
            line.split(":", 1)[1].strip()
            for line in out.splitlines()
            if line.startswith("Model name:")
        ),
        "unknown",
    )


def one_run(root: Path, arm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    samples = args.planner_samples
    cmd = [
        sys.executable, "-m", "rl_train", "mbsearch", "--preset", "laptop", "--env", args.env,
        "--arm", arm, "--seed", str(seed), "--root", str(root), "--name", f"{arm}",
        "--total-steps", str(args.steps), "--eval-every", str(args.eval_every),
        "--eval-episodes", str(args.eval_episodes), "--log-every", str(args.log_every),
        "--checkpoint-every", str(args.steps), "--agent.mrq.schedule.random-steps",
        str(args.random_steps), "--agent.planner.num-samples", str(samples),
        "--agent.planner.num-pi-trajs", str(max(1, samples // 16)),
        "--agent.planner.num-elites", str(max(1, samples // 8)),
        "--agent.planner.iterations", str(args.planner_iterations),
        "--torch-threads", "1", "--device", "cpu", "--quiet", "--no-tensorboard",
    ]  # fmt: skip
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{arm} seed {seed} failed:\n{done.stderr[-3000:]}")
    run = next((root / "mbsearch").glob(f"*/{seed}-{arm}"))
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [(e["step"], e["eval/return"]) for e in lines if "eval/return" in e]
    over = [(e["step"], e["train/overestimation"]) for e in lines if "train/overestimation" in e]
    return {"arm": arm, "seed": seed, "wall_s": round(wall, 1), "eval": evals,
            "overestimation": over}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--env", default="InvertedPendulum-v5")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--random-steps", type=int, default=250)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--log-every", type=int, default=250)
    parser.add_argument("--planner-samples", type=int, default=128)
    parser.add_argument("--planner-iterations", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--name", default=None)
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_mbsearch_") as tmp:
        jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(lambda j: one_run(Path(tmp) / f"s{j[1]}", j[0], j[1], args), jobs))
    summary: dict[str, Any] = {}
    for arm in args.arms:
        mine = [r for r in runs if r["arm"] == arm]
        finals = [r["eval"][-1][1] for r in mine]
        overs = [
            statistics.mean(v for _, v in r["overestimation"]) for r in mine if r["overestimation"]
        ]
        summary[arm] = {
            "final_return_mean": round(statistics.mean(finals), 2),
            "final_return_std": round(statistics.pstdev(finals), 2),
            "final_return_per_seed": finals,
            "overestimation_mean": round(statistics.mean(overs), 3) if overs else None,
            "overestimation_per_seed": [round(v, 3) for v in overs],
        }
    name = args.name or f"mbsearch_learning_{args.env.split('-')[0].lower()}"
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu_model": cpu_model(),
        "torch_threads_per_run": 1,
        "jobs": args.jobs,
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg(),
        "wall_s": round(time.perf_counter() - started, 1),
        "settings": vars(args),
        "summary": summary,
        "runs": runs,
    }
    with atomic_write(RESULTS / f"{name}.json", "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(summary, indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for arm in args.arms:
            mine = [r for r in runs if r["arm"] == arm]
            steps = [s for s, _ in mine[0]["eval"]]
            mean = [statistics.mean(r["eval"][i][1] for r in mine) for i in range(len(steps))]
            axes[0].plot(steps, mean, marker="o", label=arm)
            for r in mine:
                if r["overestimation"]:
                    xs, ys = zip(*r["overestimation"], strict=True)
                    axes[1].plot(xs, ys, alpha=0.6, label=arm if r is mine[0] else None,
                                 color=axes[0].lines[-1].get_color())  # fmt: skip
        axes[0].set(title=f"{args.env}: greedy return (mean of {len(args.seeds)} seeds)",
                    xlabel="env steps")  # fmt: skip
        axes[1].set(title="relative overestimation (Q - G) / |G|", xlabel="env steps")
        axes[1].axhline(0, color="grey", lw=0.5)
        axes[0].legend()
        axes[1].legend()
        fig.tight_layout()
        fig.savefig(RESULTS / f"{name}.png", dpi=110)
    print(f"wrote {RESULTS / name}.json")


if __name__ == "__main__":
    main()
