"""DriftQL vs FQL vs BC offline: the same datasets, several seeds, clean and degraded; JSON + table.

Every (dataset, degradation, algorithm, seed) cell is one run of the project's trainer
(``rl_train.methods.driftql.train``, in this process) with the task's published
hyperparameters (``driftql.task_preset``; ``--hidden`` overrides the network widths). Each run's
``metrics.jsonl`` gives its evaluation curve: ``eval/success`` for an OGBench ``.npz`` file,
``eval/normalized_score`` for a Minari dataset with reference scores (``eval/return`` without).
Per cell the script reports mean ± std across seeds (ddof=0) of the final evaluation and of the
mean of the last three evaluations (how the paper reports OGBench), and checks the paper's
ordering: DriftQL >= FQL > BC in every column, and DriftQL's drop from clean to degraded data
smaller than FQL's. The checks are reported as booleans, whatever the numbers say.

Degradation: ``--degrade P...`` trains on a copy with a fraction P of the actions replaced
(the trainer's ``--degrade-p``, uniform in [-1, 1]); ``--degraded-datasets`` adds files that were
degraded when collected (e.g. ``rl-train driftql-data --p-random-action 0.3``), one per
``--datasets`` entry, compared against that entry's clean run. A dataset is ``[TASK=]PATH_OR_ID``
(the task names the published settings and, for OGBench, the environment; by default it is read
from the dataset's name, and a dataset with no published entry, such as a local Reacher one, gets
the method's default settings).

Runs are named ``<algo>-p<P>-<steps>st-h<widths>`` under ``--root``, so re-running the same command
reuses finished runs and resumes interrupted ones (the trainer's named-run rule).

    uv run --no-sync python benchmarks/bench_driftql_offline.py \\
        --datasets data/cube-single-play.npz \\
        --degraded-datasets data/cube-single-play-p03.npz \\
        --degrade 0 0.3 --seeds 0 1 2 --steps 1000000 --eval-every 100000 --eval-episodes 50 \\
        --device cuda                                  # the paper's OGBench schedule
    uv run --no-sync python benchmarks/bench_driftql_offline.py --steps 20 --eval-every 20 \\
        --eval-episodes 1 --hidden 32 32 --seeds 0 --root /tmp/bdo --out /tmp/bdo.json  # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from driftql.config import TASK_PRESETS, task_preset
from rl_buffers.io import atomic_write
from rl_runtime.config import RunConfig
from rl_runtime.run import resolve_device
from rl_train.methods.driftql import METHOD, DriftQLTrainConfig
from rl_train.plot import read_curve

RESULTS = Path(__file__).parent / "results" / "driftql_offline.json"
DEFAULT_DATASET = "data/cube-single-play.npz"  # what the README's driftql-data command writes
ALGOS = ("driftql", "fql", "bc")
LAST_K = 3  # the paper reports OGBench as the mean of the last three evaluations


# ------------------------------------------------------------------- helpers shared by benchmarks


def machine_info(device: str, threads: int) -> dict[str, Any]:
    """Device, threads, versions and load: the context a learning result is read in."""
    dev = resolve_device(device)
    return {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def bench_run_config(args: argparse.Namespace, seed: int, name: str) -> RunConfig:
    """One benchmark run's options: ``args.steps`` long, evaluated every ``args.eval_every``
    steps on ``args.eval_episodes`` episodes, checkpointed at the end, quiet, no TensorBoard,
    under ``args.root`` with a fixed ``name`` (so re-running reuses or resumes it)."""
    return RunConfig(
        seed=seed,
        total_steps=args.steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        log_every=min(1_000, args.eval_every),
        checkpoint_every=args.steps,
        root=args.root,
        name=name,
        device=args.device,
        torch_threads=args.threads,
        tensorboard=False,
        quiet=True,
    )


def curve_of(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of ``metric`` from the run's metrics.jsonl."""
    curve = read_curve(run_dir, metric)
    return list(zip(curve.steps.tolist(), curve.values.tolist(), strict=True))


def final_and_last_k(curve: Sequence[tuple[int, float]], k: int = LAST_K) -> tuple[float, float]:
    """The last evaluation, and the mean of the last ``k`` (fewer if the curve is shorter)."""
    values = [v for _, v in curve]
    return values[-1], float(np.mean(values[-k:]))


def mean_std(values: Sequence[float]) -> dict[str, float | int]:
    """Mean and standard deviation (ddof=0, so one seed gives std 0) across seeds."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": len(values)}


def markdown_table(corner: str, rows: Sequence[str], cols: Sequence[str], cells: Any) -> str:
    """A markdown table; ``cells(row, col)`` gives each entry's text."""
    lines = [
        "| " + " | ".join([corner, *cols]) + " |",
        "|" + "---|" * (len(cols) + 1),
    ]
    lines += ["| " + " | ".join([row, *(cells(row, c) for c in cols)]) + " |" for row in rows]
    return "\n".join(lines)


def fmt(stat: dict[str, float | int] | None, digits: int = 3) -> str:
    """``mean ± std`` or an em dash."""
    if stat is None:
        return "—"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


# ------------------------------------------------------------------------------- this benchmark


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One ``[TASK=]PATH_OR_ID`` argument."""

    task: str
    """Empty: the trainer reads the task from the dataset's name."""
    dataset: str

    @property
    def task_name(self) -> str:
        """The task whose settings the trainer uses (``DriftQLTrainConfig.task_name``)."""
        return DriftQLTrainConfig(task=self.task, dataset=self.dataset).task_name

    @property
    def name(self) -> str:
        """File stem of an OGBench file, else the Minari id."""
        return Path(self.dataset).stem if self.dataset.endswith(".npz") else self.dataset


def parse_dataset(spec: str) -> DatasetSpec:
    """``cube-single=data/x.npz`` -> (cube-single, data/x.npz); a bare path gets the default
    task. Only a known task name before the first ``=`` is read as a task."""
    head, sep, tail = spec.partition("=")
    if sep and "/" not in head:
        if head not in TASK_PRESETS:
            raise argparse.ArgumentTypeError(
                f"{spec!r}: unknown task {head!r}; tasks: {', '.join(TASK_PRESETS)}"
            )
        task, dataset = head, tail
    else:
        task, dataset = "", spec
    if dataset.endswith(".npz") and not Path(dataset).is_file():
        raise argparse.ArgumentTypeError(f"{spec!r}: no such file {dataset}")
    return DatasetSpec(task, dataset)


@dataclasses.dataclass(frozen=True)
class Condition:
    """One column: a dataset under one degradation."""

    source: DatasetSpec
    """The clean dataset the column is compared against."""
    data: DatasetSpec
    """What is trained on (the clean file, or its pre-degraded copy)."""
    degrade_p: float
    """The trainer's --degrade-p."""
    label: str
    """``p=0.3`` or ``file:<stem>``."""

    @property
    def column(self) -> str:
        return f"{self.source.name} {self.label}"

    @property
    def clean(self) -> bool:
        return self.data == self.source and self.degrade_p == 0.0


def conditions(
    datasets: Sequence[DatasetSpec], degraded: Sequence[DatasetSpec], levels: Sequence[float]
) -> list[Condition]:
    if degraded and len(degraded) != len(datasets):
        raise SystemExit(
            f"--degraded-datasets: one per --datasets entry expected, got {len(degraded)} for "
            f"{len(datasets)}"
        )
    out: list[Condition] = []
    for i, ds in enumerate(datasets):
        out += [Condition(ds, ds, p, f"p={p:g}") for p in levels]
        if degraded:
            out.append(Condition(ds, degraded[i], 0.0, f"file:{degraded[i].name}"))
    return out


def train_one(cond: Condition, algo: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One training run; its curve and summary."""
    hidden = tuple(args.hidden) if args.hidden else None
    widths = "x".join(map(str, hidden)) if hidden else "paper"
    cfg = DriftQLTrainConfig(
        task=cond.data.task,
        dataset=cond.data.dataset,
        algo=algo,  # type: ignore[arg-type]  # checked by argparse choices
        degrade_p=cond.degrade_p,
        run=bench_run_config(args, seed, f"{algo}-p{cond.degrade_p:g}-{args.steps}st-h{widths}"),
    )
    # The task's published settings, with the widths replaced when --hidden is given.
    agent = task_preset(cfg.task_name, cfg.algo)
    if hidden:
        agent = dataclasses.replace(
            agent,
            actor=dataclasses.replace(agent.actor, hidden_sizes=hidden),
            critic=dataclasses.replace(agent.critic, hidden_sizes=hidden),
        )
    cfg = dataclasses.replace(cfg, agent=agent)
    start = time.perf_counter()
    run_dir = METHOD.train(cfg)
    seconds = time.perf_counter() - start
    if cfg.is_ogbench:
        metric = "eval/success"
    else:
        keys = (run_dir / "metrics.jsonl").read_text(encoding="utf-8")
        metric = "eval/normalized_score" if "eval/normalized_score" in keys else "eval/return"
    curve = curve_of(run_dir, metric)
    final, last_k = final_and_last_k(curve)
    print(
        f"{cond.column:<40} {algo:<8} seed {seed}: final {final:.3f}, last-{LAST_K} {last_k:.3f} "
        f"({seconds:.0f}s, {run_dir})",
        flush=True,
    )
    return {
        "column": cond.column,
        "dataset": cond.data.dataset,
        "task": cond.data.task_name,
        "degrade_p": cond.degrade_p,
        "algo": algo,
        "seed": seed,
        "metric": metric,
        "run_dir": str(run_dir),
        "curve": curve,
        "final": final,
        f"last{LAST_K}": last_k,
        "seconds": round(seconds, 1),
    }


def ordering_checks(
    cells: dict[str, dict[str, dict[str, Any]]], conds: Sequence[Condition], algos: Sequence[str]
) -> dict[str, Any]:
    """The paper's claims, per column and statistic, as booleans (None: an algo was not run)."""
    stats = ("final", f"last{LAST_K}")
    out: dict[str, Any] = {"ordering": {}, "degradation_drop": {}}

    def mean(col: str, algo: str, stat: str) -> float | None:
        cell = cells.get(col, {}).get(algo)
        return None if cell is None else float(cell[stat]["mean"])

    for stat in stats:
        order: dict[str, dict[str, bool | None]] = {}
        for cond in conds:
            d, f, b = (mean(cond.column, a, stat) for a in ALGOS)
            order[cond.column] = {
                "driftql>=fql": None if d is None or f is None else d >= f,
                "fql>bc": None if f is None or b is None else f > b,
            }
        out["ordering"][stat] = order
        drops: dict[str, dict[str, Any]] = {}
        for cond in conds:
            if cond.clean:
                continue
            clean = next((c for c in conds if c.clean and c.source == cond.source), None)
            if clean is None or not {"driftql", "fql"} <= set(algos):
                continue
            dq_clean, fq_clean = (
                mean(clean.column, "driftql", stat),
                mean(clean.column, "fql", stat),
            )
            dq_deg, fq_deg = mean(cond.column, "driftql", stat), mean(cond.column, "fql", stat)
            assert None not in (dq_clean, fq_clean, dq_deg, fq_deg)
            dq_drop = dq_clean - dq_deg  # type: ignore[operator]
            fq_drop = fq_clean - fq_deg  # type: ignore[operator]
            drops[cond.column] = {
                "driftql_drop": dq_drop,
                "fql_drop": fq_drop,
                "driftql_drop<fql_drop": dq_drop < fq_drop,
            }
        out["degradation_drop"][stat] = drops
    flat = [v for s in out["ordering"].values() for c in s.values() for v in c.values()]
    flat += [
        c["driftql_drop<fql_drop"] for s in out["degradation_drop"].values() for c in s.values()
    ]
    known = [v for v in flat if v is not None]
    out["all_hold"] = bool(known) and all(known)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        type=parse_dataset,
        default=None,
        help="[TASK=]PATH_OR_ID: OGBench .npz files or local Minari ids; the task names the "
        f"published settings, by default read from the dataset's name (default {DEFAULT_DATASET})",
    )
    parser.add_argument(
        "--degraded-datasets",
        nargs="*",
        type=parse_dataset,
        default=[],
        help="pre-degraded copies, one per --datasets entry (trained at --degrade-p 0)",
    )
    parser.add_argument("--degrade", nargs="+", type=float, default=[0.0, 0.3])
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--eval-every", type=int, default=100_000)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument(
        "--hidden", nargs="+", type=int, default=None, help="network widths (default: paper's)"
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path("runs/bench_driftql_offline"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.datasets is None:
        try:
            args.datasets = [parse_dataset(DEFAULT_DATASET)]
        except argparse.ArgumentTypeError as e:
            parser.error(f"{e}; make it with `rl-train driftql-data` or pass --datasets")
    for p in args.degrade:
        if not 0.0 <= p <= 1.0:
            parser.error(f"--degrade: each level must be in [0, 1], got {p}")
    if args.eval_episodes < 1:
        parser.error(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    torch.set_num_threads(args.threads)

    results: dict[str, Any] = {
        "benchmark": "driftql_offline",
        **machine_info(args.device, args.threads),
        "budget": {
            "gradient_steps": args.steps,
            "eval_every": args.eval_every,
            "eval_episodes": args.eval_episodes,
        },
        "hidden_sizes": args.hidden or "task preset (paper)",
        "seeds": args.seeds,
        "algos": args.algos,
        "std": "across seeds, ddof=0",
        "runs": [],
    }
    conds = conditions(args.datasets, args.degraded_datasets, args.degrade)
    results["columns"] = [
        {
            "column": c.column,
            "dataset": c.data.dataset,
            "task": c.data.task_name,
            "degrade_p": c.degrade_p,
        }
        for c in conds
    ]
    for cond in conds:
        for algo in args.algos:
            for seed in args.seeds:
                results["runs"].append(train_one(cond, algo, seed, args))

    stats = ("final", f"last{LAST_K}")
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for cond in conds:
        for algo in args.algos:
            runs = [r for r in results["runs"] if r["column"] == cond.column and r["algo"] == algo]
            cells.setdefault(cond.column, {})[algo] = {
                "metric": runs[0]["metric"],
                **{s: mean_std([r[s] for r in runs]) for s in stats},
            }
    results["cells"] = cells
    results["checks"] = ordering_checks(cells, conds, args.algos)

    with atomic_write(args.out, "w") as f:
        json.dump(results, f, indent=2)
    cols = [c.column for c in conds]
    for stat in stats:
        print(f"\n{stat} evaluation, mean ± std over {len(args.seeds)} seed(s):\n")
        print(
            markdown_table("algo", args.algos, cols, lambda a, c, stat=stat: fmt(cells[c][a][stat]))
        )
    print("\nchecks:", json.dumps(results["checks"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
