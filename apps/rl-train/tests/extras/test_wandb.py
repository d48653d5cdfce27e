"""W&B only on request: what the runtime sends, with a recording stand-in and for real offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest


class _FakeRun:
    def __init__(self, calls: list, kwargs: dict) -> None:
        self.calls = calls
        calls.append(("init", kwargs))

    def define_metric(self, name: str, **kwargs) -> None:
        self.calls.append(("define_metric", name, kwargs))

    def log(self, data: dict) -> None:
        self.calls.append(("log", data))

    def finish(self) -> None:
        self.calls.append(("finish",))


def test_wandb_receives_every_entry_with_our_step_and_resumes_the_same_run(
    tiny_args, run_dir, monkeypatch
):
    calls: list = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: _FakeRun(calls, kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    from rl_train.cli import main

    assert main(tiny_args("a", "--total-steps", "200", "--wandb", "--wandb-project", "p")) == 0
    init = calls[0][1]
    run_id = (run_dir("a") / "wandb_id").read_text().strip()
    assert init["project"] == "p"
    assert init["id"] == run_id
    assert init["resume"] == "allow"
    assert init["config"]["run"]["total_steps"] == 200
    assert ("define_metric", "*", {"step_metric": "step"}) in calls
    logged = [c[1] for c in calls if c[0] == "log"]
    jsonl = [json.loads(line) for line in (run_dir("a") / "metrics.jsonl").open()]
    assert logged == jsonl
    assert calls[-1] == ("finish",)

    calls.clear()
    assert main(tiny_args("a", "--total-steps", "300", "--wandb", "--wandb-project", "p",
                          "--allow-config-change")) == 0  # fmt: skip
    assert calls[0][1]["id"] == run_id  # the same W&B run continues
    assert next(c[1]["step"] for c in calls if c[0] == "log") == 250


@pytest.mark.slow
def test_wandb_offline_run_is_written_in_the_run_directory(tiny_args, run_dir):
    pytest.importorskip("wandb")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    args = tiny_args("a", "--total-steps", "100", "--wandb")
    proc = subprocess.run(
        [sys.executable, "-m", "rl_train", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = (run_dir("a") / "wandb_id").read_text().strip()
    offline = list((run_dir("a") / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(offline) == 1
    assert offline[0].stat().st_size > 0
