"""gradimbalance: per-task gradient imbalance, learning gains and their correlation, under
uniform and gradient-proportional task sampling, several seeds; JSON + tables + plots.

Per seed, one config-built model (the ``small`` preset's: Qwen2, 2 layers, width 64) is
warm-started by supervised fine-tuning on the five tasks (``gradimbalance.sft``, stopped at the
preset's mean sampled accuracy or ``--sft-steps``); from that same warm start each arm
(``uniform``, ``gradient``: p_t proportional to the latest squared-gradient estimate, floor
0.05) runs ``--steps`` GRPO steps through TRL (``gradimbalance.agent.GradImbalanceRunner``, the
code ``rl-train gradimbalance`` runs), measuring every task every ``--every`` steps (m = 4
micro-batches of 2 groups of 8 completions per task) and once more after the last step.

Reported, per arm (mean ± std over seeds, ddof = 0):

* the per-task squared gradient norm (cross-product estimate), its ratio to the smallest
  task's at the same step (the paper: code up to 15x MATH, arithmetic up to 33x), and the
  largest ratio seen;
* the learning gain at each measured step t with s <= t < steps - s (the paper's definition,
  window s = ``--window``), per task;
* the across-task correlation (Spearman, over the tasks at one step, then averaged over steps
  and seeds) between the squared gradient norm and the gain (the paper: larger gradients do not
  mean larger gains), and between the squared gradient norm and mean |advantage| (the paper: no
  across-task relation), with the within-task correlation of the norm with |advantage| over
  time (the paper: related within a task);
* the final reward per task and averaged over tasks on the last measurement batch (every task
  equally often; the paper: gradient-proportional sampling does not help);
* the cost of one measurement in wall time, as a fraction of one training step.

    uv run --no-sync python benchmarks/bench_gradimbalance_imbalance.py --seeds 0 1 2 \\
        --steps 100 --every 20 --window 10 --sft-steps 600 --groups 4
    uv run --no-sync python benchmarks/bench_gradimbalance_imbalance.py --seeds 0 --steps 20 \\
        --sft-steps 20 --out /tmp/gi.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gradimbalance.agent import GradImbalanceRunner, RunnerSettings
from gradimbalance.config import ALL_TASKS, MeasureConfig, SamplingConfig
from gradimbalance.measures import learning_gain
from gradimbalance.networks import build_model, load_pretrained, parameter_count
from gradimbalance.sampler import TaskSampler
from gradimbalance.sft import supervised_warm_start
from gradimbalance.tasks import make_tasks
from gradimbalance.tokenizer import char_tokenizer
from gradimbalance.trainer import MeasuredGRPOTrainer, grpo_args
from rl_buffers.io import atomic_write
from rl_runtime.seeding import derive_seed, seed_everything
from rl_train.methods.gradimbalance import METHOD

RESULTS = Path(__file__).parent / "results" / "gradimbalance_imbalance.json"
ARMS = ("uniform", "gradient")

PAPER = {
    "gradient_norm_ratio": "Qwen2.5-7B multi-domain: Code up to ~15x MATH's squared gradient "
    "norm; single-domain math: Arithmetic up to 33x",
    "gain_vs_gradient": "larger gradients do not mean larger learning gains (Code: largest "
    "gradient, lowest gain; Arithmetic's gains vanish early)",
    "gradient_sampling": "sampling tasks in proportion to gradient size gives no advantage and "
    "sometimes hurts average performance",
    "advantage": "within a task the gradient norm follows |advantage|; across tasks it does not",
}


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            "",
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
    }


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN with < 3 points or no spread."""
    if len(x) < 3:
        return math.nan
    rx = np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float)
    ry = np.argsort(np.argsort(y, kind="stable"), kind="stable").astype(float)
    for r, v in ((rx, np.asarray(x)), (ry, np.asarray(y))):
        for value in np.unique(v):  # ties share their mean rank
            r[v == value] = r[v == value].mean()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def stat(values: Sequence[float]) -> dict[str, float] | None:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return None
    arr = np.asarray(finite)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": len(finite)}


def fmt(s: dict[str, float] | None, digits: int = 3) -> str:
    return "—" if s is None else f"{s['mean']:.{digits}g} ± {s['std']:.{digits - 1}g}"


def warm_start(seed: int, folder: Path, sft_steps: int) -> dict[str, Any]:
    """Build and warm-start the seed's model; save it to ``folder``."""
    cfg = METHOD.presets["small"]
    tasks = make_tasks(ALL_TASKS, cfg.tasks)
    seed_everything(seed)
    tokenizer = char_tokenizer()
    model = build_model(cfg.net, tokenizer)
    sampler = TaskSampler(tasks, derive_seed(seed, "tasks"))
    sft = (
        cfg.sft if sft_steps < 0 else type(cfg.sft)(**{**cfg.sft.__dict__, "max_steps": sft_steps})
    )
    start = time.perf_counter()
    result = supervised_warm_start(
        model, tokenizer, tasks, sampler, sft,
        temperature=cfg.grpo.temperature, max_new_tokens=cfg.grpo.max_completion_length,
    )  # fmt: skip
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {
        "steps": result.steps,
        "accuracy": result.accuracy,
        "mean_accuracy": result.mean_accuracy,
        "seconds": time.perf_counter() - start,
        "parameters": parameter_count(model),
    }


def run_arm(
    seed: int, arm: str, folder: Path, steps: int, every: int, window: int, groups: int
) -> dict[str, Any]:
    """GRPO from the warm start in ``folder`` with the arm's sampling; every measurement and
    every step's per-task training reward."""
    cfg = METHOD.presets["small"]
    tasks = make_tasks(ALL_TASKS, cfg.tasks)
    model, tokenizer = load_pretrained(folder)
    seed_everything(seed)
    args = grpo_args(cfg.grpo, output_dir=folder / "trl", seed=derive_seed(seed, "trl"),
                     use_cpu=True, max_steps=steps)  # fmt: skip
    trainer = MeasuredGRPOTrainer(model, tasks=tasks, args=args, processing_class=tokenizer)
    measure = MeasureConfig(
        every=every, microbatches=4, groups_per_microbatch=groups, gain_window=window
    )
    settings = RunnerSettings(cfg.grpo, measure, SamplingConfig(arm=arm, floor=0.05))  # type: ignore[arg-type]
    # The same task stream per seed in both arms until their probabilities differ.
    runner = GradImbalanceRunner(trainer, TaskSampler(tasks, derive_seed(seed, "tasks-grpo")),
                                 settings, total_steps=steps)  # fmt: skip
    measurements: list[dict[str, Any]] = []
    step_seconds: list[float] = []
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            m = runner.measure()
            measurements.append({"step": step, **m})
        if step == steps:
            break
        out = runner.train_step(step)
        step_seconds.append(out["time/step_seconds"])
    return {
        "measurements": measurements,
        "rewards": runner.reward_history,
        "step_seconds": step_seconds,
    }


def analyse(
    arm_runs: Sequence[dict[str, Any]], every: int, window: int, steps: int
) -> dict[str, Any]:
    """Per-arm summary over seeds (see the module doc)."""
    names = ALL_TASKS
    centres = [t for t in range(window, steps - window) if t % every == 0]
    ratio_by_task: dict[str, list[float]] = {n: [] for n in names}
    max_ratio: list[float] = []
    g_by_task: dict[str, list[float]] = {n: [] for n in names}
    gains_by_task: dict[str, list[float]] = {n: [] for n in names}
    corr_gain: list[float] = []
    corr_adv: list[float] = []
    within_adv: dict[str, list[float]] = {n: [] for n in names}
    final_reward: dict[str, list[float]] = {n: [] for n in names}
    final_mean: list[float] = []
    cost: list[float] = []
    run_mean_g: dict[str, list[float]] = {n: [] for n in names}
    run_ratio: dict[str, list[float]] = {n: [] for n in names}
    run_max_ratio: list[float] = []
    run_gain: dict[str, list[float]] = {n: [] for n in names}
    run_corr_gain: list[float] = []
    run_corr_adv: list[float] = []
    ratio_curve: dict[str, list[list[float]]] = {n: [] for n in names}
    for run in arm_runs:
        ms = run["measurements"]
        for m in ms:
            g = [m.get(f"eval/grad_sq_norm/{n}", math.nan) for n in names]
            positive = [v for v in g if v > 0]
            for n, v in zip(names, g, strict=True):
                g_by_task[n].append(v)
                if positive and v > 0:
                    ratio_by_task[n].append(v / min(positive))
            if len(positive) >= 2:
                max_ratio.append(max(positive) / min(positive))
        for n in names:
            curve = []
            for m in ms:
                g = [m.get(f"eval/grad_sq_norm/{t}", math.nan) for t in names]
                positive = [v for v in g if v > 0]
                mine = m.get(f"eval/grad_sq_norm/{n}", math.nan)
                curve.append(mine / min(positive) if positive and mine > 0 else math.nan)
            ratio_curve[n].append(curve)
        by_step = {m["step"]: m for m in ms}
        for t in centres:
            m = by_step[t]
            g = [m.get(f"eval/grad_sq_norm/{n}", math.nan) for n in names]
            gains = [
                learning_gain([row[i] for row in run["rewards"]], t, window)
                for i in range(len(names))
            ]
            adv = [m.get(f"eval/abs_advantage/{n}", math.nan) for n in names]
            for n, v in zip(names, gains, strict=True):
                gains_by_task[n].append(v)
            ok = [i for i in range(len(names)) if not math.isnan(g[i]) and not math.isnan(gains[i])]
            corr_gain.append(spearman([g[i] for i in ok], [gains[i] for i in ok]))
        for m in ms:
            g = [m.get(f"eval/grad_sq_norm/{n}", math.nan) for n in names]
            adv = [m.get(f"eval/abs_advantage/{n}", math.nan) for n in names]
            ok = [i for i in range(len(names)) if not math.isnan(g[i]) and not math.isnan(adv[i])]
            corr_adv.append(spearman([g[i] for i in ok], [adv[i] for i in ok]))
        for n in names:
            g = [m.get(f"eval/grad_sq_norm/{n}", math.nan) for m in ms]
            adv = [m.get(f"eval/abs_advantage/{n}", math.nan) for m in ms]
            within_adv[n].append(spearman(g, adv))
        last = ms[-1]
        for n in names:
            final_reward[n].append(last.get(f"eval/reward/{n}", math.nan))
        final_mean.append(
            float(np.nanmean([last.get(f"eval/reward/{n}", math.nan) for n in names]))
        )
        # Run level: each task's estimates averaged over the run (an average of unbiased
        # estimates is unbiased, and far less noisy than one), its whole-run gain (mean reward
        # of the last s steps minus the first s), and their across-task rank correlation.
        mean_g = [
            float(np.nanmean([m.get(f"eval/grad_sq_norm/{n}", math.nan) for m in ms]))
            for n in names
        ]
        mean_adv = [
            float(np.nanmean([m.get(f"eval/abs_advantage/{n}", math.nan) for m in ms]))
            for n in names
        ]
        rewards = np.asarray(run["rewards"], dtype=float)
        whole_gain = [
            float(np.nanmean(rewards[-window:, i]) - np.nanmean(rewards[:window, i]))
            for i in range(len(names))
        ]
        positive = [v for v in mean_g if v > 0]
        for n, g_n, gain_n in zip(names, mean_g, whole_gain, strict=True):
            run_mean_g[n].append(g_n)
            run_gain[n].append(gain_n)
            if positive and g_n > 0:
                run_ratio[n].append(g_n / min(positive))
        if len(positive) >= 2:
            run_max_ratio.append(max(positive) / min(positive))
        run_corr_gain.append(spearman(mean_g, whole_gain))
        run_corr_adv.append(spearman(mean_g, mean_adv))
        measure_seconds = [m["time/measure_seconds"] for m in ms]
        cost.append(float(np.mean(measure_seconds) / np.mean(run["step_seconds"])))
    return {
        "run_mean_grad_sq_norm": {n: stat(v) for n, v in run_mean_g.items()},
        "run_ratio_to_smallest": {n: stat(v) for n, v in run_ratio.items()},
        "run_largest_ratio": stat(run_max_ratio),
        "run_gain": {n: stat(v) for n, v in run_gain.items()},
        "run_spearman_grad_vs_gain_across_tasks": stat(run_corr_gain),
        "run_spearman_grad_vs_abs_advantage_across_tasks": stat(run_corr_adv),
        "grad_sq_norm": {n: stat(v) for n, v in g_by_task.items()},
        "ratio_to_smallest": {n: stat(v) for n, v in ratio_by_task.items()},
        "ratio_to_smallest_curve_mean": {
            n: [
                float(np.nanmean(col)) if not all(math.isnan(c) for c in col) else None
                for col in zip(*curves, strict=True)
            ]
            for n, curves in ratio_curve.items()
        },
        "largest_ratio": {"max": max(max_ratio) if max_ratio else None, **(stat(max_ratio) or {})},
        "gain": {n: stat(v) for n, v in gains_by_task.items()},
        "spearman_grad_vs_gain_across_tasks": stat(corr_gain),
        "spearman_grad_vs_abs_advantage_across_tasks": stat(corr_adv),
        "spearman_grad_vs_abs_advantage_within_task": {n: stat(v) for n, v in within_adv.items()},
        "final_reward": {n: stat(v) for n, v in final_reward.items()},
        "final_mean_reward": stat(final_mean),
        "measurement_cost_fraction_of_step": stat(cost),
    }


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _task_rows(summary: dict[str, Any], keys: Sequence[str]) -> list[str]:
    """One row per (task, arm): ``fmt`` of ``summary[arm][key][task]`` for each key."""
    return [
        f"| {n} | {arm} | " + " | ".join(fmt(summary[arm][k][n]) for k in keys) + " |"
        for n in ALL_TASKS
        for arm in ARMS
    ]


def _arm_rows(summary: dict[str, Any], first: str, keys: Sequence[str]) -> list[str]:
    """One row per arm: ``_num`` of ``summary[arm][first]["max"]`` or ``fmt`` of its stat,
    then ``fmt`` of ``summary[arm][key]`` for each key."""
    rows = []
    for arm in ARMS:
        head = summary[arm][first]
        text = _num(head.get("max")) if "max" in head else fmt(head)
        rows.append(f"| {arm} | {text} | " + " | ".join(fmt(summary[arm][k]) for k in keys) + " |")
    return rows


_ARM_KEYS = ("final_mean_reward", "measurement_cost_fraction_of_step")


def table(summary: dict[str, Any]) -> str:
    return "\n".join(
        [
            "Run level (each seed's measurements averaged over the run; whole-run gain = mean "
            "reward of the last s steps minus the first s):",
            "",
            "| task | arm | mean ‖∇J‖² | ratio to smallest task | whole-run gain | final reward |",
            "|---|---|---|---|---|---|",
            *_task_rows(
                summary,
                ("run_mean_grad_sq_norm", "run_ratio_to_smallest", "run_gain", "final_reward"),
            ),
            "",
            "| arm | largest/smallest task | ρ(‖∇J‖², gain) across tasks | "
            "ρ(‖∇J‖², |A|) across tasks | final mean reward | measurement / step time |",
            "|---|---|---|---|---|---|",
            *_arm_rows(
                summary,
                "run_largest_ratio",
                (
                    "run_spearman_grad_vs_gain_across_tasks",
                    "run_spearman_grad_vs_abs_advantage_across_tasks",
                    *_ARM_KEYS,
                ),
            ),
            "",
            "Per measurement (every k steps; gains at measured steps t with s <= t < steps - s):",
            "",
            "| task | arm | ‖∇J‖² (cross-product) | ratio to smallest | gain (s steps) | "
            "ρ(‖∇J‖², |A|) within task | final reward |",
            "|---|---|---|---|---|---|---|",
            *_task_rows(
                summary,
                (
                    "grad_sq_norm",
                    "ratio_to_smallest",
                    "gain",
                    "spearman_grad_vs_abs_advantage_within_task",
                    "final_reward",
                ),
            ),
            "",
            "| arm | largest ratio seen | ρ(‖∇J‖², gain) across tasks | "
            "ρ(‖∇J‖², |A|) across tasks | final mean reward | measurement / step time |",
            "|---|---|---|---|---|---|",
            *_arm_rows(
                summary,
                "largest_ratio",
                (
                    "spearman_grad_vs_gain_across_tasks",
                    "spearman_grad_vs_abs_advantage_across_tasks",
                    *_ARM_KEYS,
                ),
            ),
        ]
    )


def plot(runs: dict[str, list[dict[str, Any]]], path: Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for row, arm in enumerate(ARMS):
        ax_g, ax_r, ax_s = axes[row]
        for n in ALL_TASKS:
            curves = []
            for run in runs[arm]:
                ms = run["measurements"]
                curves.append([m.get(f"eval/grad_sq_norm/{n}", math.nan) for m in ms])
            steps = [m["step"] for m in runs[arm][0]["measurements"]]
            mean = np.nanmean(np.where(np.asarray(curves) > 0, curves, np.nan), axis=0)
            ax_g.plot(steps, mean, marker="o", ms=3, label=n)
            rewards = np.asarray(
                [[r[ALL_TASKS.index(n)] for r in run["rewards"]] for run in runs[arm]]
            )
            smooth = [
                np.nanmean(rewards[:, max(0, i - window + 1) : i + 1])
                for i in range(rewards.shape[1])
            ]
            ax_r.plot(range(rewards.shape[1]), smooth, label=n)
            xs, ys = [], []
            for run in runs[arm]:
                for m in run["measurements"]:
                    t = m["step"]
                    gain = learning_gain([r[ALL_TASKS.index(n)] for r in run["rewards"]], t, window)
                    g = m.get(f"eval/grad_sq_norm/{n}", math.nan)
                    if not math.isnan(gain) and g > 0:
                        xs.append(g)
                        ys.append(gain)
            ax_s.scatter(xs, ys, s=12, label=n)
        ax_g.set(title=f"{arm}: ‖∇J_task‖² (mean over seeds)", xlabel="step")
        ax_r.set(title=f"{arm}: training reward ({window}-step mean)", xlabel="step")
        ax_s.set(title=f"{arm}: gain vs ‖∇J_task‖²", xlabel="‖∇J_task‖²", ylabel="gain")
        if ax_s.collections and any(len(c.get_offsets()) for c in ax_s.collections):
            ax_s.set_xscale("log")
            ax_g.set_yscale("log")
        ax_s.axhline(0, color="grey", lw=0.5)
        for ax in (ax_g, ax_r, ax_s):
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100, help="GRPO steps per arm")
    parser.add_argument("--every", type=int, default=10, help="k: measure every k steps")
    parser.add_argument("--window", type=int, default=10, help="s: gain window")
    parser.add_argument("--groups", type=int, default=4, help="groups per micro-batch (m = 4)")
    parser.add_argument("--sft-steps", type=int, default=-1, help="SFT cap (-1: the preset's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine()
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    warm: dict[int, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            folder = Path(tmp) / f"warm-{seed}"
            warm[seed] = warm_start(seed, folder, args.sft_steps)
            print(f"seed {seed}: warm start {warm[seed]}", flush=True)
            for arm in ARMS:
                t0 = time.perf_counter()
                runs[arm].append(
                    run_arm(seed, arm, folder, args.steps, args.every, args.window, args.groups)
                )
                print(f"seed {seed} {arm}: {time.perf_counter() - t0:.0f} s", flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    summary = {arm: analyse(runs[arm], args.every, args.window, args.steps) for arm in ARMS}
    text = table(summary)
    print(text)
    png = args.out.with_suffix(".png")
    plot(runs, png, args.window)
    result = {
        "benchmark": "gradimbalance_imbalance",
        "machine": info,
        "load_average_at_end": os.getloadavg(),
        "wall_seconds": time.perf_counter() - started,
        "budget": {
            "seeds": args.seeds,
            "grpo_steps_per_arm": args.steps,
            "measure_every": args.every,
            "gain_window": args.window,
            "microbatches": 4,
            "groups_per_microbatch": args.groups,
            "preset": "small",
            "sft_steps_cap": args.sft_steps,
        },
        "paper": PAPER,
        "warm_start": {str(k): v for k, v in warm.items()},
        "summary": summary,
        "table": text,
        "runs": runs,
        "plot": png.name,
    }
    with atomic_write(args.out, "w") as f:
        json.dump(result, f, indent=1, default=lambda o: None)
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
