"""`rl-train hbs`: HBS, options and flat PPO on NetHack through the command line, end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rl_buffers import io
from rl_train.cli import main
from rl_train.method import UsageError
from rl_train.methods.hbs import METHOD

SHORT = [
    "--preset", "smoke",
    "--total-steps", "256",
    "--log-every", "64",
    "--checkpoint-every", "128",
    "--keep-checkpoints", "10",
    "--torch-threads", "1",
    "--device", "cpu",
    "--quiet",
    "--no-tensorboard",
]  # fmt: skip


def _args(root: Path, name: str, *extra: str) -> list[str]:
    return ["hbs", "--root", str(root), "--name", name, *SHORT, *extra]


def _dir(root: Path, name: str, env: str = "NetHackScore-v0") -> Path:
    return root / "hbs" / env / f"0-{name}"


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("algo", ["hbs", "options", "flat"])
def test_short_run_writes_exploration_metrics(tmp_path: Path, algo: str) -> None:
    assert main(_args(tmp_path, algo, "--algo", algo, "--eval-episodes", "2")) == 0
    run = _dir(tmp_path, algo)
    lines = _lines(run)
    keys = set().union(*lines)
    assert {"train/actor_loss", "train/critic_loss", "train/entropy", "time/sps"} <= keys
    assert {"eval/return", "eval/depth", "eval/glyphs", "eval/score", "eval/turns"} <= keys
    assert ("train/controller_actor_loss" in keys) == (algo != "flat")
    assert [e["step"] for e in lines if "train/updates" in e] == [64, 128, 192, 256]
    assert (run / "checkpoints" / "ckpt-000000000256.pt").exists()
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["agent"]["algo"] == algo


def test_presets_parse_with_their_tasks() -> None:
    score = METHOD.parse([])
    assert (score.env, score.agent.env.task, score.agent.algo) == (
        "NetHackScore-v0",
        "score",
        "hbs",
    )
    challenge = METHOD.parse(["--preset", "nethack-challenge", "--algo", "options"])
    assert challenge.agent.env.task == "challenge"
    assert challenge.agent.env.character == "@"
    assert challenge.agent.algo == "options"
    assert METHOD.parse(["--env", "NetHackChallenge-v0"]).agent.env.task == "challenge"
    growing = METHOD.parse(["--preset", "nethack-score-growing"])
    assert len(growing.agent.options.growing_rewards) == 5


def test_bad_options_exit_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        ("--agent.options.rewards", "score", "speed"): "unknown reward function 'speed'",
        ("--algo", "flat", "--agent.options.growing-rewards", "10"): "not with --algo flat",
        ("--agent.env.observation-keys", "glyphs", "blstats"): "'eating' reads the 'message'",
    }
    for extra, message in cases.items():
        assert main(_args(tmp_path, "bad", *extra)) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, (extra, err)
        assert message in err[0], (extra, err)
    assert not (tmp_path / "hbs").exists() or not any((tmp_path / "hbs").rglob("metrics.jsonl"))
    with pytest.raises(UsageError, match="unknown preset"):
        METHOD.parse(["--preset", "nethack-huge"])
    # a value a config field refuses: tyro's report naming the flag, exit status 2
    with pytest.raises(SystemExit) as stop:
        main(_args(tmp_path, "bad", "--agent.ppo.num-minibatches", "3"))
    assert stop.value.code == 2
    assert "--agent.ppo.num-minibatches (3) must divide" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, kill_at_checkpoint, same_state, metrics
) -> None:
    args = _args(tmp_path, "killed", "--algo", "hbs", "--total-steps", "512")
    latest = _dir(tmp_path, "killed") / "checkpoints" / "latest"
    kill_at_checkpoint([sys.executable, "-m", "rl_train", *args], latest, tmp_path / "child.log")
    written = sorted((_dir(tmp_path, "killed") / "checkpoints").glob("ckpt-*.pt"))
    assert written
    assert written[-1].name != "ckpt-000000000512.pt", "killed after it finished"
    assert main(["hbs", "--resume", str(_dir(tmp_path, "killed")), "--quiet"]) == 0
    assert main(_args(tmp_path, "reference", "--algo", "hbs", "--total-steps", "512")) == 0
    final = "checkpoints/ckpt-000000000512.pt"
    resumed = io.load(_dir(tmp_path, "killed") / final)
    reference = io.load(_dir(tmp_path, "reference") / final)
    for key in ("agent", "counters", "rng", "obs", "options", "reward_state", "tracker"):
        same_state(resumed[key], reference[key], key)
    assert metrics(_dir(tmp_path, "killed")) == metrics(_dir(tmp_path, "reference"))
    log = (_dir(tmp_path, "killed") / "run.log").read_text()
    assert "resuming from ckpt-" in log
    assert "replayed the current episodes" in log
