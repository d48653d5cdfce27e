"""`rl-train mrq-drq`: the MR.Q/DR.Q trainer on the shared runtime, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rl_buffers import io
from rl_runtime.config import from_jsonable
from rl_train.cli import main
from rl_train.method import UsageError
from rl_train.methods.mrq_drq import METHOD, MRQTrainConfig, configure

# A few hundred steps of the small-width preset: 60 random steps, then syncs every 25 RL
# updates with a 25-update encoder burst.
SHORT = [
    "--agent.schedule.random-steps", "60",
    "--agent.replay.batch-size", "16",
    "--eval-every", "100",
    "--eval-episodes", "1",
    "--log-every", "50",
    "--checkpoint-every", "100",
    "--torch-threads", "1",
    "--device", "cpu",
    "--quiet",
]  # fmt: skip


def _run(root: Path, name: str, steps: int, *extra: str) -> Path:
    args = ["mrq-drq", "--root", str(root), "--name", name, "--total-steps", str(steps)]
    assert main([*args, *SHORT, *extra]) == 0
    return root / "mrq-drq" / "InvertedPendulum-v5" / f"0-{name}"


@pytest.mark.parametrize("algo", ["mrq", "drq"])
def test_trains_logs_and_checkpoints(tmp_path: Path, algo: str, metrics) -> None:
    run = _run(tmp_path, algo, 150, "--algo", algo)
    info = json.loads((run / "config.json").read_text())
    cfg = from_jsonable(MRQTrainConfig, info["config"])
    assert cfg.algo == algo
    # config.json holds the agent that trained: DR.Q's settings, on --env.
    assert cfg.agent.algorithm == algo
    assert cfg.agent.replay.sampling == ("faded" if algo == "drq" else "lap")
    assert cfg.agent.env.env_id == info["env"] == "InvertedPendulum-v5"

    lines = metrics(run)
    train = [line for line in lines if "train/critic_loss" in line]
    # Updates start after the random phase: the first log at step 50 has none, later ones do.
    assert [line["step"] for line in train] == [100, 150]
    assert all("train/encoder_loss" in line for line in train)
    assert any("eval/return" in line for line in lines)
    for line in train:
        assert all(v == v for v in line.values())  # no NaN anywhere

    state = io.load(run / "checkpoints" / "ckpt-000000000150.pt")
    # Steps 60, 61, ..., 150 (the buffer holds >= 60 transitions) each end with one RL update.
    assert state["agent"]["training_steps"] == 91
    priorities = state["buffer"]["buffer"]["sampler"]
    assert priorities, "the sampler's priority state is checkpointed"


def test_presets_and_drq_switch() -> None:
    assert METHOD.default_preset == "laptop"
    assert set(METHOD.presets) == {"laptop", "gym", "dmc", "dmc-visual", "atari"}
    gym = METHOD.presets["gym"]
    assert gym.env == "HalfCheetah-v5"
    assert gym.run.total_steps == 1_000_000
    assert gym.agent.encoder.zs_dim == 512
    drq = configure(gym, env="Hopper-v5", algo="drq").agent
    assert drq.env.env_id == "Hopper-v5"
    assert (drq.encoder.infonce_weight, drq.encoder.hidden_dim) == (0.1, 750)
    assert drq.replay.sampling == "faded"
    assert METHOD.parse(["--preset", "gym", "--env", "Hopper-v5", "--algo", "drq"]).agent == drq


def test_one_option_per_setting(capsys: pytest.CaptureFixture[str]) -> None:
    """The environment is --env, the algorithm --algo, the run length --total-steps: the agent
    config's copies are no options, and --agent.* options apply on top of DR.Q's settings."""
    cfg = METHOD.parse(["--env", "Hopper-v5"])
    assert (cfg.env, cfg.agent.env.env_id) == ("Hopper-v5", "Hopper-v5")
    for option in ("--agent.env.env-id", "--agent.schedule.total-steps",
                   "--agent.schedule.eval-interval", "--agent.schedule.eval-episodes",
                   "--agent.algorithm"):  # fmt: skip
        with pytest.raises(SystemExit):
            METHOD.parse([option, "Hopper-v5"])
        assert option in capsys.readouterr().err
    with pytest.raises(SystemExit):
        METHOD.parse(["--help"])
    shown = capsys.readouterr().out
    assert "--agent.schedule.random-steps" in shown
    assert "--agent.env.env-id" not in shown
    assert "--agent.schedule.total-steps" not in shown
    drq = METHOD.parse(["--algo", "drq", "--agent.replay.sampling", "lap",
                        "--agent.encoder.lr", "1e-3"]).agent  # fmt: skip
    assert (drq.algorithm, drq.replay.sampling, drq.encoder.lr) == ("drq", "lap", 1e-3)
    assert drq.encoder.infonce_weight == 0.1  # DR.Q's own settings stay
    with pytest.raises(
        UsageError, match=r"--drq-as-official-code changes DR\.Q: it needs --algo drq"
    ):
        METHOD.parse(["--drq-as-official-code"])


def test_bad_env_space_is_rejected_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Blackjack's observation space is a Tuple, which MR.Q does not take.
    args = ["mrq-drq", "--root", str(tmp_path), "--total-steps", "10", *SHORT]
    assert main([*args, "--env", "Blackjack-v1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("rl-train: --env Blackjack-v1: ")
    assert "Tuple" in err[0]


def test_an_env_of_another_suite_names_the_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("dm_control")
    args = ["mrq-drq", "--root", str(tmp_path), "--total-steps", "10", *SHORT]
    assert main([*args, "--preset", "dmc", "--env", "Hopper-v5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rl-train: --env Hopper-v5: ")
    assert "the preset's suite is 'dmc'" in err[0]
    assert "--preset gym" in err[0]


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path: Path, metrics, same_state) -> None:
    """Train 100 steps, extend to 200 from the checkpoint; compare with 200 straight."""
    straight = _run(tmp_path, "straight", 200)
    _run(tmp_path, "split", 100)
    split = _run(tmp_path, "split", 200, "--allow-config-change")
    final = "checkpoints/ckpt-000000000200.pt"
    a, b = io.load(straight / final), io.load(split / final)
    for key in ("agent", "buffer", "counters", "rng"):
        same_state(a[key], b[key], key)
    assert metrics(straight) == metrics(split)
