"""``rl-train plot``: learning curves with the mean and a confidence band across seeds.

Runs are grouped by (method, env) from their config.json (or by parent folder). Each run's
``metrics.jsonl`` entries for the metric give a curve; a group's curves are linearly
interpolated onto a common grid (the union of their steps, restricted to the range every run
covers, so nothing is extrapolated; thinned to ``--points`` if longer) and summarised per grid
point by:

- the mean across runs;
- a confidence band for that mean: by default the Student-t interval
  ``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation (ddof=1),
  or with ``--ci bootstrap`` the percentile bootstrap of the mean (runs resampled with
  replacement, a fixed seed so the figure is reproducible). A group of one run has no band.

The PNG (matplotlib's Agg canvas, no display needed) is written with the aggregate numbers
beside it as JSON (same name, ``.json``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro
from rl_buffers import io

__all__ = [
    "Band",
    "Curve",
    "PlotConfig",
    "aggregate",
    "draw",
    "find_runs",
    "group_label",
    "read_curve",
    "run_plot",
    "student_t_quantile",
]

LOG = logging.getLogger("rlworks")


@dataclasses.dataclass(frozen=True)
class PlotConfig:
    """rl-train plot RUN... : learning curves (mean and confidence band across seeds) as a PNG."""

    runs: Annotated[tyro.conf.Positional[tuple[Path, ...]], tyro.conf.arg(metavar="RUN...")]
    """Run directories, or folders searched for runs (any folder holding a metrics.jsonl)."""
    metric: str = "eval/return"
    """Metric to plot (a key of metrics.jsonl)."""
    out: Path = Path("curves.png")
    """PNG to write; the aggregate numbers go beside it with the suffix .json."""
    group_by: Literal["method-env", "parent"] = "method-env"
    """One curve per (method, env) from config.json, or per parent folder of the run dirs."""
    ci: Literal["t", "bootstrap"] = "t"
    """Confidence band of the mean: Student-t interval or percentile bootstrap."""
    confidence: float = 0.95
    """Confidence level of the band."""
    bootstrap_samples: int = 10_000
    """Bootstrap resamples (with --ci bootstrap)."""
    points: int = 500
    """At most this many grid points per curve."""
    title: str = ""
    """Figure title; empty means one naming the metric and the band."""

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("rl-train plot needs at least one run directory (or a folder of runs)")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"--confidence must be in (0, 1), got {self.confidence}")
        if self.points < 2:
            raise ValueError(f"--points must be >= 2, got {self.points}")
        if self.bootstrap_samples < 1:
            raise ValueError(f"--bootstrap-samples must be >= 1, got {self.bootstrap_samples}")


@dataclasses.dataclass(frozen=True)
class Curve:
    """One run's values of a metric."""

    run_dir: Path
    steps: np.ndarray
    """(T,) int64, strictly increasing."""
    values: np.ndarray
    """(T,) float64, finite."""


@dataclasses.dataclass(frozen=True)
class Band:
    """Aggregate of a group of curves on a common grid of G steps."""

    label: str
    runs: tuple[Path, ...]
    steps: np.ndarray
    """(G,) float64 grid."""
    mean: np.ndarray
    """(G,) mean across runs."""
    low: np.ndarray
    """(G,) lower end of the confidence band (= mean for a single run)."""
    high: np.ndarray
    """(G,) upper end of the confidence band."""

    def to_json(self) -> dict[str, object]:
        """The band as JSON-compatible lists."""
        return {
            "label": self.label,
            "runs": [str(r) for r in self.runs],
            "steps": self.steps.tolist(),
            "mean": self.mean.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
        }


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Every run directory (a folder with metrics.jsonl) at or below ``paths``, sorted.

    Raises:
        FileNotFoundError: a path does not exist or holds no run.
    """
    found: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        if (path / "metrics.jsonl").is_file():
            found.add(path)
            continue
        runs = {p.parent for p in path.rglob("metrics.jsonl")}
        if not runs:
            raise FileNotFoundError(f"{path}: no run below it (no metrics.jsonl)")
        found |= runs
    return sorted(found)


def read_curve(run_dir: Path, metric: str) -> Curve:
    """Read ``metric`` from ``run_dir/metrics.jsonl``.

    A last line that does not parse (a run killed mid-write) is ignored; non-finite values are
    dropped; if a step appears twice the later entry wins.

    Raises:
        ValueError: a line other than the last is not JSON, or the run never logged ``metric``.
    """
    path = run_dir / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    by_step: dict[int, float] = {}
    seen_keys: set[str] = set()
    for i, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: not JSON ({e})") from e
        seen_keys.update(entry)
        if metric in entry and math.isfinite(entry[metric]):
            by_step[int(entry["step"])] = float(entry[metric])
    if not by_step:
        known = ", ".join(sorted(seen_keys - {"step"})) or "none"
        raise ValueError(f"{path}: no finite {metric!r} entries (metrics logged: {known})")
    steps = np.array(sorted(by_step), dtype=np.int64)
    return Curve(run_dir, steps, np.array([by_step[s] for s in steps.tolist()], dtype=np.float64))


def group_label(run_dir: Path, group_by: Literal["method-env", "parent"]) -> str:
    """The group a run belongs to: ``"<method> · <env>"`` from config.json, or its parent."""
    config = run_dir / "config.json"
    if group_by == "method-env" and config.is_file():
        info = json.loads(config.read_text(encoding="utf-8"))
        return f"{info['method']} · {info['env']}"
    return str(run_dir.parent)


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (p in (0.5, 1)) of Student's t with ``df`` degrees of freedom.

    Solves ``A(t | df) = 2p - 1`` by bisection, with ``A`` the exact finite-sum two-sided CDF
    for integer ``df`` (Abramowitz & Stegun 26.7.3-4).
    """
    if not 0.5 < p < 1.0:
        raise ValueError(f"p must be in (0.5, 1), got {p}")
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    target = 2.0 * p - 1.0
    hi = 1.0
    while _t_two_sided(hi, df) < target:
        hi *= 2.0
    lo = 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_two_sided(mid, df) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for T ~ Student-t(df)."""
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2 == 1:
        total, term = 0.0, c
        for k in range(1, (df - 1) // 2 + 1):  # cos + 2/3 cos^3 + (2·4)/(3·5) cos^5 + ...
            total += term
            term *= (2 * k) / (2 * k + 1) * c * c
        return (2.0 / math.pi) * (theta + s * total)
    total, term = 0.0, 1.0
    for k in range(1, df // 2 + 1):  # 1 + 1/2 cos^2 + (1·3)/(2·4) cos^4 + ...
        total += term
        term *= (2 * k - 1) / (2 * k) * c * c
    return s * total


def aggregate(
    curves: Sequence[Curve],
    *,
    label: str = "",
    ci: Literal["t", "bootstrap"] = "t",
    confidence: float = 0.95,
    bootstrap_samples: int = 10_000,
    max_points: int = 500,
    seed: int = 0,
) -> Band:
    """Mean and confidence band of ``curves`` on their common grid (see the module doc).

    Raises:
        ValueError: no curves, or their step ranges do not overlap.
    """
    if not curves:
        raise ValueError("aggregate needs at least one curve")
    start = max(int(c.steps[0]) for c in curves)
    end = min(int(c.steps[-1]) for c in curves)
    if start > end:
        raise ValueError(f"group {label!r}: the runs' step ranges do not overlap")
    grid = np.unique(np.concatenate([c.steps for c in curves])).astype(np.float64)
    grid = grid[(grid >= start) & (grid <= end)]
    if len(grid) > max_points:
        grid = np.linspace(start, end, max_points)
    values = np.stack([np.interp(grid, c.steps, c.values) for c in curves])  # (n, G)
    n = values.shape[0]
    mean = values.mean(axis=0)
    if n == 1:
        low, high = mean.copy(), mean.copy()
    elif ci == "t":
        half = student_t_quantile((1 + confidence) / 2, n - 1) * values.std(axis=0, ddof=1)
        half /= math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=bootstrap_samples)  # (B, n)
        boot = counts @ values / n  # (B, G): the mean of each resample
        low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return Band(label, tuple(c.run_dir for c in curves), grid, mean, low, high)


def draw(bands: Sequence[Band], *, metric: str, out: Path, title: str) -> None:
    """Draw ``bands`` (mean line, shaded band) into the PNG ``out`` (written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # slow import
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for band in bands:
        (line,) = ax.plot(band.steps, band.mean, label=f"{band.label} (n={len(band.runs)})")
        ax.fill_between(band.steps, band.low, band.high, color=line.get_color(), alpha=0.25)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    with io.atomic_write(out, "wb") as f:
        fig.savefig(f, format="png", dpi=120)


def run_plot(cfg: PlotConfig) -> list[Band]:
    """``rl-train plot``: find, group, aggregate, draw; returns the bands."""
    groups: dict[str, list[Curve]] = {}
    for run_dir in find_runs(cfg.runs):
        groups.setdefault(group_label(run_dir, cfg.group_by), []).append(
            read_curve(run_dir, cfg.metric)
        )
    bands = [
        aggregate(
            curves,
            label=label,
            ci=cfg.ci,
            confidence=cfg.confidence,
            bootstrap_samples=cfg.bootstrap_samples,
            max_points=cfg.points,
        )
        for label, curves in sorted(groups.items())
    ]
    for band in bands:
        if len(band.runs) == 1:
            LOG.warning("%s: a single run, no confidence band", band.label)
    ci_name = "t-interval" if cfg.ci == "t" else "bootstrap interval"
    title = cfg.title or f"{cfg.metric}: mean and {cfg.confidence:.0%} {ci_name} across seeds"
    draw(bands, metric=cfg.metric, out=cfg.out, title=title)
    summary = {
        "metric": cfg.metric,
        "ci": cfg.ci,
        "confidence": cfg.confidence,
        "groups": [b.to_json() for b in bands],
    }
    with io.atomic_write(cfg.out.with_suffix(".json"), "w") as f:
        json.dump(summary, f)
    LOG.info(
        "wrote %s (%d curves from %d runs)", cfg.out, len(bands), sum(len(b.runs) for b in bands)
    )
    return bands
