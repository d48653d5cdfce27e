"""`rl-train mbsearch` and `rl-train mbsearch-chain`: the MRS.Q trainer and the N-chain table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rl_buffers import io
from rl_runtime.config import from_jsonable
from rl_train.cli import main
from rl_train.methods.mbsearch import METHOD, MBSearchTrainConfig

# A few hundred steps at MR.Q's small widths with a small planner: 60 random steps, then syncs
# every 25 RL updates with a 25-update encoder burst, and MPPI on 32 sequences.
SHORT = [
    "--agent.mrq.schedule.random-steps", "60",
    "--agent.mrq.replay.batch-size", "16",
    "--agent.planner.num-samples", "32",
    "--agent.planner.num-pi-trajs", "4",
    "--agent.planner.num-elites", "8",
    "--agent.planner.iterations", "2",
    "--eval-every", "100",
    "--eval-episodes", "1",
    "--log-every", "50",
    "--checkpoint-every", "100",
    "--torch-threads", "1",
    "--device", "cpu",
    "--quiet",
    "--no-tensorboard",
]  # fmt: skip


def _args(root: Path, name: str, steps: int, *extra: str) -> list[str]:
    return ["mbsearch", "--root", str(root), "--name", name, "--total-steps", str(steps),
            *SHORT, *extra]  # fmt: skip


def _dir(root: Path, name: str) -> Path:
    return root / "mbsearch" / "InvertedPendulum-v5" / f"0-{name}"


@pytest.mark.parametrize("arm", ["mrsq", "mpc", "mrq"])
def test_trains_logs_and_checkpoints(tmp_path: Path, arm: str, metrics) -> None:
    assert main(_args(tmp_path, arm, 150, "--arm", arm)) == 0
    run = _dir(tmp_path, arm)
    info = json.loads((run / "config.json").read_text())
    cfg = from_jsonable(MBSearchTrainConfig, info["config"])
    assert cfg.arm == cfg.agent.arm == arm
    assert cfg.agent.critics.num_critics == (10 if arm == "mrsq" else 2)
    assert cfg.agent.planner.enabled == (arm != "mrq")
    lines = metrics(run)
    train = [line for line in lines if "train/critic_loss" in line]
    assert [line["step"] for line in train] == [100, 150]
    assert all("train/encoder_loss" in line for line in train)
    # Episodes of the untrained policy are short and terminate: each one is measured.
    assert any("train/overestimation" in line for line in train)
    assert any("eval/return" in line for line in lines)
    for line in lines:
        assert all(v == v for v in line.values())  # no NaN
    state = io.load(run / "checkpoints" / "ckpt-000000000150.pt")
    assert state["agent"]["mrq"]["training_steps"] == 91
    assert set(state["agent"]) >= {"planner_generator", "warm_start_train", "warm_start_eval"}


def test_presets_arms_and_ablation_switches() -> None:
    assert METHOD.default_preset == "laptop"
    assert set(METHOD.presets) == {"laptop", "gym"}
    gym = METHOD.parse(["--preset", "gym"])
    assert (gym.env, gym.arm, gym.run.total_steps) == ("HalfCheetah-v5", "mrsq", 1_000_000)
    assert gym.agent.mrq.encoder.zs_dim == 512
    assert gym.agent.critics.num_critics == 10
    mpc = METHOD.parse(["--preset", "gym", "--env", "Hopper-v5", "--arm", "mpc"])
    assert mpc.agent.mrq.env.env_id == "Hopper-v5"
    assert mpc.agent.arm == "mpc"
    assert (mpc.agent.critics.num_critics, mpc.agent.latent_simnorm) == (2, None)
    assert mpc.agent.mrq.policy.exploration_noise == 0.2
    ablation = METHOD.parse([
        "--agent.critics.target-critics", "2", "--agent.planner.value-reduction", "mean",
        "--agent.latent-simnorm", "None",
    ]).agent  # fmt: skip
    assert ablation.critics.target_critics == 2
    assert ablation.planner.value_reduction == "mean"
    assert ablation.latent_simnorm is None
    assert ablation.mrq.encoder.done_weight == 1.0  # MRS.Q's own settings stay


def test_one_option_per_setting(capsys: pytest.CaptureFixture[str]) -> None:
    for option in ("--agent.arm", "--agent.mrq.env.env-id", "--agent.mrq.schedule.total-steps"):
        with pytest.raises(SystemExit):
            METHOD.parse([option, "x"])
        assert option in capsys.readouterr().err


def test_bad_options_exit_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A discrete action space cannot be planned over.
    assert main(_args(tmp_path, "d", 10, "--env", "CartPole-v1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rl-train: --env CartPole-v1: MPPI plans over continuous actions")
    # A planner setting out of range: tyro's usage error (exit 2) names the field.
    with pytest.raises(SystemExit) as exit_:
        main(_args(tmp_path, "e", 10, "--agent.planner.num-elites", "999"))
    assert exit_.value.code == 2
    assert "planner.num_elites (999)" in capsys.readouterr().err


def test_chain_table_is_printed_and_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "chain.json"
    args = ["mbsearch-chain", "--actions", "10", "--lengths", "3", "10", "--budgets", "1000",
            "--trials", "400", "--planner-trials", "40", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| A | n | m | closed_form | random_shooting | cem | mppi | mpc_h1 |" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [(r["actions"], r["length"], r["budget"]) for r in rows] == [
        (10, 3, 1000),
        (10, 10, 1000),
    ]
    assert rows[0]["closed_form"] == pytest.approx(0.632, abs=1e-3)
    assert rows[1]["closed_form"] == pytest.approx(1e-7, rel=1e-6)
    assert rows[1]["mpc_h1"] > 0.9  # a short horizon with exact values solves it
    # History is not overwritten silently.
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--overwrite" in err[0]


def test_chain_rejects_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["mbsearch-chain", "--actions", "1"])
    assert exit_.value.code == 2
    assert "--actions needs one or more integers >= 2, got (1,)" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, metrics, same_state, kill_at_checkpoint
) -> None:
    killed = _args(tmp_path, "killed", 300)
    latest = _dir(tmp_path, "killed") / "checkpoints" / "latest"
    kill_at_checkpoint([sys.executable, "-m", "rl_train", *killed], latest, tmp_path / "child.log")
    written = sorted((_dir(tmp_path, "killed") / "checkpoints").glob("ckpt-*.pt"))
    assert written
    assert written[-1].name != "ckpt-000000000300.pt"
    assert main(["mbsearch", "--resume", str(_dir(tmp_path, "killed")), "--quiet"]) == 0
    assert main(_args(tmp_path, "reference", 300)) == 0
    final = "checkpoints/ckpt-000000000300.pt"
    a = io.load(_dir(tmp_path, "killed") / final)
    b = io.load(_dir(tmp_path, "reference") / final)
    for key in ("agent", "buffer", "counters", "rng", "obs", "action_space_rng"):
        same_state(a[key], b[key], key)
    assert metrics(_dir(tmp_path, "killed")) == metrics(_dir(tmp_path, "reference"))
