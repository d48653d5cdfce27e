"""rl-train sweep: local processes, failure reports, and tasks on a local Ray instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rl_buffers import io
from rl_train.method import UsageError
from rl_train.sweep import SeedJob, SweepConfig, main, report, run_jobs, run_sweep


def _job(tmp_path: Path, seed: int, code: str) -> SeedJob:
    return SeedJob(
        seed=seed,
        python_args=("-c", code),
        log_path=tmp_path / "logs" / f"seed-{seed}.log",
        cwd=tmp_path,
    )


def _python_jobs(tmp_path: Path) -> list[SeedJob]:
    return [
        _job(tmp_path, 0, "print('fine')"),
        _job(tmp_path, 1, "import sys; print('boom at step 7'); sys.exit(3)"),
        _job(tmp_path, 2, "open('made-by-2', 'w').close()"),
    ]


def _check_python_jobs(results, tmp_path: Path) -> None:
    assert [(r.seed, r.returncode) for r in results] == [(0, 0), (1, 3), (2, 0)]
    assert results[1].tail == "boom at step 7"
    assert (tmp_path / "made-by-2").exists()  # jobs run in the sweep's directory
    text = report(results)
    assert "seed 1: FAILED (exit code 3)" in text
    assert "seed 1 failed with exit code 3; last lines:\nboom at step 7" in text
    assert "seed 0: ok" in text
    assert (tmp_path / "logs" / "seed-0.log").read_text() == "fine\n"


def test_local_jobs_report_each_failure_with_seed_and_exit_code(tmp_path):
    _check_python_jobs(run_jobs(_python_jobs(tmp_path), workers=2), tmp_path)


def test_sweep_validates_before_launching(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="sweep sets --seed itself"):
        run_sweep(SweepConfig("tiny-q", seeds=(0,)), ["--seed", "3"])
    with pytest.raises(UsageError, match="unknown method 'nope'"):
        run_sweep(SweepConfig("nope", seeds=(0,)), [])
    with pytest.raises(SystemExit):
        run_sweep(SweepConfig("tiny-q", seeds=(0,)), ["--agent.no-such-field", "1"])
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="--seeds has duplicates: \\[1\\]"):
        SweepConfig("tiny-q", seeds=(1, 1))


def _sweep_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "tiny-q", "--seeds", "0", "1", "--name", "s", "--log-dir", str(tmp_path / "logs"), *extra,
        "--", "--root", str(tmp_path / "runs"), "--total-steps", "60", "--eval-every", "30",
        "--eval-episodes", "2", "--log-every", "30", "--checkpoint-every", "30",
        "--loop.random-steps", "20", "--loop.learning-starts", "20", "--no-tensorboard",
        "--torch-threads", "1",
    ]  # fmt: skip


def _check_sweep_runs(tmp_path: Path, seeds=(0, 1)) -> None:
    for seed in seeds:
        run = tmp_path / "runs" / "tiny-q" / "rltrain_Chain-v0" / f"{seed}-s"
        assert json.loads((run / "config.json").read_text())["seed"] == seed
        assert io.load(run / "checkpoints" / "ckpt-000000000060.pt")["step"] == 60
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()]
        assert steps == [0, 30, 30, 60, 60]


def test_local_sweep_runs_each_seed_in_its_own_directory_and_reports_failures(tmp_path, capsys):
    # Seed 1's run directory holds a foreign file, so that run (and only it) fails at start.
    blocked = tmp_path / "runs" / "tiny-q" / "rltrain_Chain-v0" / "1-s"
    blocked.mkdir(parents=True)
    (blocked / "notes.txt").write_text("not a run")

    assert main(_sweep_args(tmp_path, "--workers", "2")) == 1

    _check_sweep_runs(tmp_path, seeds=(0,))
    out = capsys.readouterr().out
    assert "1/2 seeds succeeded" in out
    assert "seed 0: ok" in out
    # A usage error (exit 2, one line), not a traceback.
    assert "seed 1: FAILED (exit code 2)" in out
    assert "seed 1 failed with exit code 2; last lines:" in out
    assert "exists, is not empty and has no config.json" in out
    assert (tmp_path / "logs" / "s" / "seed-0.log").exists()


@pytest.fixture(scope="module")
def local_ray():
    # Workers must use this interpreter: under `uv run` (how the tests are run), Ray would start
    # them with `uv run` in a copy of the working directory instead. Read when ray is imported.
    previous = os.environ.get("RAY_ENABLE_UV_RUN_RUNTIME_ENV")
    os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if previous is None:
        del os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"]
    else:
        os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = previous


@pytest.mark.slow
def test_ray_tasks_report_failures_like_local_processes(local_ray, tmp_path):
    # A Ray instance is already up in this process: the sweep uses it (and leaves it running).
    results = run_jobs(_python_jobs(tmp_path), workers=2, ray_address="auto")
    _check_python_jobs(results, tmp_path)


@pytest.mark.slow
def test_ray_sweep_runs_every_seed(local_ray, tmp_path, capsys):
    assert main(_sweep_args(tmp_path, "--ray-address", "auto")) == 0
    _check_sweep_runs(tmp_path)
    assert "on Ray (auto)" in capsys.readouterr().out


@pytest.mark.slow
def test_ray_address_local_starts_and_stops_its_own_instance(tmp_path):
    """The command as a user types it, in a fresh process: `--ray-address local`."""
    pytest.importorskip("ray")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_train",
            "sweep",
            *_sweep_args(tmp_path, "--ray-address", "local"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_sweep_runs(tmp_path)
    assert "2/2 seeds succeeded" in proc.stdout
