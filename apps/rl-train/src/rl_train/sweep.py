"""``rl-train sweep``: one run per seed, in parallel local processes or as tasks on Ray.

::

    rl-train sweep METHOD --seeds 0 1 2 --workers 2 [--ray-address ADDR] -- [method options]

Every seed runs ``python -m rl_train METHOD [method options] --seed S --name NAME --quiet`` in
its own process, so runs share nothing (RNGs, torch threads, CUDA context). All seeds share the
run name (default: the sweep's start time), so their directories are
``<root>/<method>/<env>/<seed>-<name>`` and running the same sweep command again with ``--name``
resumes the seeds that did not finish. Each process's output goes to
``<log-dir>/<name>/seed-<S>.log``; a failure is reported with its seed, exit code and last lines.

With ``--ray-address`` the same commands run as Ray tasks (``pip install 'rl-train[ray]'``):
``local`` starts a Ray instance on this machine, ``auto`` joins the cluster this machine belongs
to, anything else (``HOST:PORT``, ``ray://HOST:10001``) is passed to ``ray.init``. Tasks run on
the cluster's workers in the directory the sweep was started from, so relative paths (``--root``,
``--log-dir``) must mean the same on every node: use a shared filesystem mounted at the same
path. Each task reserves ``--cpus-per-job`` CPUs and ``--gpus-per-job`` GPUs.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import tyro

from rl_train.method import UsageError
from rl_train.methods import load_method

__all__ = ["SeedJob", "SeedResult", "SweepConfig", "main", "run_jobs", "run_sweep"]

_RESERVED_FLAGS = ("--seed", "--name", "--resume")
_TAIL_LINES = 20
_NOT_STARTED = -1000
"""Return code of a job whose process could not be started, or whose Ray task was lost."""


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """rl-train sweep METHOD --seeds ... -- [method options]: one run per seed, in parallel."""

    method: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="METHOD")]
    """The method subcommand to run."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds, one run each."""
    workers: int = 2
    """Runs at the same time (local processes; with --ray-address local, the CPUs Ray gets)."""
    name: str = ""
    """Run name shared by every seed; empty means the start time. Reuse a name to resume."""
    ray_address: str | None = None
    """Run the seeds as Ray tasks: local, auto, HOST:PORT or ray://HOST:PORT."""
    cpus_per_job: float = 1.0
    """CPUs each Ray task reserves."""
    gpus_per_job: float = 0.0
    """GPUs each Ray task reserves."""
    log_dir: Path = Path("runs/sweeps")
    """Each seed's output goes to <log-dir>/<name>/seed-<seed>.log."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("--seeds needs at least one seed")
        duplicates = [s for s, k in collections.Counter(self.seeds).items() if k > 1]
        if duplicates:
            raise ValueError(f"--seeds has duplicates: {duplicates}")
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")


@dataclasses.dataclass(frozen=True)
class SeedJob:
    """One process of a sweep."""

    seed: int
    python_args: tuple[str, ...]
    """Arguments of the Python interpreter that runs it (``-m rl_train METHOD ...``)."""
    log_path: Path
    """Where its stdout and stderr go."""
    cwd: Path
    """Working directory."""
    run_dir: Path | None = None
    """The run directory it will write (for the report)."""


@dataclasses.dataclass(frozen=True)
class SeedResult:
    """How a job ended."""

    seed: int
    returncode: int
    log_path: Path
    tail: str
    """Last lines of its output (filled in for failures)."""
    run_dir: Path | None = None

    @property
    def ok(self) -> bool:
        """Exit code 0."""
        return self.returncode == 0


def _execute(job: SeedJob) -> SeedResult:
    """Run one job to completion (in a thread locally, in a worker process on Ray) with the
    interpreter of the process that executes it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A log of a process's output, appended as it runs (not a state file: no atomic rename).
        with job.log_path.open("ab") as log:
            proc = subprocess.run(
                [sys.executable, *job.python_args],
                cwd=job.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                check=False,
            )
    except OSError as e:  # e.g. the working directory does not exist on this Ray node
        return SeedResult(
            job.seed, _NOT_STARTED, job.log_path, f"could not start: {e}", job.run_dir
        )
    tail = ""
    if proc.returncode != 0:
        lines = job.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        tail = "\n".join(lines[-_TAIL_LINES:])
    return SeedResult(job.seed, proc.returncode, job.log_path, tail, job.run_dir)


def run_jobs(
    jobs: Sequence[SeedJob],
    *,
    workers: int,
    ray_address: str | None = None,
    cpus_per_job: float = 1.0,
    gpus_per_job: float = 0.0,
) -> list[SeedResult]:
    """Run ``jobs`` (at most ``workers`` at once locally, or as Ray tasks); results in job order."""
    if ray_address is None:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(_execute, jobs))
    return _run_on_ray(
        jobs,
        address=ray_address,
        workers=workers,
        cpus_per_job=cpus_per_job,
        gpus_per_job=gpus_per_job,
    )


def _run_on_ray(
    jobs: Sequence[SeedJob],
    *,
    address: str,
    workers: int,
    cpus_per_job: float,
    gpus_per_job: float,
) -> list[SeedResult]:
    if address == "local":
        # A local instance should run this interpreter's environment. Under `uv run`, Ray would
        # otherwise start its workers with `uv run` in a copy of the working directory: another
        # environment (an empty one with --no-sync). The switch is read when ray is imported.
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        import ray  # optional extra
    except ImportError as e:
        raise UsageError("--ray-address needs Ray: pip install 'rl-train[ray]'") from e
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=max(1, round(workers * cpus_per_job)), include_dashboard=False)
        else:
            ray.init(address=address)
        started = True
    try:
        task: Any = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job)(_execute)
        refs = [task.remote(job) for job in jobs]
        results = []
        for job, ref in zip(jobs, refs, strict=True):
            try:
                results.append(ray.get(ref))
            except Exception as e:  # a lost worker or node fails this seed, not the sweep
                tail = f"Ray task failed: {type(e).__name__}: {e}"
                results.append(SeedResult(job.seed, _NOT_STARTED, job.log_path, tail, job.run_dir))
        return results
    finally:
        if started:
            ray.shutdown()


def run_sweep(cfg: SweepConfig, method_args: Sequence[str]) -> list[SeedResult]:
    """Check the method options once here, then run every seed; returns the results.

    Raises:
        UsageError: unknown method, or ``method_args`` sets an option the sweep sets per seed.
    """
    method = load_method(cfg.method)
    for arg in method_args:
        if arg.split("=", 1)[0] in _RESERVED_FLAGS:
            raise UsageError(f"sweep sets {arg.split('=', 1)[0]} itself; remove it after --")
    from rl_runtime.run import run_dir_for  # imports torch

    name = cfg.name or dt.datetime.now().strftime("sweep-%Y%m%d-%H%M%S")
    jobs = []
    for seed in cfg.seeds:
        args = [*method_args, "--seed", str(seed), "--name", name, "--quiet"]
        run_cfg = method.parse(args)  # fails here, once, on a bad option
        jobs.append(
            SeedJob(
                seed=seed,
                python_args=("-m", "rl_train", cfg.method, *args),
                log_path=(cfg.log_dir / name / f"seed-{seed}.log").absolute(),
                cwd=Path.cwd(),
                run_dir=run_dir_for(cfg.method, run_cfg, name),
            )
        )
    where = f"Ray ({cfg.ray_address})" if cfg.ray_address else f"{cfg.workers} local processes"
    print(f"rl-train sweep: {cfg.method}, seeds {list(cfg.seeds)}, name {name}, on {where}")
    return run_jobs(
        jobs,
        workers=cfg.workers,
        ray_address=cfg.ray_address,
        cpus_per_job=cfg.cpus_per_job,
        gpus_per_job=cfg.gpus_per_job,
    )


def report(results: Sequence[SeedResult]) -> str:
    """A summary: one line per seed, then the tail of each failure's output."""
    lines = []
    for r in results:
        status = "ok" if r.ok else f"FAILED (exit code {r.returncode})"
        run = f"  run {r.run_dir}" if r.run_dir is not None else ""
        lines.append(f"  seed {r.seed}: {status}{run}  log {r.log_path}")
    for r in results:
        if not r.ok:
            lines.append(f"--- seed {r.seed} failed with exit code {r.returncode}; last lines:")
            lines.append(r.tail)
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """``rl-train sweep`` entry; returns 0 if every seed succeeded, else 1."""
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    cfg = tyro.cli(SweepConfig, args=argv[:split], prog="rl-train sweep")
    results = run_sweep(cfg, argv[split + 1 :])
    failed = [r.seed for r in results if not r.ok]
    print(f"rl-train sweep: {len(results) - len(failed)}/{len(results)} seeds succeeded")
    print(report(results))
    return 1 if failed else 0
