"""A training process killed with SIGKILL resumes from its last checkpoint, bit for bit."""

from __future__ import annotations

import sys

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
