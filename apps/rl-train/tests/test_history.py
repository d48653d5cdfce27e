"""A run's history is never lost: no silent restart of a run that has held checkpoints,
``--restart`` moves the old history aside, and a run restarted before its first checkpoint keeps
the metrics it logged."""

from __future__ import annotations

import json

from rl_buffers import io
from rl_train.cli import main


def _status(args: list[str], capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    status = main(args)
    return status, capsys.readouterr().err.splitlines()


def test_a_run_whose_checkpoints_are_all_corrupt_is_only_restarted_when_asked(
    tiny_args, run_dir, metrics, same_state, capsys
):
    assert main(tiny_args("a")) == 0
    run = run_dir("a")
    history = (run / "metrics.jsonl").read_bytes()
    for ckpt in (run / "checkpoints").glob("ckpt-*.pt"):
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    restart = (
        "pass --restart to start the run over from step 0 (its metrics, checkpoints and "
        f"TensorBoard events are moved to {run}/previous-<time>/, nothing is deleted)"
    )

    # The first attempt finds every checkpoint corrupt and renames them, as before ...
    status, err = _status(tiny_args("a"), capsys)
    assert status == 2
    assert err[-1] == (
        f"rl-train: {run}: every checkpoint is corrupt (kept as checkpoints/*.corrupt), so "
        f"there is nothing to resume from; {restart}"
    )
    corrupt = [f"ckpt-{s:012d}.pt.corrupt" for s in (100, 200, 300, 400)]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [*corrupt, "latest"]
    # ... and the same command again finds no checkpoint: it must not start over silently.
    status, err = _status(tiny_args("a"), capsys)
    assert status == 2
    assert err == [
        f"rl-train: {run} has held checkpoints but none is left to resume from (checkpoints/ "
        f"holds {', '.join(corrupt)}, latest); {restart}"
    ]
    status, err = _status(["tiny-q", "--resume", str(run), "--quiet"], capsys)
    assert status == 2
    assert (run / "metrics.jsonl").read_bytes() == history  # nothing truncated

    # Asked to, it starts over from step 0 with the earlier history moved aside.
    assert main(["tiny-q", "--resume", str(run), "--restart", "--quiet"]) == 0
    (aside,) = run.glob("previous-*")
    assert (aside / "metrics.jsonl").read_bytes() == history
    assert sorted(p.name for p in (aside / "checkpoints").iterdir()) == [*corrupt, "latest"]
    assert json.loads((aside / "config.json").read_text())["method"] == "tiny-q"
    assert (
        "starting the run over from step 0 (--restart); its earlier history is in previous-"
        in (run / "run.log").read_text()
    )
    assert main(tiny_args("reference")) == 0
    assert metrics(run) == metrics(run_dir("reference"))
    final = "checkpoints/ckpt-000000000400.pt"
    a, b = io.load(run / final), io.load(run_dir("reference") / final)
    for key in ("agent", "buffer", "counters", "rng"):
        same_state(a[key], b[key], key)
    # --restart is a request of one command, never recorded: resuming again does not restart.
    assert json.loads((run / "config.json").read_text())["config"]["run"]["restart"] is False
    assert a["config"]["run"]["restart"] is False
    assert main(["tiny-q", "--resume", str(run), "--quiet"]) == 0
    assert len(list(run.glob("previous-*"))) == 1
    assert metrics(run) == metrics(run_dir("reference"))


def test_a_run_stopped_before_its_first_checkpoint_restarts_and_keeps_its_metrics(
    tiny_args, run_dir, metrics, monkeypatch, caplog, capsys
):
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C came while the first checkpoint was written

    with monkeypatch.context() as patch:
        patch.setattr(io, "save", stopped)
        assert main(tiny_args("a")) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "rl-train: interrupted"
    run = run_dir("a")
    assert not (run / "checkpoints").exists()
    logged = (run / "metrics.jsonl").read_bytes()
    assert [e["step"] for e in metrics(run) if "eval/return" in e] == [0, 100]

    assert main(tiny_args("a")) == 0  # no checkpoint ever: it may start over ...
    (aside,) = run.glob("previous-*")
    assert (aside / "metrics.jsonl").read_bytes() == logged  # ... but keeps what it logged
    assert "the metrics the earlier attempt logged are kept in previous-" in caplog.text
    assert main(tiny_args("reference")) == 0
    assert metrics(run) == metrics(run_dir("reference"))


def test_restart_of_a_finished_run_moves_its_history_aside(tiny_args, run_dir, metrics):
    assert main(tiny_args("a", "--total-steps", "200")) == 0
    run = run_dir("a")
    first = (run / "metrics.jsonl").read_bytes()
    assert main(tiny_args("a", "--total-steps", "200", "--restart")) == 0
    (aside,) = run.glob("previous-*")
    assert (aside / "metrics.jsonl").read_bytes() == first
    assert sorted(p.name for p in (aside / "checkpoints").iterdir()) == [
        "ckpt-000000000100.pt",
        "ckpt-000000000200.pt",
        "latest",
    ]
    assert (run / "metrics.jsonl").read_bytes() != b""
    assert metrics(run) == metrics(aside)  # the same seed and config: the same run again


def test_a_fresh_run_that_fails_before_its_first_step_leaves_no_directory(
    tiny_args, tmp_path, capsys
):
    status, err = _status(tiny_args("a", "--env", "NoSuchEnv-v0"), capsys)
    assert status == 2
    assert err[-1].startswith("rl-train: --env NoSuchEnv-v0: Environment `NoSuchEnv` doesn't exist")
    assert not (tmp_path / "tiny-q" / "NoSuchEnv-v0" / "0-a").exists()
