"""`rl-train leo` and `leo-goals`: presets, --algo settings, one-line errors, short runs of every
algorithm on the Gridworld, and an exact resume after SIGKILL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rl_buffers import io
from rl_train.cli import main
from rl_train.methods.leo import GOALS_METHOD, METHOD

SHORT = [
    "--preset", "gridworld",
    "--envs.num-envs", "16",
    "--envs.reset-ratio", "8",
    "--envs.grid-size", "6",
    "--network.width", "32",
    "--q.num-steps", "8",
    "--q.minibatch-size", "64",
    "--ppo.num-steps", "8",
    "--ppo.minibatch-size", "64",
    "--evals.max-steps", "20",
    "--log-every", "128",
    "--eval-every", "256",
    "--checkpoint-every", "256",
    "--keep-checkpoints", "10",
    "--torch-threads", "1",
    "--quiet",
    "--no-tensorboard",
]  # fmt: skip


def _args(tmp: Path, name: str, steps: int, *extra: str) -> list[str]:
    return ["leo", "--root", str(tmp), "--name", name, "--total-steps", str(steps), *SHORT, *extra]


@pytest.mark.parametrize("algo", ["leo", "pqn", "pqn-her", "ppo", "dual-leo-ppo", "dual-leo-pqn"])
def test_short_runs_log_success_rates_overall_and_per_family(tmp_path: Path, algo, metrics) -> None:
    assert main(_args(tmp_path, algo, 512, "--algo", algo)) == 0
    lines = metrics(tmp_path / "leo" / "gridworld" / f"0-{algo}")
    train = [x for x in lines if "train/success_rate" in x]
    assert [x["step"] for x in train] == [128, 256, 384, 512]
    assert all("train/critic_loss" in x and "train/success_rate/position" in x for x in train)
    tests = [x for x in lines if "eval/success_rate" in x]
    assert [x["step"] for x in tests] == [0, 256, 512]
    assert all(0.0 <= x["eval/success_rate"] <= 1.0 for x in tests)


def test_presets_and_algo_settings() -> None:
    classic = METHOD.parse([])
    assert (classic.env, classic.algo, classic.envs.num_envs) == ("craftax-classic", "leo", 1024)
    assert (classic.network.width, classic.network.dense_layers) == (1024, 4)
    assert (classic.q.num_steps, classic.q.num_epochs, classic.q.minibatch_size) == (32, 2, 512)
    assert (classic.q.lr, classic.q.gamma, classic.envs.reset_ratio) == (2e-4, 0.99, 16)
    assert classic.run.total_steps == 1_000_000_000
    assert METHOD.parse(["--preset", "craftax"]).env == "craftax"
    pqn = METHOD.parse(["--algo", "pqn"])
    assert (pqn.q.num_steps, pqn.q.minibatch_size, pqn.q.gamma, pqn.network.conv_features) == (
        2, 256, 0.995, 16,
    )  # fmt: skip
    her = METHOD.parse(["--algo", "pqn-her", "--q.her-mode", "all"])
    assert (her.q.her_mode, her.q.minibatch_size, her.q.lr) == ("all", 2048, 1e-4)
    ppo = METHOD.parse(["--algo", "dual-leo-ppo", "--ppo.bc-coef", "0.2"])
    assert (ppo.ppo.num_steps, ppo.ppo.gamma, ppo.ppo.bc_coef) == (64, 0.995, 0.2)
    grid = METHOD.parse(["--preset", "gridworld", "--algo", "dual-leo-pqn"])
    assert (grid.env, grid.q.leo_weight, grid.envs.num_envs) == ("gridworld", 0.3, 64)


def test_bad_options_exit_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad, flag in (
        (["--envs.reset-ratio", "3"], "--envs.reset-ratio"),
        (["--q.eps-start", "1.5"], "--q.eps-start"),
        (["--network.width", "0"], "--network.width"),
    ):
        assert main(_args(tmp_path, "bad", 64, *bad)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"rl-train: {flag}"), err


def test_goal_listing(capsys: pytest.CaptureFixture[str]) -> None:
    GOALS_METHOD.train(GOALS_METHOD.parse(["--env", "craftax-classic"]))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 136
    assert lines[0] == "0 inventory/wood_1"
    assert lines[-1] == "135 mob_map/arrow_down"
    assert main(["leo-goals", "--env", "craftax"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 512
    assert lines[-1] == "511 intrinsics/dexterity_5"


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["leo", "dual-leo-ppo"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, algo: str, metrics, same_state, kill_at_checkpoint
) -> None:
    steps = 1024
    run = tmp_path / "leo" / "gridworld" / "0-killed"
    kill_at_checkpoint(
        [sys.executable, "-m", "rl_train", *_args(tmp_path, "killed", steps, "--algo", algo)],
        run / "checkpoints" / "latest",
        tmp_path / "child.log",
    )
    written = sorted((run / "checkpoints").glob("ckpt-*.pt"))
    assert written
    assert written[-1].name != f"ckpt-{steps:012d}.pt"
    assert main(["leo", "--resume", str(run), "--quiet"]) == 0
    assert main(_args(tmp_path, "reference", steps, "--algo", algo)) == 0
    reference = tmp_path / "leo" / "gridworld" / "0-reference"
    final = f"checkpoints/ckpt-{steps:012d}.pt"
    a, b = io.load(run / final), io.load(reference / final)
    for key in ("agent", "env", "goals", "counters", "rng"):
        same_state(a[key], b[key], key)
    assert metrics(run) == metrics(reference)
