"""The fairness-utility trade-off of the Bisimulator and its baselines (``rl-train fairbisim``).

For one environment (``--env lending`` or ``college``), every method (bisimulator with PPO,
bisimulator with DQN, ppo, dqn, rppo, appo) is trained for ``--steps`` environment steps on
``--seeds`` seeds through the real trainer, and each run's held-out fairness evaluation
(``fairness.json``: acceptance-rate gap, TPR gap, utility) is collected. Writes
``benchmarks/results/fairbisim_<env>.json`` (per run and mean +- std per method, with the
machine, torch threads, load averages and the command) and ``fairbisim_<env>.png`` (acceptance
gap against utility, one point per method with its seed spread).

The paper's claim (Rezaei-Shoshtari et al., arXiv 2412.17123): the Bisimulator reaches smaller
group gaps than PPO / DQN on the true reward, at a small cost in utility. The budgets here are
far below the paper's (CPU, shared machine); the JSON says what they were.

Usage: ``uv run --no-sync python benchmarks/bench_fairbisim_tradeoff.py --env lending``
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

RESULTS = Path(__file__).parent / "results"
METHODS: dict[str, list[str]] = {
    "bisimulator": ["--algo", "bisimulator"],
    "bisimulator-dqn": ["--algo", "bisimulator", "--agent.bisim.solver", "dqn"],
    "ppo": ["--algo", "ppo"],
    "dqn": ["--algo", "dqn"],
    "rppo": ["--algo", "rppo"],
    "appo": ["--algo", "appo"],
}
KEYS = ("acceptance_gap", "tpr_gap", "utility", "acceptance_rate_g0", "acceptance_rate_g1",
        "tpr_g0", "tpr_g1", "return")  # fmt: skip


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _argv(args: argparse.Namespace, method: str, seed: int, root: Path) -> list[str]:
    return [
        "--env", args.env,
        *METHODS[method],
        "--seed", str(seed),
        "--total-steps", str(args.steps),
        "--loop.num-envs", "64",
        "--loop.num-steps", "32",
        "--fairness-episodes", "4",
        "--fairness-steps", str(args.fairness_steps),
        "--fairness-policy", "sample",
        "--eval-every", str(args.steps),
        "--eval-episodes", "1",
        "--log-every", "4096",
        "--checkpoint-every", str(args.steps),
        "--torch-threads", "1",
        "--device", "cpu",
        "--root", str(root),
        "--name", method,
        "--quiet",
        "--no-tensorboard",
    ]  # fmt: skip


def _plot(summary: dict[str, Any], env: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, gap in zip(axes, ("acceptance_gap", "tpr_gap"), strict=True):
        for method, s in summary.items():
            ax.errorbar(
                s[gap]["mean"],
                s["utility"]["mean"],
                xerr=s[gap]["std"],
                yerr=s["utility"]["std"],
                fmt="o",
                capsize=3,
                label=method,
            )
        ax.set_xlabel(f"{gap.replace('_', ' ')} (lower is fairer)")
        ax.set_ylabel("utility (" + ("bank cash" if env == "lending" else "accuracy") + ")")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"fairbisim on {env}: fairness-utility trade-off (mean +- std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--env", choices=("lending", "college"), default="lending")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=0, help="0: 24576 lending, 16384 college")
    parser.add_argument("--fairness-steps", type=int, default=0, help="0: 5000 / 100")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.steps == 0:
        args.steps = 24_576 if args.env == "lending" else 16_384
    if args.fairness_steps == 0:
        args.fairness_steps = 5_000 if args.env == "lending" else 100
    out = args.out or RESULTS / f"fairbisim_{args.env}.json"

    from rl_train.cli import main as rl_train

    torch.set_num_threads(1)
    info = {
        "command": " ".join([sys.executable, *sys.argv]),
        "cpu": _cpu_model(),
        "torch_threads": 1,
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
        "env": args.env,
        "steps_per_run": args.steps,
        "fairness_eval": {
            "episodes": 4,
            "steps": args.fairness_steps,
            "policy": "sample (PPO's actions drawn from its policy; DQN greedy)",
        },
        "seeds": list(range(args.seeds)),
    }
    runs: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fairbisim-bench-") as tmp:
        for seed in range(args.seeds):
            for method in args.methods:
                t0 = time.perf_counter()
                code = rl_train(["fairbisim", *_argv(args, method, seed, Path(tmp))])
                if code != 0:
                    raise SystemExit(f"{method} seed {seed} failed with exit status {code}")
                run_dir = Path(tmp) / "fairbisim" / args.env / f"{seed}-{method}"
                fair = json.loads((run_dir / "fairness.json").read_text())
                row = {"method": method, "seed": seed, "seconds": time.perf_counter() - t0}
                row.update({k: fair[k] for k in KEYS})
                for g in (0, 1):
                    if f"credit_mean_g{g}" in fair:
                        row[f"credit_mean_g{g}"] = fair[f"credit_mean_g{g}"]
                runs.append(row)
                print(
                    f"{method:16s} seed {seed}: acceptance gap {row['acceptance_gap']:.3f}, "
                    f"TPR gap {row['tpr_gap']:.3f}, utility {row['utility']:.4g} "
                    f"({row['seconds']:.0f} s)",
                    flush=True,
                )
    summary: dict[str, Any] = {}
    for method in args.methods:
        rows = [r for r in runs if r["method"] == method]
        summary[method] = {
            k: {
                "mean": statistics.fmean(r[k] for r in rows),
                "std": statistics.pstdev(r[k] for r in rows),
            }
            for k in KEYS
        }
    info["load_average_at_end"] = os.getloadavg()
    info["wall_seconds"] = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**info, "summary": summary, "runs": runs}, indent=1))
    _plot(summary, args.env, out.with_suffix(".png"))
    print(f"| method | acceptance gap | TPR gap | utility |  ({args.env}, {args.seeds} seeds)")
    for method, s in summary.items():
        cells = [f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}" for k in ("acceptance_gap", "tpr_gap")]
        cells.append(f"{s['utility']['mean']:.4g} ± {s['utility']['std']:.3g}")
        print(f"| {method} | " + " | ".join(cells) + " |")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
