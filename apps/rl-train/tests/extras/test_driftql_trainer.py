"""`rl-train driftql` and `rl-train driftql-data`: DriftQL/FQL/BC offline on generated data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from driftql.config import AgentConfig, default_config, task_preset
from rl_buffers import io
from rl_buffers.offline import DatasetError
from rl_train.method import UsageError
from rl_train.methods.driftql import METHOD
from rl_train.methods.driftql_data import METHOD as DATA

pytest.importorskip("minari")

# Tiny networks and a few dozen gradient steps: every phase (log, eval, checkpoint) happens.
SHORT = [
    "--preset", "laptop",
    "--agent.actor.hidden-sizes", "32", "32",
    "--agent.critic.hidden-sizes", "32", "32",
    "--agent.optim.batch-size", "16",
    "--agent.drift.num-samples", "4",
    "--total-steps", "40",
    "--eval-every", "20",
    "--eval-episodes", "1",
    "--log-every", "10",
    "--checkpoint-every", "20",
    "--torch-threads", "1",
    "--device", "cpu",
    "--no-tensorboard",
    "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def hopper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-step random Hopper-v5 Minari dataset, written by `rl-train driftql-data`."""
    root = tmp_path_factory.mktemp("minari")
    args = [
        "--kind", "minari", "--env", "Hopper-v5", "--dataset-id", "test/hopper/random-v0",
        "--steps", "300", "--ref-episodes", "2", "--ref-max-score", "3234.3",
        "--minari-root", str(root), "--quiet",
    ]  # fmt: skip
    DATA.train(DATA.parse(args))
    return root


def _train(root: Path, data_root: Path, name: str, *extra: str) -> Path:
    args = ["--task", "hopper", "--dataset", "test/hopper/random-v0"]
    args += ["--minari-root", str(data_root), "--root", str(root), "--name", name]
    return METHOD.train(METHOD.parse([*args, *SHORT, *extra]))


def _lines(run: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.mark.parametrize(
    ("args", "task"),
    [
        (["--dataset", "data/cube-single-play-30ep.npz"], "cube-single"),
        (["--dataset", "x/puzzle-3x3-play-v0.npz"], "puzzle-3x3"),
        (["--dataset", "mujoco/hopper/medium-v0"], "hopper-medium"),
        (["--dataset", "local/reacher/expert-v0"], "local/reacher/expert-v0"),
        (["--task", "walker2d", "--dataset", "mujoco/hopper/medium-v0"], "walker2d"),
    ],
)
def test_task_is_read_from_the_dataset_name_unless_given(args: list[str], task: str) -> None:
    cfg = METHOD.parse(["--preset", "ogbench", *args])
    assert cfg.task_name == task
    for algo in ("driftql", "fql"):
        expected = task_preset(task, algo)
        assert METHOD.parse(["--preset", "minari", "--algo", algo, *args]).agent == expected


def test_a_dataset_with_no_published_entry_gets_the_defaults() -> None:
    cfg = METHOD.parse(["--algo", "fql", "--dataset", "local/reacher/expert-v0"])
    assert cfg.agent == default_config("fql")
    assert cfg.agent != task_preset("cube-single", "fql")


def test_agent_options_apply_on_top_of_the_task_and_preset_settings() -> None:
    published = task_preset("cube-single", "driftql")
    assert published.actor.alpha != 3.0
    args = ["--dataset", "x/cube-single-play-v0.npz", "--agent.actor.alpha", "3"]
    cfg = METHOD.parse(args)
    assert cfg.agent == dataclasses.replace(
        published, actor=dataclasses.replace(published.actor, alpha=3.0)
    )
    # The laptop preset's smaller networks, then the option, on the task's settings.
    laptop = METHOD.parse(["--preset", "laptop", *args]).agent
    assert (laptop.actor.hidden_sizes, laptop.critic.hidden_sizes) == ((256, 256), (256, 256))
    assert (laptop.actor.alpha, laptop.drift) == (3.0, published.drift)
    # The algorithm is chosen once, with --algo.
    with pytest.raises(UsageError, match=r"--agent\.algo fql differs from --algo driftql"):
        METHOD.parse([*args, "--agent.algo", "fql"])


def test_help_shows_the_task_settings(capsys: pytest.CaptureFixture[str]) -> None:
    alpha = task_preset("cube-single", "driftql").actor.alpha
    with pytest.raises(SystemExit):
        METHOD.parse(["--task", "cube-single", "--help"])
    out = capsys.readouterr().out
    assert "--agent.actor.alpha" in out
    assert f"(default: {alpha:g})" in out or f"(default: {alpha})" in out


@pytest.mark.parametrize("algo", ["driftql", "fql", "bc"])
def test_trains_each_algo_on_minari_data(tmp_path: Path, hopper: Path, algo: str) -> None:
    run = _train(tmp_path, hopper, algo, "--algo", algo)
    assert run == tmp_path / "driftql" / "test_hopper_random-v0" / f"0-{algo}"
    saved = AgentConfig.from_dict(json.loads((run / "agent_config.json").read_text()))
    hopper = task_preset("hopper", algo)
    expected = dataclasses.replace(
        hopper,
        actor=dataclasses.replace(hopper.actor, hidden_sizes=(32, 32)),
        critic=dataclasses.replace(hopper.critic, hidden_sizes=(32, 32)),
        drift=dataclasses.replace(hopper.drift, num_samples=4),
        optim=dataclasses.replace(hopper.optim, batch_size=16),
    )
    assert saved == expected
    assert saved.algo == algo
    lines = _lines(run)
    evals = [e for e in lines if "eval/return" in e]
    assert [e["step"] for e in evals] == [0, 20, 40]
    for e in evals:
        assert np.isfinite(e["eval/normalized_score"])
    train = [e for e in lines if "train/updates" in e]
    assert [e["step"] for e in train] == [10, 20, 30, 40]
    assert all(e["buffer/size"] == 300 for e in train)
    assert all(np.isfinite(v) for e in train for v in e.values())
    state = io.load(run / "checkpoints" / "ckpt-000000000040.pt")
    assert state["counters"] == {"step": 40, "updates": 40}


def test_normalized_score_uses_the_reference_scores(tmp_path: Path, hopper: Path) -> None:
    from driftql.evaluation import minari_reference_scores

    run = _train(tmp_path, hopper, "score", "--algo", "bc", "--total-steps", "20")
    lo, hi = minari_reference_scores("test/hopper/random-v0", root=hopper)
    for e in _lines(run):
        if "eval/return" in e:
            assert e["eval/normalized_score"] == pytest.approx(
                100 * (e["eval/return"] - lo) / (hi - lo)
            )


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path, hopper: Path, same_state) -> None:
    straight = _train(tmp_path, hopper, "straight")
    first = _train(tmp_path, hopper, "resumed", "--total-steps", "20")
    resumed = _train(tmp_path, hopper, "resumed", "--allow-config-change")
    assert resumed == first
    # --resume DIR alone: the recorded agent, not the task's published one.
    assert (
        METHOD.parse(["--resume", str(first)]).agent
        == METHOD.parse(["--task", "hopper", *SHORT]).agent
    )
    a = io.load(straight / "checkpoints" / "ckpt-000000000040.pt")
    b = io.load(resumed / "checkpoints" / "ckpt-000000000040.pt")
    for key in ("agent", "source", "counters", "rng"):
        same_state(a[key], b[key], key)
    assert _lines(straight) == _lines(resumed)


def test_degraded_data_is_other_data(tmp_path: Path, hopper: Path) -> None:
    clean = _train(tmp_path, hopper, "clean", "--total-steps", "20")
    noisy = _train(
        tmp_path, hopper, "noisy", "--total-steps", "20", "--degrade-p", "0.5",
        "--degrade-mode", "gaussian",
    )  # fmt: skip
    fp = [
        io.load(run / "checkpoints" / "ckpt-000000000020.pt")["data_fingerprint"]
        for run in (clean, noisy)
    ]
    assert fp[0] != fp[1]
    # Resuming the clean run with degraded data is refused.
    with pytest.raises(ValueError, match="fingerprint"):
        _train(
            tmp_path, hopper, "clean", "--total-steps", "40", "--degrade-p", "0.5",
            "--allow-config-change",
        )  # fmt: skip


def test_bad_datasets_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--dataset is required"):
        METHOD.train(METHOD.parse(["--root", str(tmp_path), *SHORT]))
    with pytest.raises(UsageError, match="no such file"):
        METHOD.train(METHOD.parse(["--dataset", str(tmp_path / "x.npz"), *SHORT]))
    bad = tmp_path / "cube-single-play-v0.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    pytest.importorskip("ogbench")
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        METHOD.train(METHOD.parse(["--dataset", str(bad), "--root", str(tmp_path), *SHORT]))
    with pytest.raises(SystemExit):  # tyro reports the config's ValueError and exits
        METHOD.parse(["--degrade-p", "2"])


def test_data_command_refuses_to_overwrite(tmp_path: Path, hopper: Path) -> None:
    args = [
        "--kind", "minari", "--env", "Hopper-v5", "--dataset-id", "test/hopper/random-v0",
        "--steps", "10", "--ref-max-score", "1", "--minari-root", str(hopper), "--quiet",
    ]  # fmt: skip
    with pytest.raises(UsageError, match="already exists"):
        DATA.train(DATA.parse(args))
    with pytest.raises(UsageError, match="--out is required"):
        DATA.train(DATA.parse(["--kind", "ogbench", "--quiet"]))
    with pytest.raises(UsageError, match="needs an expert policy"):
        DATA.train(DATA.parse([*args[:5], "test/hopper/other-v0", "--quiet"]))


@pytest.mark.slow
def test_ogbench_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("ogbench")
    data = tmp_path / "cube-single-play-v0.npz"
    DATA.train(
        DATA.parse(
            ["--env", "cube-single", "--episodes", "2", "--val-episodes", "1",
             "--max-episode-steps", "51", "--out", str(data), "--quiet"]
        )
    )  # fmt: skip
    run = METHOD.train(
        METHOD.parse(
            ["--dataset", str(data), "--task-id", "3", "--root", str(tmp_path), "--name", "og",
             *SHORT, "--total-steps", "20"]
        )
    )  # fmt: skip
    evals = [e for e in _lines(run) if "eval/success" in e]
    assert [e["step"] for e in evals] == [0, 20]
    assert all(e["eval/length"] == 200 and e["eval/success"] in (0.0, 1.0) for e in evals)


@pytest.mark.slow
def test_minari_data_from_an_mrq_run(tmp_path: Path) -> None:
    from rl_train.cli import main

    mrq = ["mrq-drq", "--root", str(tmp_path), "--name", "src", "--total-steps", "100"]
    mrq += ["--agent.schedule.random-steps", "60", "--agent.replay.batch-size", "16"]
    mrq += ["--eval-episodes", "1", "--checkpoint-every", "100", "--device", "cpu", "--quiet"]
    assert main(mrq) == 0
    run = tmp_path / "mrq-drq" / "InvertedPendulum-v5" / "0-src"
    DATA.train(
        DATA.parse(
            ["--kind", "minari", "--env", "InvertedPendulum-v5", "--policy", str(run),
             "--dataset-id", "test/pendulum/mrq-v0", "--steps", "50", "--ref-episodes", "1",
             "--minari-root", str(tmp_path / "data"), "--quiet"]
        )
    )  # fmt: skip
    meta = json.loads(
        (tmp_path / "data" / "test" / "pendulum" / "mrq-v0" / "data" / "metadata.json").read_text()
    )
    assert meta["algorithm_name"].startswith("MR.Q")
    assert meta["total_steps"] == 50
    with pytest.raises(UsageError, match="not InvertedDoublePendulum-v5"):
        DATA.train(
            DATA.parse(
                ["--kind", "minari", "--env", "InvertedDoublePendulum-v5", "--policy", str(run),
                 "--dataset-id", "test/x/y-v0", "--minari-root", str(tmp_path), "--quiet"]
            )
        )  # fmt: skip
