"""`rl-train ot-ilfo` and `ot-ilfo-demos`: demos in, OT-relabelled training out, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ot_ilfo import load_expert_states
from rl_buffers import io
from rl_train.method import UsageError
from rl_train.methods.ot_ilfo import DEMOS_METHOD, METHOD, OTILfODemosConfig

DATASET = "test/pendulum-swingup-v0"
# 200-step Pendulum episodes: 100 random steps, updates from step 200 (after the first episode
# has been relabelled), a checkpoint at step 300 in the middle of the second episode.
SHORT = [
    "--random-steps", "100",
    "--eval-every", "200",
    "--eval-episodes", "1",
    "--log-every", "100",
    "--checkpoint-every", "100",
    "--keep-checkpoints", "10",
    "--torch-threads", "1",
    "--device", "cpu",
    "--quiet",
    "--no-tensorboard",
]  # fmt: skip


@pytest.fixture
def demos(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    argv = ["--scripted", "pendulum-swingup", "--dataset-id", DATASET, "--minari-root", str(root)]
    DEMOS_METHOD.train(DEMOS_METHOD.parse(argv))
    return root


# TD3's own options: with --learner mrq they would be ignored, so they are an error.
TD3_SHORT = ["--batch-size", "32", "--td3.hidden-sizes", "32", "32"]


def _train(tmp: Path, demos: Path, name: str, steps: int, *extra: str) -> Path:
    learner = [] if "mrq" in extra else TD3_SHORT
    argv = ["--root", str(tmp / "runs"), "--name", name, "--total-steps", str(steps),
            "--demos", DATASET, "--minari-root", str(demos), *SHORT, *learner, *extra]  # fmt: skip
    return METHOD.train(METHOD.parse(argv))


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_demos_are_state_only_and_refuse_overwrite(tmp_path: Path, demos: Path) -> None:
    states = load_expert_states(DATASET, root=demos, state_dim=3)
    assert len(states) == 1
    assert states[0].shape == (201, 3)
    argv = ["--scripted", "pendulum-swingup", "--dataset-id", DATASET, "--minari-root", str(demos)]
    with pytest.raises(UsageError, match=rf"^--dataset-id {DATASET}: .* already exists; pass "
                       r"--overwrite to replace it$"):  # fmt: skip
        DEMOS_METHOD.train(DEMOS_METHOD.parse(argv))
    with pytest.raises(ValueError, match="at most one of --expert"):
        OTILfODemosConfig(scripted="pendulum-swingup", expert=tmp_path)
    with pytest.raises(ValueError, match="Hopper-v5 has no scripted expert: give --expert"):
        OTILfODemosConfig(env="Hopper-v5")
    # The default preset scripts --env's controller, and --expert alone replaces it (the
    # README's command for a trained expert).
    assert DEMOS_METHOD.parse([]).controller == "pendulum-swingup"
    with_expert = DEMOS_METHOD.parse(["--env", "HalfCheetah-v5", "--expert", str(tmp_path)])
    assert (with_expert.controller, with_expert.expert) == (None, tmp_path)
    with pytest.raises(UsageError, match="controls Pendulum-v1, not"):
        DEMOS_METHOD.train(DEMOS_METHOD.parse([*argv, "--env", "Hopper-v5", "--overwrite"]))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_td3_trains_on_ot_rewards_and_logs_the_true_return(tmp_path: Path, demos: Path) -> None:
    run = _train(tmp_path, demos, "td3", 400)
    lines = _lines(run)
    ot = [line for line in lines if "train/ot_return" in line]
    assert [line["step"] for line in ot] == [200, 400]  # one relabelling per finished episode
    assert all(line["train/ot_return"] < 0 for line in ot)
    train = [line for line in lines if "train/critic_loss" in line]
    assert [line["step"] for line in train] == [200, 300, 400]  # first update: step 200
    env_returns = [line["train/episode_return"] for line in lines if "train/episode_return" in line]
    assert env_returns  # the true return, beside the OT return
    assert any("eval/return" in line for line in lines)
    # Mid-episode checkpoint: 100 staged steps of the second episode, 200 stored.
    state = io.load(run / "checkpoints" / "ckpt-000000000300.pt")
    store = state["buffer"]["store"]
    assert store["staged"]["obs"].shape == (100, 4)  # 3 state entries + time to horizon
    assert state["buffer"]["steps"] == 300
    rewards = store["buffer"]["storage"]["reward"]
    assert rewards.shape == (200,)
    assert float(rewards.max()) <= 0.0  # OT rewards, not Pendulum's


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_resume_mid_episode_equals_an_uninterrupted_run(
    tmp_path: Path, demos: Path, same_state
) -> None:
    full = _train(tmp_path, demos, "full", 400)
    part = _train(tmp_path, demos, "part", 300)
    resumed = _train(tmp_path, demos, "part", 400, "--allow-config-change")
    assert resumed == part
    a = io.load(full / "checkpoints" / "ckpt-000000000400.pt")
    b = io.load(part / "checkpoints" / "ckpt-000000000400.pt")
    for key in ("agent", "buffer", "counters"):
        same_state(a[key], b[key], key)
    # The interrupted run also evaluated at its last step (300); every other entry matches.
    ea = {x["step"]: x["eval/return"] for x in _lines(full) if "eval/return" in x}
    eb = {x["step"]: x["eval/return"] for x in _lines(part) if "eval/return" in x}
    assert ea == {step: ret for step, ret in eb.items() if step != 300}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_mrq_learner_takes_the_same_rewards(tmp_path: Path, demos: Path) -> None:
    run = _train(tmp_path, demos, "mrq", 300, "--learner", "mrq", "--mrq.replay.batch-size", "16")
    lines = _lines(run)
    assert any("train/ot_return" in line for line in lines)
    assert any("train/critic_loss" in line for line in lines)
    state = io.load(run / "checkpoints" / "ckpt-000000000300.pt")
    stored = state["buffer"]["store"]["buffer"]["storage"]["reward"]
    assert float(stored.max()) <= 0.0
    assert np.isfinite(stored.numpy()).all()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("time_input", [False, True])
def test_mrq_takes_the_time_entry_only_when_asked(
    tmp_path: Path, demos: Path, time_input: bool
) -> None:
    extra = ["--mrq-time-input"] if time_input else []
    run = _train(tmp_path, demos, "mrq", 300, "--learner", "mrq", *extra)
    state = io.load(run / "checkpoints" / "ckpt-000000000300.pt")
    obs = state["buffer"]["store"]["buffer"]["storage"]["frames"][:200].numpy()  # s_0..s_199
    assert obs.shape[1] == 3 + int(time_input)  # Pendulum: cos, sin, angular velocity
    if time_input:  # the first 200-step episode: (T - t) / T for t = 0..199
        np.testing.assert_allclose(obs[:, 3], (200 - np.arange(200)) / 200, atol=1e-6)
    else:
        np.testing.assert_allclose(obs[:, 0] ** 2 + obs[:, 1] ** 2, 1.0, atol=1e-5)


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``directory``: size and mtime."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in [directory, *directory.rglob("*")]
    }


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_td3_run_is_an_expert_read_without_writing_to_it(tmp_path: Path, demos: Path) -> None:
    run = _train(tmp_path, demos, "expert", 200)
    ckpt = run / "checkpoints"
    # As if the run were still training: a corrupt newer checkpoint, and one being written.
    (ckpt / "ckpt-000000000300.pt").write_bytes(b"RLWK torn")
    (ckpt / ".ckpt-000000000400.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    before = _snapshot(run)
    argv = ["--expert", str(run), "--episodes", "2", "--dataset-id", "test/expert-v0",
            "--minari-root", str(tmp_path / "out")]  # fmt: skip
    DEMOS_METHOD.train(DEMOS_METHOD.parse(argv))
    assert _snapshot(run) == before
    states = load_expert_states("test/expert-v0", root=tmp_path / "out", state_dim=3)
    assert [s.shape for s in states] == [(201, 3), (201, 3)]  # the time entry is not kept


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_an_mrq_drq_run_is_an_expert(tmp_path: Path) -> None:
    from rl_train.cli import main

    argv = ["mrq-drq", "--root", str(tmp_path), "--name", "src", "--total-steps", "80",
            "--agent.schedule.random-steps", "60", "--agent.replay.batch-size", "16",
            "--eval-episodes", "0", "--checkpoint-every", "80", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    run = tmp_path / "mrq-drq" / "InvertedPendulum-v5" / "0-src"
    before = _snapshot(run)
    argv = ["--env", "InvertedPendulum-v5", "--expert", str(run), "--dataset-id", "test/mrq-v0",
            "--minari-root", str(tmp_path / "out")]  # fmt: skip
    DEMOS_METHOD.train(DEMOS_METHOD.parse(argv))
    assert _snapshot(run) == before
    (states,) = load_expert_states("test/mrq-v0", root=tmp_path / "out", state_dim=4)
    assert states.shape[1] == 4
    with pytest.raises(UsageError, match="trained on InvertedPendulum-v5, not Pendulum-v1"):
        DEMOS_METHOD.train(DEMOS_METHOD.parse(["--expert", str(run)]))
    with pytest.raises(UsageError, match="not a run directory"):
        DEMOS_METHOD.train(DEMOS_METHOD.parse(["--expert", str(tmp_path)]))


def test_missing_demos_are_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=rf"^--demos {DATASET}: .*not found.*make it with "
                       rf"rl-train ot-ilfo-demos --dataset-id {DATASET} \(or pass --minari-root\)$"):  # fmt: skip
        _train(tmp_path, tmp_path / "nowhere", "x", 10)


def test_the_demos_command_offers_only_what_it_reads(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        DEMOS_METHOD.parse(["--help"])
    shown = capsys.readouterr().out
    for unused in ("--total-steps", "--root", "--resume", "--eval-every", "--datasets-root"):
        assert unused not in shown
    assert "--seed" in shown
    assert "--minari-root" in shown
    assert DEMOS_METHOD.parse(["--seed", "3"]).seed == 3
    for option in ("--total-steps", "--preset"):
        with pytest.raises(SystemExit):
            DEMOS_METHOD.parse([option, "pendulum-swingup"])


def test_one_option_per_setting_in_ot_ilfo(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = METHOD.parse(["--env", "HalfCheetah-v5", "--learner", "mrq"])
    assert (cfg.mrq.env.suite, cfg.mrq.env.env_id) == ("gym", "HalfCheetah-v5")  # follows --env
    assert cfg.td3.horizon == 1000  # the environment's episode length
    for option in ("--mrq.env.env-id", "--mrq.schedule.total-steps", "--mrq.schedule.random-steps",
                   "--mrq.algorithm", "--td3.horizon", "--demos-root"):  # fmt: skip
        with pytest.raises(SystemExit):
            METHOD.parse([option, "7"])
        assert option in capsys.readouterr().err
    # One learner's options with the other learner are an error, not ignored.
    with pytest.raises(UsageError, match=r"^--td3\.\*, --batch-size: option\(s\) of --learner td3, "
                       r"not of --learner mrq$"):  # fmt: skip
        METHOD.parse(["--learner", "mrq", "--td3.tau", "0.01", "--batch-size", "7"])
    with pytest.raises(UsageError, match=r"^--mrq\.\*: option\(s\) of --learner mrq"):
        METHOD.parse(["--mrq.replay.batch-size", "16"])
    assert (
        METHOD.parse(["--preset", "pendulum-mrq", "--mrq.replay.batch-size", "16"]).learner == "mrq"
    )


def _save_like_an_old_writer(obj: object, path: Path) -> None:
    """A checkpoint with a valid rl_buffers.io header (format 1) and checksum around a plain
    ``torch.save`` payload: anyone can write one."""
    import hashlib
    import struct
    from io import BytesIO

    import torch

    buf = BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    header = struct.pack("<4sIQ32s", b"RLWK", 1, len(payload), hashlib.sha256(payload).digest())
    path.write_bytes(header + payload)


class _RunsOnLoad:
    """Unpickling this calls ``exec(code)``: the shape of a malicious payload."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        return exec, (self.code,)


@pytest.mark.parametrize("method", ["mrq-drq", "ot-ilfo"])
def test_a_crafted_expert_checkpoint_is_refused_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    from rl_train.cli import main

    run = tmp_path / "expert"
    (run / "checkpoints").mkdir(parents=True)
    config = {"learner": "td3"} if method == "ot-ilfo" else {}
    (run / "config.json").write_text(
        json.dumps({"method": method, "env": "Pendulum-v1", "seed": 0, "config": config})
    )
    io.save({"step": 10, "agent": {}}, run / "checkpoints" / "ckpt-000000000010.pt")
    marker = tmp_path / "ran"
    newest = run / "checkpoints" / "ckpt-000000000020.pt"
    _save_like_an_old_writer({"agent": _RunsOnLoad(f"open({str(marker)!r}, 'w').close()")}, newest)
    argv = ["ot-ilfo-demos", "--expert", str(run), "--dataset-id", "test/x-v0",
            "--minari-root", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"rl-train: --expert {run}: {newest}: refused"), err[0]
    assert "builtins.exec" in err[0]
    assert "nothing in the file was run" in err[0]
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
