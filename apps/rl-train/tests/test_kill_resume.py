"""A training process killed with SIGKILL resumes from its last checkpoint, bit for bit; one
stopped with SIGTERM or Ctrl-C checkpoints first, says how to resume, and resumes exactly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from rl_buffers import io
from rl_train.cli import main


def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tiny_args, run_dir, metrics, same_state, kill_at_checkpoint, tmp_path
):
    args = tiny_args("killed", "--total-steps", "1000", "--log-every", "50")
    # The child imports torch under the test's environment.
    latest = run_dir("killed") / "checkpoints" / "latest"
    kill_at_checkpoint([sys.executable, "-m", "rl_train", *args], latest, tmp_path / "child.log")
    written = sorted((run_dir("killed") / "checkpoints").glob("ckpt-*.pt"))
    assert written
    assert written[-1].name != "ckpt-000000001000.pt", "killed after it finished"

    assert main(["tiny-q", "--resume", str(run_dir("killed")), "--quiet"]) == 0
    assert main(tiny_args("reference", "--total-steps", "1000", "--log-every", "50")) == 0

    final = "checkpoints/ckpt-000000001000.pt"
    resumed, reference = io.load(run_dir("killed") / final), io.load(run_dir("reference") / final)
    for key in ("agent", "buffer", "counters", "rng", "obs", "action_space_rng"):
        same_state(resumed[key], reference[key], key)

    lines = metrics(run_dir("killed"))
    assert lines == metrics(run_dir("reference"))
    train_steps = [e["step"] for e in lines if "train/updates" in e]
    eval_steps = [e["step"] for e in lines if "eval/return" in e]
    assert train_steps == list(range(50, 1001, 50))  # no duplicates, no gaps
    assert eval_steps == list(range(0, 1001, 100))
    assert "resuming from ckpt-" in (run_dir("killed") / "run.log").read_text()


def _signal_after_first_checkpoint(argv: list[str], latest: Path, log: Path, signum: int) -> int:
    """Start ``argv`` (output to ``log``), send it ``signum`` as soon as its first checkpoint
    exists (polling for it, as kill_at_first_checkpoint does), and return its exit status."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            while not latest.exists():
                if proc.poll() is not None:
                    raise AssertionError(f"ended before its first checkpoint:\n{log.read_text()}")
                time.sleep(0.005)
            proc.send_signal(signum)
            return proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()


def test_sigterm_checkpoints_prints_the_resume_command_and_resumes_exactly(
    tiny_args, run_dir, metrics, same_state, tmp_path
):
    """SIGTERM (schedulers, `docker stop`): a checkpoint of the state at the next step, one
    line with the resume command, exit 143; resumed, the run ends bitwise equal to an
    uninterrupted one."""
    args = tiny_args("stopped", "--total-steps", "1000", "--log-every", "50")
    run = run_dir("stopped")
    log = tmp_path / "child.log"
    status = _signal_after_first_checkpoint(
        [sys.executable, "-m", "rl_train", *args],
        run / "checkpoints" / "latest",
        log,
        signal.SIGTERM,
    )
    assert status == 143, log.read_text()
    stop = re.fullmatch(
        r"rl-train: interrupted by SIGTERM at step (\d+); resume with: "
        rf"rl-train tiny-q --resume {re.escape(str(run))}\n",
        log.read_text(),  # the whole output: no traceback, no other line
    )
    assert stop is not None, log.read_text()
    step = int(stop[1])
    assert 100 <= step < 1000
    assert (run / "checkpoints" / f"ckpt-{step:012d}.pt").is_file()

    assert main(["tiny-q", "--resume", str(run), "--quiet"]) == 0
    assert main(tiny_args("reference", "--total-steps", "1000", "--log-every", "50")) == 0
    final = "checkpoints/ckpt-000000001000.pt"
    resumed, reference = io.load(run / final), io.load(run_dir("reference") / final)
    for key in ("agent", "buffer", "counters", "rng", "obs", "action_space_rng"):
        same_state(resumed[key], reference[key], key)
    assert metrics(run) == metrics(run_dir("reference"))
    assert f"resuming from ckpt-{step:012d}.pt (step {step})" in (run / "run.log").read_text()


def test_ctrl_c_checkpoints_and_prints_the_resume_command_without_a_traceback(
    tiny_args, run_dir, monkeypatch, capsys
):
    """Ctrl-C in this process (from inside an update: a real SIGINT, handled by the run)."""
    from rl_runtime.testing import TinyQAgent

    update = TinyQAgent.update
    calls = 0

    def interrupted_update(self, batch):
        nonlocal calls
        calls += 1
        if calls == 20:
            os.kill(os.getpid(), signal.SIGINT)
        return update(self, batch)

    monkeypatch.setattr(TinyQAgent, "update", interrupted_update)
    capsys.readouterr()
    assert main(tiny_args("stopped")) == 130
    run = run_dir("stopped")
    err = capsys.readouterr().err
    stop = re.fullmatch(
        r"rl-train: interrupted by SIGINT at step (\d+); resume with: "
        rf"rl-train tiny-q --resume {re.escape(str(run))}\n",
        err,
    )
    assert stop is not None, err
    # Update 20 happens in step 50 + 2·19 (one update every 2nd step from step 50): the run
    # stops right after that step, with a checkpoint of it.
    assert int(stop[1]) == 88
    assert (run / "checkpoints" / "ckpt-000000000088.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
