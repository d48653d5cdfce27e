"""Whole runs of the tiny test agent through `rl_train.cli.main`, in this process."""

from __future__ import annotations

import json
import logging
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from rl_buffers import io
from rl_runtime.checkpoint import CheckpointManager
from rl_runtime.config import RunConfig, from_jsonable
from rl_runtime.evaluation import evaluate
from rl_runtime.run import ConfigMismatchError, RunInUseError, open_run
from rl_runtime.testing import CHAIN_ID, TinyQConfig
from rl_train.cli import main
from rl_train.testing import METHOD
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def _train(args: list[str]) -> None:
    assert main(args) == 0


def test_run_directory_layout(tiny_args, run_dir, metrics):
    _train(tiny_args("a", "--tensorboard"))
    run = run_dir("a")

    info = json.loads((run / "config.json").read_text())
    assert (info["method"], info["env"], info["seed"]) == ("tiny-q", "rltrain/Chain-v0", 0)
    cfg = from_jsonable(TinyQConfig, info["config"])
    assert cfg.run.total_steps == 400
    assert cfg.loop.update_every == 2

    lines = metrics(run)
    evals = [e["step"] for e in lines if "eval/return" in e]
    logs = [e["step"] for e in lines if "train/updates" in e]
    assert evals == [0, 100, 200, 300, 400]
    assert logs == list(range(50, 401, 50))
    for entry in lines:
        namespaces = {k.split("/")[0] for k in entry if k != "step"}
        assert namespaces <= {"train", "eval", "buffer"}
    last_log = next(e for e in reversed(lines) if "train/updates" in e)
    # updates every 2nd step from step 50 on: steps 50, 52, ..., 400
    assert last_log["train/updates"] == len(range(50, 401, 2))
    assert last_log["buffer/size"] == 400
    raw = json.loads((run / "metrics.jsonl").read_text().splitlines()[-2])
    assert raw["time/sps"] > 0
    assert raw["time/elapsed"] > 0

    ckpts = CheckpointManager(run / "checkpoints", keep=10, log=logging.getLogger("test"))
    assert ckpts.steps() == [100, 200, 300, 400]
    assert (run / "checkpoints" / "latest").read_text().strip() == "ckpt-000000000400.pt"
    state = io.load(run / "checkpoints" / "ckpt-000000000400.pt")
    assert state["step"] == 400
    assert state["counters"]["step"] == 400
    assert state["counters"]["updates"] == last_log["train/updates"]
    assert state["config"] == info["config"]
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert {"agent", "buffer", "obs", "action_space_rng", "pending_metrics"} <= set(state)
    assert "new run in" in (run / "run.log").read_text()

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"eval/return", "train/critic_loss", "buffer/size", "time/sps"} <= tags
    assert [e.step for e in events.Scalars("eval/return")] == evals


def test_keep_prunes_old_checkpoints(tiny_args, run_dir):
    _train(tiny_args("a", "--keep-checkpoints", "2"))
    ckpts = CheckpointManager(run_dir("a") / "checkpoints", keep=2, log=logging.getLogger("t"))
    assert ckpts.steps() == [300, 400]


def test_same_seed_is_bitwise_reproducible_and_seeds_differ(
    tiny_args, run_dir, metrics, same_state
):
    _train(tiny_args("a"))
    _train(tiny_args("b"))
    _train(tiny_args("c", "--seed", "1"))
    final = "checkpoints/ckpt-000000000400.pt"
    a, b, c = (io.load(run_dir(n, s) / final) for n, s in (("a", 0), ("b", 0), ("c", 1)))
    for key in ("agent", "buffer", "counters", "rng", "obs", "action_space_rng"):
        same_state(a[key], b[key], key)
    assert metrics(run_dir("a")) == metrics(run_dir("b"))
    assert metrics(run_dir("a")) != metrics(run_dir("c", 1))
    frames = ("buffer", "buffer", "storage", "frames")
    fa, fc = _at(a, frames), _at(c, frames)
    assert fa.shape != fc.shape or not torch.equal(fa, fc)


def test_rerunning_a_finished_named_run_changes_nothing(tiny_args, run_dir, caplog):
    _train(tiny_args("a"))
    before = (run_dir("a") / "metrics.jsonl").read_bytes()
    with caplog.at_level(logging.INFO, logger="rlworks"):
        _train(tiny_args("a"))
    assert "run already complete (400 steps)" in caplog.text
    assert (run_dir("a") / "metrics.jsonl").read_bytes() == before


def _refused(args: list[str], capsys) -> str:
    """Run a command that must be refused as a usage error; returns its message."""
    capsys.readouterr()
    assert main(args) == 2
    return capsys.readouterr().err


def test_resuming_with_another_config_is_refused_by_name(tiny_args, run_dir, capsys):
    _train(tiny_args("a", "--total-steps", "200"))
    err = _refused(tiny_args("a", "--total-steps", "200", "--agent.lr", "0.1"), capsys)
    assert "was started with a different config" in err
    assert "agent.lr: run has 0.05, command asks for 0.1" in err
    assert "--allow-config-change" in err
    # The same check raised by the library call, as the exception type.
    cfg = METHOD.parse(tiny_args("a", "--total-steps", "200", "--agent.lr", "0.1")[1:])
    with pytest.raises(ConfigMismatchError, match=r"agent\.lr"):
        open_run("tiny-q", cfg)
    # options of the runtime that do not change results may differ
    _train(tiny_args("a", "--total-steps", "200", "--tensorboard", "--no-quiet"))


def test_allow_config_change_extends_a_run_exactly(tiny_args, run_dir, metrics, same_state, capsys):
    """A 200-step run extended to 400 equals a 400-step run (the schedules line up at 200)."""
    _train(tiny_args("short", "--total-steps", "200"))
    assert "run.total_steps: run has 200, command asks for 400" in _refused(
        tiny_args("short"), capsys
    )
    _train(tiny_args("short", "--allow-config-change"))
    _train(tiny_args("long"))
    info = json.loads((run_dir("short") / "config.json").read_text())
    assert info["config"]["run"]["total_steps"] == 400
    assert info["changes"][0]["fields"]["run.total_steps"] == [200, 400]
    final = "checkpoints/ckpt-000000000400.pt"
    short, long = io.load(run_dir("short") / final), io.load(run_dir("long") / final)
    for key in ("agent", "buffer", "counters", "rng"):
        same_state(short[key], long[key], key)
    assert metrics(run_dir("short")) == metrics(run_dir("long"))


def test_resume_flag_alone_continues_with_the_saved_config(tiny_args, run_dir, tmp_path, capsys):
    _train(tiny_args("a", "--total-steps", "200", "--agent.epsilon", "0.3"))
    # The command-line defaults (total_steps 3000, epsilon 0.2) must not leak into the run.
    _train(["tiny-q", "--resume", str(run_dir("a")), "--quiet"])
    info = json.loads((run_dir("a") / "config.json").read_text())
    assert info["config"]["agent"]["epsilon"] == 0.3
    assert "changes" not in info
    assert not list(tmp_path.glob("tiny-q/*/0-2*"))  # no fresh timestamped run was made
    err = _refused(["tiny-q", "--resume", str(run_dir("a")), "--agent.epsilon", "0.5"], capsys)
    assert "agent.epsilon: run has 0.3, command asks for 0.5" in err


def test_resume_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    err = _refused(["tiny-q", "--resume", str(tmp_path)], capsys)
    assert f"--resume: {tmp_path}: no config.json, not a run directory" in err
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        open_run("tiny-q", TinyQConfig(run=RunConfig(resume=tmp_path)))


def test_truncated_checkpoint_falls_back_to_the_previous_one(
    tiny_args, run_dir, metrics, same_state, caplog
):
    _train(tiny_args("ref"))
    _train(tiny_args("a"))
    ckpt_dir = run_dir("a") / "checkpoints"
    newest = ckpt_dir / "ckpt-000000000400.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    with pytest.raises(io.CorruptFileError, match="truncated"):
        io.load(newest)

    with caplog.at_level(logging.INFO, logger="rlworks"):
        _train(tiny_args("a"))
    assert "checkpoint ckpt-000000000400.pt is corrupt" in caplog.text
    assert "falling back to ckpt-000000000300.pt" in caplog.text
    assert "resuming from ckpt-000000000300.pt (step 300)" in caplog.text
    assert (ckpt_dir / "ckpt-000000000400.pt.corrupt").exists()
    assert "falling back" in (run_dir("a") / "run.log").read_text()
    # The last 100 steps were redone from step 300 and end where the uninterrupted run ended.
    a = io.load(newest)
    ref = io.load(run_dir("ref") / "checkpoints/ckpt-000000000400.pt")
    for key in ("agent", "buffer", "counters", "rng"):
        same_state(a[key], ref[key], key)
    assert metrics(run_dir("a")) == metrics(run_dir("ref"))


def test_without_the_flag_wandb_is_never_imported(tiny_args, run_dir, monkeypatch):
    # A None entry in sys.modules makes `import wandb` raise: any import would fail the run.
    monkeypatch.setitem(sys.modules, "wandb", None)
    _train(tiny_args("a", "--total-steps", "100"))
    with pytest.raises(ImportError, match=r"--wandb.*pip install 'rl-runtime\[wandb\]'"):
        main(tiny_args("b", "--total-steps", "100", "--wandb"))
    assert not run_dir("b").exists()  # a run that could not start leaves no directory


def test_bad_environment_spaces_are_named(tiny_args, tmp_path):
    with pytest.raises(ValueError, match="Discrete action space, Pendulum-v1 has Box"):
        main([*tiny_args("a"), "--env", "Pendulum-v1"])
    # It failed before its first step: no run directory is left for `plot` to trip over.
    assert not (tmp_path / "tiny-q" / "Pendulum-v1" / "0-a").exists()


def test_named_directory_with_foreign_files_is_refused(tiny_args, run_dir, capsys):
    d = run_dir("a")
    d.mkdir(parents=True)
    (d / "notes.txt").write_text("mine")
    assert _refused(tiny_args("a"), capsys) == (
        f"rl-train: {d} exists, is not empty and has no config.json (it is not a run "
        "directory): choose another --name or --root, or move its files away\n"
    )
    with pytest.raises(FileExistsError, match=r"has no config\.json"):  # the library's error
        open_run("tiny-q", METHOD.parse(tiny_args("a")[1:]))
    assert [p.name for p in d.iterdir()] == ["notes.txt"]  # untouched


def test_unnamed_runs_get_distinct_timestamped_directories(tmp_path):
    args = ["tiny-q", "--root", str(tmp_path), "--total-steps", "20", "--eval-episodes", "0",
            "--quiet", "--no-tensorboard", "--loop.learning-starts", "10"]  # fmt: skip
    _train(args)
    _train(args)
    runs = sorted(p.name for p in (tmp_path / "tiny-q" / "rltrain_Chain-v0").iterdir())
    assert len(runs) == 2
    assert all(r.startswith("0-") for r in runs)


def _random_walk_success(length: int, limit: int) -> float:
    """P(a uniformly random policy reaches the end of the chain within `limit` steps): with
    random actions a slip is just another coin flip, so moves are +-1 with probability 1/2,
    reflected at state 0."""
    p = np.zeros(length)
    p[0] = 1.0
    reached = 0.0
    for _ in range(limit):
        nxt = np.zeros(length)
        for state in range(length - 1):
            nxt[state + 1] += p[state] / 2
            nxt[max(state - 1, 0)] += p[state] / 2
        reached += nxt[-1]
        nxt[-1] = 0.0
        p = nxt
    return reached


def test_tiny_q_learns_the_chain(tiny_args, run_dir, metrics):
    """Greedy Q = 0 never reaches the goal (return 0), a random policy does in 45% of the
    episodes, the trained agent nearly always."""
    random_success = _random_walk_success(6, 20)
    assert random_success == pytest.approx(0.4522, abs=1e-4)
    with gym.make(CHAIN_ID) as env:  # the environment agrees with the hand computation
        rng = np.random.default_rng(0)
        sampled = evaluate(lambda _: int(rng.integers(2)), env, episodes=400, seed=0)
    assert abs(sampled.mean_return - random_success) < 0.1  # 4 standard errors

    _train(tiny_args("a", "--total-steps", "1500", "--eval-episodes", "20", "--eval-every", "500"))
    returns = [e["eval/return"] for e in metrics(run_dir("a")) if "eval/return" in e]
    assert returns[0] == 0.0
    # Over seeds 0-5 the mean of the last two evaluations ranged 0.82-1.0.
    assert np.mean(returns[-2:]) >= random_success + 0.35


def test_a_run_directory_open_in_one_process_is_refused_to_another(tiny_args, run_dir):
    _train(tiny_args("a", "--total-steps", "100"))
    cfg = METHOD.parse(tiny_args("a", "--total-steps", "100")[1:])
    with open_run("tiny-q", cfg), pytest.raises(RunInUseError, match="in use by another"):
        open_run("tiny-q", cfg)
    with open_run("tiny-q", cfg):  # released when the first one closed
        pass


def _at(state, path):
    for key in path:
        state = state[key]
    return state


def test_checkpoints_by_wall_time_do_not_change_the_run(tiny_args, run_dir, same_state):
    _train(tiny_args("steps", "--checkpoint-minutes", "0"))
    # A period far below one step's time: every step checkpoints, none of it perturbs training.
    _train(tiny_args("timed", "--checkpoint-minutes", "1e-9", "--keep-checkpoints", "3"))
    log = logging.getLogger("t")
    by_steps = CheckpointManager(run_dir("steps") / "checkpoints", keep=10, log=log)
    timed = CheckpointManager(run_dir("timed") / "checkpoints", keep=3, log=log)
    assert by_steps.steps() == [100, 200, 300, 400]
    assert timed.steps() == [398, 399, 400]
    final = "checkpoints/ckpt-000000000400.pt"
    a, b = io.load(run_dir("steps") / final), io.load(run_dir("timed") / final)
    same_state(a["agent"], b["agent"], "agent")
    same_state(a["buffer"], b["buffer"], "buffer")


def test_negative_checkpoint_minutes_is_refused():
    with pytest.raises(ValueError, match="--checkpoint-minutes must be a finite number >= 0"):
        RunConfig(checkpoint_minutes=-1.0)
