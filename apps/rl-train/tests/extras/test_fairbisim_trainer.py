"""`rl-train fairbisim`: the Bisimulator and its baselines on the shared on-policy loop, end to
end (metrics over time, the fairness evaluation, presets, bad options, kill and resume)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rl_buffers import io
from rl_train.cli import main
from rl_train.methods.fairbisim import METHOD

# Two rollouts of 8 envs x 32 steps, one evaluation episode of 40 steps.
SHORT = [
    "--loop.num-envs", "8",
    "--loop.num-steps", "32",
    "--loop.update-epochs", "2",
    "--loop.num-minibatches", "2",
    "--agent.lending.max-steps", "40",
    "--agent.college.max-steps", "10",
    "--agent.bisim.metric-steps", "3",
    "--agent.bisim.bisim-steps", "3",
    "--agent.bisim.warmup-rollouts", "0",
    "--fairness-episodes", "2",
    "--eval-every", "256",
    "--eval-episodes", "1",
    "--log-every", "256",
    "--checkpoint-every", "256",
    "--torch-threads", "1",
    "--device", "cpu",
    "--quiet",
    "--no-tensorboard",
]  # fmt: skip


def _args(root: Path, name: str, steps: int, *extra: str) -> list[str]:
    return ["fairbisim", "--root", str(root), "--name", name, "--total-steps", str(steps),
            *SHORT, *extra]  # fmt: skip


def _run(root: Path, name: str, steps: int, *extra: str, env: str = "lending") -> Path:
    assert main(_args(root, name, steps, "--env", env, *extra)) == 0
    return root / "fairbisim" / env / f"0-{name}"


@pytest.mark.parametrize(
    ("env", "algo"),
    [
        ("lending", "bisimulator"),
        ("college", "bisimulator"),
        ("lending", "appo"),
        ("college", "dqn"),
        ("lending", "rppo"),
    ],
)
def test_trains_logs_fairness_over_time_and_evaluates(
    tmp_path: Path, env: str, algo: str, metrics
) -> None:
    run = _run(tmp_path, algo, 512, "--algo", algo, env=env)
    lines = metrics(run)
    train = [line for line in lines if "train/acceptance_gap" in line]
    assert [line["step"] for line in train] == [256, 512]
    for line in train:
        for key in ("acceptance_rate_g0", "acceptance_rate_g1", "tpr_g0", "tpr_gap", "utility"):
            assert f"train/{key}" in line
        assert all(v == v for v in line.values())  # no NaN
    if algo == "bisimulator":
        assert "train/bisim_distance" in train[-1]
        assert "train/metric_loss" in train[-1]
    if algo == "appo":
        assert "train/gap_model_loss" in train[-1]
    if env == "lending":
        assert "train/credit_g1_c0" in train[-1]
    final = [line for line in lines if "eval/acceptance_gap" in line]
    assert len(final) == 1
    assert final[0]["step"] == 512
    fair = json.loads((run / "fairness.json").read_text())
    assert fair["algo"] == algo
    assert fair["env"] == env
    assert 0.0 <= fair["acceptance_gap"] <= 1.0
    assert 0.0 <= fair["tpr_gap"] <= 1.0
    if env == "lending":
        assert len(fair["credit_distribution"]) == 2
        assert sum(fair["credit_distribution"][0]) == pytest.approx(1.0)


def test_presets_and_derived_settings() -> None:
    assert METHOD.default_preset == "laptop"
    assert set(METHOD.presets) == {"laptop", "lending", "college"}
    cfg = METHOD.parse(["--env", "college", "--algo", "rppo"])
    assert (cfg.agent.env_name, cfg.agent.algo) == ("college", "rppo")
    cfg = METHOD.parse(["--preset", "college", "--algo", "bisimulator",
                        "--agent.bisim.solver", "dqn"])  # fmt: skip
    assert cfg.env == "college"
    assert cfg.agent.solver == "dqn"
    with pytest.raises(SystemExit):
        METHOD.parse(["--agent.algo", "ppo"])  # set by --algo, not an option


@pytest.mark.parametrize(
    ("option", "value", "names"),
    [
        ("--agent.bisim.metric-discount", "1.5", "--agent.bisim.metric-discount"),
        ("--agent.college.gaming-control", "3", "--agent.college.gaming-control"),
        ("--loop.num-minibatches", "7", "--loop.num-minibatches"),
        ("--fairness-episodes", "0", "--fairness-episodes"),
    ],
)
def test_a_bad_option_exits_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, names: str
) -> None:
    # A value out of range: tyro's usage error (exit 2), whose message names the flag.
    with pytest.raises(SystemExit) as exit_:
        main(_args(tmp_path, "bad", 64, option, value))
    assert exit_.value.code == 2
    assert names in " ".join(capsys.readouterr().err.split())


def test_resuming_with_another_algo_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path, "first", 256, "--algo", "ppo")
    assert main(["fairbisim", "--resume", str(run), "--algo", "dqn", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rl-train: ")


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, metrics, same_state, kill_at_checkpoint
) -> None:
    steps = "1024"
    args = _args(tmp_path, "killed", int(steps), "--algo", "bisimulator")
    run = tmp_path / "fairbisim" / "lending" / "0-killed"
    kill_at_checkpoint(
        [sys.executable, "-m", "rl_train", *args],
        run / "checkpoints" / "latest",
        tmp_path / "c.log",
    )
    written = sorted((run / "checkpoints").glob("ckpt-*.pt"))
    assert written
    assert written[-1].name != f"ckpt-00000000{steps}.pt"
    assert main(["fairbisim", "--resume", str(run), "--quiet"]) == 0
    reference = _run(tmp_path, "reference", int(steps), "--algo", "bisimulator")
    final = f"checkpoints/ckpt-{int(steps):012d}.pt"
    a, b = io.load(run / final), io.load(reference / final)
    for key in ("agent", "counters", "env_state", "rng"):
        same_state(a[key], b[key], key)
    assert metrics(run) == metrics(reference)
    assert json.loads((run / "fairness.json").read_text()) == json.loads(
        (reference / "fairness.json").read_text()
    )
