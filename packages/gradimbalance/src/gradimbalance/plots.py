"""Figures of a run's measurements, from its ``metrics.jsonl`` entries (matplotlib, Agg).

:func:`plot_measurements` draws four panels: each task's squared gradient norm (cross-product
estimate, log scale; non-positive estimates are not drawn), its ratio to the smallest task's at
the same step, the training reward per task (moving mean over the gain window) and the
learning gains at the measured steps, with the task probabilities of the sampling arm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["plot_measurements", "series"]


def series(entries: Sequence[Mapping[str, float]], key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of the entries that hold ``key``."""
    steps = [int(e["step"]) for e in entries if key in e]
    return steps, [float(e[key]) for e in entries if key in e]


def _moving_mean(values: Sequence[float], window: int) -> list[float]:
    out: list[float] = []
    for i in range(len(values)):
        part = [v for v in values[max(0, i - window + 1) : i + 1] if not math.isnan(v)]
        out.append(sum(part) / len(part) if part else math.nan)
    return out


def plot_measurements(
    entries: Sequence[Mapping[str, float]],
    tasks: Sequence[str],
    path: Path,
    *,
    window: int = 10,
    title: str = "",
) -> Path:
    """Write the four-panel figure of ``entries`` (metrics.jsonl lines) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (ax_g, ax_r), (ax_t, ax_gain) = axes
    for task in tasks:
        steps, g = series(entries, f"eval/grad_sq_norm/{task}")
        ax_g.plot(steps, [v if v > 0 else math.nan for v in g], marker="o", ms=3, label=task)
        s_train, r = series(entries, f"train/reward/{task}")
        ax_t.plot(s_train, _moving_mean(r, window), label=task)
        s_gain, gains = series(entries, f"train/gain/{task}")
        centres = [int(e["train/gain_center_step"]) for e in entries if f"train/gain/{task}" in e]
        ax_gain.plot(centres, gains, marker="o", ms=3, label=task)
        del s_gain
    # Ratio of each task's estimate to the smallest positive one at the same step.
    measured = [e for e in entries if any(f"eval/grad_sq_norm/{t}" in e for t in tasks)]
    for task in tasks:
        xs, ys = [], []
        for e in measured:
            values = [e.get(f"eval/grad_sq_norm/{t}", math.nan) for t in tasks]
            positive = [v for v in values if v > 0]
            mine = e.get(f"eval/grad_sq_norm/{task}", math.nan)
            if positive and mine > 0:
                xs.append(int(e["step"]))
                ys.append(mine / min(positive))
        ax_r.plot(xs, ys, marker="o", ms=3, label=task)
    ax_g.set(xlabel="step", ylabel="||grad J_task||^2 (cross-product)",
             title="per-task squared gradient norm")  # fmt: skip
    ax_r.set(xlabel="step", ylabel="ratio to smallest task",
             title="gradient-norm imbalance")  # fmt: skip
    ax_t.set(xlabel="step", ylabel=f"training reward (mean of {window} steps)",
             title="training reward")  # fmt: skip
    for ax in (ax_g, ax_r):  # log scale only where something positive was drawn
        if any(np.isfinite(line.get_ydata()).any() for line in ax.get_lines()):
            ax.set_yscale("log")
    ax_gain.axhline(0.0, color="grey", lw=0.5)
    ax_gain.set(xlabel="step (window centre)", ylabel="gain", title="learning gain")
    for ax in axes.flat:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
