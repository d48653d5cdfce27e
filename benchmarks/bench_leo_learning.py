"""LEO learning benchmark on the Gridworld at a CPU budget: success over all goals against env
steps for LEO, PQN, PQN+HER (mixed), PPO and Dual LEO (PPO), 3 seeds each, with a uniformly
random policy's success on the same test beside them.

Each run is ``rl-train leo --preset gridworld --algo A --seed S`` with the budget below (a 10x10
map, 66 goals, instead of the paper's 16x16: the CPU budget is ~5 orders of magnitude below the
paper's; widths 128). ``eval/success_rate`` is the greedy test of every goal from the start cell
(50 steps at most). The paper's 1e9-step Craftax numbers are recorded beside for reference; they
are not comparable (other env, budget gap stated in the JSON).

    uv run --no-sync python benchmarks/bench_leo_learning.py     # results/leo_learning.{json,png}
    uv run --no-sync python benchmarks/bench_leo_learning.py --steps 8192 --seeds 1   # smoke
"""

from __future__ import annotations

import argparse
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

import torch
from rl_buffers.io import atomic_write

RESULTS = Path(__file__).parent / "results" / "leo_learning.json"
ALGOS = ("leo", "pqn", "pqn-her", "ppo", "dual-leo-ppo")
PAPER_1E9 = {
    "craftax-classic": {"ppo": 0.79, "pqn": 0.48, "pqn-her": 0.67, "leo": 0.61,
                        "dual-leo-pqn": 0.75, "dual-leo-ppo": 0.81},
    "craftax": {"ppo": 0.13, "pqn": 0.11, "pqn-her": 0.12, "leo": 0.16, "dual-leo-pqn": 0.18,
                "dual-leo-ppo": 0.26},
}  # fmt: skip


def machine() -> dict[str, Any]:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if "Model name" in ln), ""
        )
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": 1,
        "device": "cpu",
        "load_average_at_start": os.getloadavg(),
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
    }


def random_success(size: int, max_steps: int, seed: int) -> float:
    """A uniformly random policy on the same goal test."""
    from leo.config import EvalConfig
    from leo.envs import Gridworld
    from leo.loop import evaluate_goals
    from rl_runtime.seeding import derive_seed

    class Random:
        def act(self, obs: Any, goal: Any, *, epsilon: float, generator: torch.Generator) -> Any:
            return torch.randint(0, 4, (obs.shape[0],), generator=generator)

    g = len(Gridworld(1, size=size, reset_ratio=1).goals)
    env = Gridworld(g, size=size, reset_ratio=g, seed=derive_seed(seed, "eval"))
    cfg = EvalConfig(max_steps=max_steps)
    return float(evaluate_goals(Random(), env, cfg=cfg, seed=derive_seed(seed, "eval")).mean())  # type: ignore[arg-type]


def one_run(algo: str, seed: int, steps: int, size: int, root: Path) -> dict[str, Any]:
    from rl_train.methods.leo import METHOD

    args = ["--preset", "gridworld", "--algo", algo, "--seed", str(seed),
            "--envs.grid-size", str(size), "--network.width", "128",
            "--total-steps", str(steps), "--eval-every", str(steps // 4),
            "--log-every", str(steps // 4), "--checkpoint-every", str(steps),
            "--root", str(root), "--name", f"{algo}-{seed}", "--quiet", "--no-tensorboard"]  # fmt: skip
    t0 = time.perf_counter()
    run = METHOD.train(METHOD.parse(args))
    wall = time.perf_counter() - t0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [(x["step"], x["eval/success_rate"]) for x in lines if "eval/success_rate" in x]
    print(f"{algo} seed {seed}: {curve[-1][1]:.3f} after {steps} steps ({wall:.0f} s)", flush=True)
    return {"algo": algo, "seed": seed, "curve": curve, "final": curve[-1][1], "wall_seconds": wall}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for algo in result["algos"]:
        runs = [r for r in result["runs"] if r["algo"] == algo]
        steps = [s for s, _ in runs[0]["curve"]]
        mean = [statistics.mean(r["curve"][i][1] for r in runs) for i in range(len(steps))]
        ax.plot(steps, mean, marker="o", label=algo)
    ax.axhline(result["random_policy_success"], color="k", ls="--", label="random policy")
    ax.set_xlabel("env steps")
    ax.set_ylabel("success over all goals (Q: greedy, PPO: sampled)")
    ax.set_title(f"Gridworld {result['grid_size']}x{result['grid_size']}, mean of "
                 f"{result['seeds']} seeds")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--steps", type=int, default=49_152, help="env steps per run")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--size", type=int, default=10, help="Gridworld side")
    p.add_argument("--algos", nargs="*", default=list(ALGOS))
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args()
    torch.set_num_threads(1)
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(algo, seed, a.steps, a.size, Path(tmp))
                for seed in range(a.seeds) for algo in a.algos]  # fmt: skip
    table = {
        algo: {
            "mean": statistics.mean(r["final"] for r in runs if r["algo"] == algo),
            "per_seed": [r["final"] for r in runs if r["algo"] == algo],
        }
        for algo in a.algos
    }
    result = {
        "machine": info,
        "env": "gridworld",
        "grid_size": a.size,
        "steps_per_run": a.steps,
        "seeds": a.seeds,
        "algos": a.algos,
        "random_policy_success": random_success(a.size, 50, 0),
        "final_success": table,
        "runs": runs,
        "paper_success_at_1e9_steps": PAPER_1E9,
        "budget_gap": f"{a.steps} steps per run here against 1e9 in the paper's Craftax runs "
        f"({1e9 / a.steps:.0f}x); nothing is extrapolated",
        "load_average_at_end": os.getloadavg(),
    }
    with atomic_write(a.out, "w") as f:
        f.write(json.dumps(result, indent=2))
    plot(result, a.out.with_suffix(".png"))
    print(json.dumps(table, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
