"""`rl-train marl-lowrank` and `marl-lowrank-data`: short runs write metrics, presets parse,
bad options stop in one line, datasets round-trip, and a SIGKILLed run resumes exactly."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from rl_buffers import io
from rl_train.cli import main
from rl_train.method import UsageError
from rl_train.methods.marl_lowrank import DATA_METHOD, METHOD

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SHORT = [
    "--game.num-agents", "6",
    "--game.dataset-size", "500",
    "--eval-contexts", "64",
    "--log-every", "10",
    "--eval-every", "20",
    "--checkpoint-every", "20",
    "--keep-checkpoints", "10",
    "--torch-threads", "1",
    "--device", "cpu",
    "--quiet",
    "--no-tensorboard",
]  # fmt: skip


def _argv(tmp: Path, name: str, steps: int, *extra: str) -> list[str]:
    return ["--root", str(tmp / "runs"), "--name", name, "--total-steps", str(steps),
            *SHORT, *extra]  # fmt: skip


def _lines(run: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in e.items() if not k.startswith("time/")} for e in lines]


def test_presets_parse_and_critic_follows_the_flag() -> None:
    for name in METHOD.presets:
        cfg = METHOD.parse(["--preset", name, "--critic", "joint"])
        assert cfg.td3bc.critic.kind == "joint"
        assert cfg.drac.critic.kind == "joint"
    drac = METHOD.parse(["--preset", "drac"])
    assert drac.algo == "drac"
    assert drac.game.num_actions == 2
    assert drac.run.total_steps == drac.drac.critic_steps + drac.drac.iterations
    assert METHOD.parse([]).game.num_agents == 50  # the paper's N


def test_td3bc_game_run_writes_exact_evaluations(tmp_path: Path) -> None:
    run = METHOD.train(METHOD.parse(_argv(tmp_path, "ir2", 40)))
    lines = _lines(run)
    evals = [e for e in lines if "eval/return" in e]
    assert [e["step"] for e in evals] == [0, 20, 40]
    assert {"eval/optimum_distance", "eval/nash_gap"} <= set(evals[-1])
    train = [e for e in lines if "train/critic_loss" in e]
    assert [e["step"] for e in train] == [10, 20, 30, 40]
    assert {"train/actor_loss", "train/q_mean", "train/bc_loss"} <= set(train[-1])


def test_drac_run_logs_the_exact_cce_gap(tmp_path: Path) -> None:
    argv = _argv(tmp_path, "drac", 60, "--preset", "drac", "--drac.critic-steps", "30",
                 "--drac.iterations", "30")  # fmt: skip
    run = METHOD.train(METHOD.parse(argv))
    last = [e for e in _lines(run) if "eval/cce_gap" in e][-1]
    assert last["step"] == 60
    assert last["eval/iterations"] == 30
    assert last["eval/cce_gap"] >= 0.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--algo", "drac"], "--algo drac is for the discrete game"),
        (["--preset", "drac", "--total-steps", "5"], "pass --total-steps 1200"),
        (["--game.num-actions", "2"], "--algo td3bc needs continuous actions"),
        (["--dataset", "missing.pt"], "--dataset missing.pt: dataset missing.pt: no such file"),
    ],
)
def test_bad_options_stop_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["marl-lowrank", "--root", str(tmp_path), "--quiet", "--no-tensorboard", *extra]
    if "--total-steps" not in extra:
        argv += ["--total-steps", "5"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert message in err[0], err[0]


def test_a_bad_nested_value_is_refused_naming_its_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):  # tyro reports the config's ValueError and exits 2
        METHOD.parse(["--game.sigma", "-1"])
    assert "--game.sigma must be a finite number >= 0, got -1.0" in capsys.readouterr().err


def test_data_command_writes_a_game_file_the_trainer_reads(tmp_path: Path) -> None:
    out = tmp_path / "game.pt"
    data = ["--output", str(out), "--game.num-agents", "6", "--game.dataset-size", "300",
            "--game.behaviour", "noisy-good"]  # fmt: skip
    DATA_METHOD.train(DATA_METHOD.parse(data))
    with pytest.raises(UsageError, match="already exists; pass --overwrite"):
        DATA_METHOD.train(DATA_METHOD.parse(data))
    run = METHOD.train(METHOD.parse(_argv(tmp_path, "file", 20, "--dataset", str(out))))
    assert "noisy-good behaviour" in (run / "run.log").read_text()
    with pytest.raises(UsageError, match=r"made with num_agents 6; pass --game\.num-agents 6"):
        METHOD.train(
            METHOD.parse(
                _argv(tmp_path, "other", 20, "--dataset", str(out), "--game.num-agents", "7")
            )
        )


def test_spread_dataset_as_minari_and_a_short_run(tmp_path: Path) -> None:
    root = tmp_path / "minari"
    DATA_METHOD.train(
        DATA_METHOD.parse(
            [
                "--env",
                "simple-spread",
                "--dataset-id",
                "test/spread-v0",
                "--minari-root",
                str(root),
                "--spread.episodes",
                "3",
            ]
        )
    )
    argv = ["--preset", "spread", "--root", str(tmp_path / "runs"), "--name", "s",
            "--dataset", "test/spread-v0", "--minari-root", str(root), "--total-steps", "20",
            "--eval-every", "20", "--eval-episodes", "1", "--log-every", "10",
            "--td3bc.batch-size", "32", "--torch-threads", "1", "--quiet",
            "--no-tensorboard"]  # fmt: skip
    run = METHOD.train(METHOD.parse(argv))
    last = [e for e in _lines(run) if "eval/return" in e][-1]
    assert last["step"] == 20
    assert last["eval/return"] < 0
    with pytest.raises(UsageError, match=r"key 'agents' is \['agent_0', 'agent_1', 'agent_2'\]"):
        METHOD.train(METHOD.parse([*argv, "--name", "s4", "--spread.num-agents", "4"]))


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, kill_at_checkpoint, same_state
) -> None:
    args = _argv(tmp_path, "killed", 200, "--checkpoint-every", "20")
    run = tmp_path / "runs" / "marl-lowrank" / "game" / "0-killed"
    env = {**os.environ, "RL_NETS_GEMM": "default"}
    os.environ.update(env)  # the child and the resumed run take the same products
    kill_at_checkpoint(
        [sys.executable, "-m", "rl_train", "marl-lowrank", *args],
        run / "checkpoints" / "latest",
        tmp_path / "child.log",
    )
    written = sorted((run / "checkpoints").glob("ckpt-*.pt"))
    assert written
    assert written[-1].name != "ckpt-000000000200.pt", "killed after it finished"
    assert main(["marl-lowrank", "--resume", str(run), "--quiet"]) == 0
    assert (
        main(["marl-lowrank", *_argv(tmp_path, "reference", 200, "--checkpoint-every", "20")]) == 0
    )
    reference = tmp_path / "runs" / "marl-lowrank" / "game" / "0-reference"
    final = "checkpoints/ckpt-000000000200.pt"
    a, b = io.load(run / final), io.load(reference / final)
    for key in ("agent", "source", "counters", "rng"):
        same_state(a[key], b[key], key)
    assert _lines(run) == _lines(reference)
    assert "resuming from ckpt-" in (run / "run.log").read_text()
