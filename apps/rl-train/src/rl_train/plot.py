"""``rl-train plot``: learning curves with the mean and a confidence band across seeds.

Runs are grouped by what they compute: everything in their config.json except the seed and the
options that do not change the result (run name and root, resume, device, threads, logging:
:data:`NOT_COMPUTED`), so DriftQL and FQL runs on one env are two curves, labelled by the fields
that tell them apart (or, with ``--group-by parent``, by parent folder). A group holds one run
per seed: runs repeating a seed are not independent samples, and only one of them (the longest)
is drawn, with a warning. Each run's ``metrics.jsonl`` entries for the metric give a curve; a
group's curves are linearly interpolated onto a common grid (the union of their steps,
restricted to the range every run covers, so nothing is extrapolated, with a warning naming the
run that limits it; thinned to ``--points`` if longer) and summarised per grid point by:

- the mean across runs;
- a confidence band for that mean: by default the Student-t interval
  ``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation (ddof=1),
  or with ``--ci bootstrap`` the percentile bootstrap of the mean (runs resampled with
  replacement, a fixed seed so the figure is reproducible). A group of one run has no band.

A run that cannot be plotted (an empty ``metrics.jsonl``, no entry of the metric, an unreadable
config.json) is skipped with a warning; folders inside a run directory (the ``previous-<time>/``
history of a run that was started over) are not runs of their own.

The PNG (matplotlib's Agg canvas, no display needed) is written with the aggregate numbers
beside it as JSON (same name, ``.json``), with what was skipped or cut.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tyro
from rl_buffers import io
from rl_runtime.config import RunConfig
from rl_runtime.errors import UsageError

__all__ = [
    "NOT_COMPUTED",
    "Band",
    "Curve",
    "PlotConfig",
    "RunGroup",
    "aggregate",
    "draw",
    "find_runs",
    "group_runs",
    "read_curve",
    "run_fields",
    "run_plot",
    "student_t_quantile",
]

LOG = logging.getLogger("rlworks")

NOT_COMPUTED = frozenset({"seed", "name", "root", *RunConfig.RESUME_MAY_CHANGE})
"""``run.*`` options that do not change what a run computes (the seed is what a group averages
over): runs differing only in these are one group."""


@dataclasses.dataclass(frozen=True)
class PlotConfig:
    """rl-train plot RUN... : learning curves (mean and confidence band across seeds) as a PNG."""

    runs: Annotated[tyro.conf.Positional[tuple[Path, ...]], tyro.conf.arg(metavar="RUN...")]
    """Run directories, or folders searched for runs (any folder holding a metrics.jsonl)."""
    metric: str = "eval/return"
    """Metric to plot (a key of metrics.jsonl)."""
    out: Path = Path("curves.png")
    """PNG to write; the aggregate numbers go beside it with the suffix .json."""
    group_by: Literal["config", "parent"] = "config"
    """One curve per config (config.json without the seed and options that do not change
    results), or per parent folder of the run dirs."""
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
            raise UsageError("rl-train plot needs at least one run directory (or a folder of runs)")
        if not 0.0 < self.confidence < 1.0:
            raise UsageError(f"--confidence must be in (0, 1), got {self.confidence}")
        if self.points < 2:
            raise UsageError(f"--points must be >= 2, got {self.points}")
        if self.bootstrap_samples < 1:
            raise UsageError(f"--bootstrap-samples must be >= 1, got {self.bootstrap_samples}")


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
    notes: tuple[str, ...] = ()
    """What the figure leaves out of this group: runs cut to the common range, repeated seeds."""

    def to_json(self) -> dict[str, object]:
        """The band as JSON-compatible lists."""
        return {
            "label": self.label,
            "runs": [str(r) for r in self.runs],
            "steps": self.steps.tolist(),
            "mean": self.mean.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "notes": list(self.notes),
        }


@dataclasses.dataclass(frozen=True)
class RunGroup:
    """Runs drawn as one curve."""

    label: str
    """The legend's text: ``method · env``, then the config fields that tell this group from
    the others of that method and env; or the parent folder."""
    runs: tuple[Path, ...]
    seeds: tuple[int | None, ...]
    """Each run's seed from its config.json (None without one)."""


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Every run directory (a folder with metrics.jsonl) at or below ``paths``, sorted.

    A folder inside a run directory (``previous-<time>/``, the history of a run that was started
    over) is not a run of its own below a searched folder; named as a path, it is.

    Raises:
        UsageError: a path does not exist or holds no run.
    """
    found: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
        if (path / "metrics.jsonl").is_file():
            found.add(path)
            continue
        runs = {p.parent for p in path.rglob("metrics.jsonl")}
        # Not a run of its own: a folder inside a run directory (previous-<time>/, wandb/...).
        runs = {r for r in runs if not any(_is_run(path / a) for a in r.relative_to(path).parents)}
        if not runs:
            raise UsageError(f"{path}: no run below it (no metrics.jsonl)")
        found |= runs
    return sorted(found)


def _is_run(path: Path) -> bool:
    return (path / "metrics.jsonl").is_file() or (path / "config.json").is_file()


def read_curve(run_dir: Path, metric: str) -> Curve:
    """Read ``metric`` from ``run_dir/metrics.jsonl``.

    A last line that does not parse (a run killed mid-write) is ignored; non-finite values are
    dropped; if a step appears twice the later entry wins.

    Raises:
        ValueError: a line other than the last is not JSON, or the run never logged ``metric``.
    """
    path = run_dir / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path} is empty (the run logged nothing)")
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


def run_fields(info: Mapping[str, Any]) -> dict[str, str]:
    """What a run computes, from its parsed config.json: ``method``, ``env`` and every config
    field (dotted: ``agent.lr``, ``loop.batch_size``) except ``run.seed`` and the other
    :data:`NOT_COMPUTED` options; values as JSON text (comparable and hashable)."""
    flat: dict[str, Any] = {"method": info["method"]}
    _flatten(info["config"], "", flat)
    flat.setdefault("env", info.get("env"))
    return {
        key: json.dumps(value, sort_keys=True)
        for key, value in flat.items()
        if not (key.startswith("run.") and key.removeprefix("run.") in NOT_COMPUTED)
    }


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and (value or not prefix):
        for key, item in value.items():
            _flatten(item, f"{prefix}{key}.", out)
    else:
        out[prefix.removesuffix(".")] = value


def _read_info(run_dir: Path) -> dict[str, Any] | None:
    """The run's parsed config.json, or None without one.

    Raises:
        ValueError: it is not a JSON object with ``method`` and ``config`` entries.
    """
    path = run_dir / "config.json"
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if (
        not isinstance(info, dict)
        or "method" not in info
        or not isinstance(info.get("config"), dict)
    ):
        raise ValueError(f"{path}: expected an object with 'method' and 'config' entries")
    return info


def _shown(value: str) -> str:
    """A field's JSON text as a legend shows it: strings without their quotes."""
    parsed = json.loads(value)
    return parsed if isinstance(parsed, str) else value


def group_runs(
    runs: Mapping[Path, Mapping[str, Any] | None], group_by: Literal["config", "parent"]
) -> list[RunGroup]:
    """Group run directories (with their parsed config.json, or None) into curves.

    ``config``: runs with equal :func:`run_fields` are one group, labelled ``method · env`` and,
    where several groups share a method and env, the fields whose values tell them apart
    (``driftql · cube-single · agent.algo=fql``). Runs without a config.json, and every run
    with ``parent``, are grouped by their parent folder.

    Returns:
        The groups, sorted by label.
    """
    keyed: dict[tuple[str, ...], list[Path]] = {}
    fields: dict[tuple[str, ...], dict[str, str]] = {}
    for run_dir, info in runs.items():
        if group_by == "config" and info is not None:
            f = run_fields(info)
            key = ("config", *(f"{k}={v}" for k, v in sorted(f.items())))
            fields[key] = f
        else:
            key = ("parent", str(run_dir.parent))
        keyed.setdefault(key, []).append(run_dir)

    labels: dict[tuple[str, ...], str] = {}
    siblings: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for key in keyed:
        if key[0] == "parent":
            labels[key] = key[1]
        else:
            f = fields[key]
            siblings.setdefault((f["method"], f.get("env", "null")), []).append(key)
    for (method, env), keys in siblings.items():
        base = f"{_shown(method)} · {_shown(env)}"
        names = sorted(set().union(*(fields[k] for k in keys)))
        differ = [n for n in names if len({fields[k].get(n, "null") for k in keys}) > 1]
        for key in keys:
            shown = ", ".join(f"{n}={_shown(fields[key].get(n, 'null'))}" for n in differ)
            labels[key] = f"{base} · {shown}" if shown else base

    groups = []
    for key, dirs in keyed.items():
        dirs = sorted(dirs)
        seeds = tuple(_seed(runs[d]) for d in dirs)
        groups.append(RunGroup(labels[key], tuple(dirs), seeds))
    return sorted(groups, key=lambda g: g.label)


def _seed(info: Mapping[str, Any] | None) -> int | None:
    if info is None:
        return None
    run = info["config"].get("run")
    seed = info.get("seed", run.get("seed") if isinstance(run, dict) else None)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


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
    """``rl-train plot``: find, group, aggregate, draw; returns the bands.

    Raises:
        UsageError: a path holds no run, or no run found has the metric.
    """
    skipped: list[dict[str, str]] = []

    def skip(run_dir: Path, reason: str) -> None:
        LOG.warning("skipped %s: %s", run_dir, reason)
        skipped.append({"run": str(run_dir), "reason": reason})

    curves: dict[Path, Curve] = {}
    infos: dict[Path, dict[str, Any] | None] = {}
    for run_dir in find_runs(cfg.runs):
        try:
            infos[run_dir] = _read_info(run_dir)
            curves[run_dir] = read_curve(run_dir, cfg.metric)
        except ValueError as e:
            infos.pop(run_dir, None)
            skip(run_dir, str(e))
    if not curves:
        raise UsageError(
            f"nothing to plot: none of the {len(skipped)} runs found has {cfg.metric!r} "
            "(see the warnings above; --metric chooses another key)"
        )

    bands = []
    for group in group_runs(infos, cfg.group_by):
        kept, notes = _one_run_per_seed(group, curves)
        for note in notes:
            LOG.warning("%s", note)
        try:
            band = aggregate(
                [curves[r] for r in kept],
                label=group.label,
                ci=cfg.ci,
                confidence=cfg.confidence,
                bootstrap_samples=cfg.bootstrap_samples,
                max_points=cfg.points,
            )
        except ValueError as e:  # the runs' step ranges do not overlap
            for run_dir in kept:
                skip(run_dir, str(e))
            continue
        cut = _cut_note(group.label, [curves[r] for r in kept])
        if cut:
            LOG.warning("%s", cut)
            notes.append(cut)
        if len(band.runs) == 1:
            LOG.warning("%s: a single run, no confidence band", band.label)
        bands.append(dataclasses.replace(band, notes=tuple(notes)))
    if not bands:
        raise UsageError("nothing to plot: every group was skipped (see the warnings above)")
    ci_name = "t-interval" if cfg.ci == "t" else "bootstrap interval"
    title = cfg.title or f"{cfg.metric}: mean and {cfg.confidence:.0%} {ci_name} across seeds"
    draw(bands, metric=cfg.metric, out=cfg.out, title=title)
    summary = {
        "metric": cfg.metric,
        "ci": cfg.ci,
        "confidence": cfg.confidence,
        "groups": [b.to_json() for b in bands],
        "skipped": skipped,
    }
    with io.atomic_write(cfg.out.with_suffix(".json"), "w") as f:
        json.dump(summary, f)
    LOG.info(
        "wrote %s (%d curves from %d runs)", cfg.out, len(bands), sum(len(b.runs) for b in bands)
    )
    return bands


def _one_run_per_seed(
    group: RunGroup, curves: Mapping[Path, Curve]
) -> tuple[list[Path], list[str]]:
    """The group's runs with each seed once (the run reaching the furthest step, then the one
    with the most entries, then the last by path), and a note for each run left out. Runs of
    one seed are repeats, not samples: averaged as seeds they would narrow the band falsely."""
    by_seed: dict[int, list[Path]] = {}
    kept: list[Path] = []
    for run_dir, seed in zip(group.runs, group.seeds, strict=True):
        if seed is None:
            kept.append(run_dir)  # no config.json: the seed is unknown
        else:
            by_seed.setdefault(seed, []).append(run_dir)
    notes = []
    for seed, dirs in by_seed.items():
        best = max(dirs, key=lambda d: (int(curves[d].steps[-1]), len(curves[d].steps), str(d)))
        kept.append(best)
        notes += [
            f"{group.label}: {d} repeats seed {seed} of {best}; runs of one seed are not "
            f"independent samples, so only {best} is drawn"
            for d in dirs
            if d != best
        ]
    return sorted(kept), notes


def _cut_note(label: str, curves: Sequence[Curve]) -> str | None:
    """Says how the common range cuts the group's curves, or None if it cuts nothing."""
    start = max(int(c.steps[0]) for c in curves)
    end = min(int(c.steps[-1]) for c in curves)
    first = min(int(c.steps[0]) for c in curves)
    furthest = max(int(c.steps[-1]) for c in curves)
    if (first, furthest) == (start, end):
        return None
    limits = []
    if end < furthest:
        short = next(c for c in curves if int(c.steps[-1]) == end)
        limits.append(f"{short.run_dir} ends at step {end}, the longest at {furthest}")
    if start > first:
        late = next(c for c in curves if int(c.steps[0]) == start)
        limits.append(f"{late.run_dir} starts at step {start}")
    return (
        f"{label}: curves cut to steps {start}-{end}, the range every run covers "
        f"({'; '.join(limits)})"
    )
