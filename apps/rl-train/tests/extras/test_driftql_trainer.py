"""`rl-train driftql` and `rl-train driftql-data`: DriftQL/FQL/BC offline on generated data."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from driftql.config import AgentConfig, default_config, task_preset
from driftql.data import dataset_fingerprint, load_minari_episodes
from rl_buffers import io
from rl_buffers.offline import ActionScale, Episode, minari_dataset_dir, save_minari
from rl_train.cli import main
from rl_train.method import UsageError
from rl_train.methods.driftql import METHOD
from rl_train.methods.driftql_data import METHOD as DATA
from rl_train.methods.driftql_data import env_policy

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
    # The algorithm is chosen once, with --algo: the agent's own field is no option.
    assert METHOD.parse([*args, "--algo", "fql"]).agent.algo == "fql"
    with pytest.raises(SystemExit):
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
    with pytest.raises(UsageError, match=r"^--dataset \S+: .*truncated or corrupt"):
        METHOD.train(METHOD.parse(["--dataset", str(bad), "--root", str(tmp_path), *SHORT]))
    with pytest.raises(UsageError, match=r"--dataset test/none-v0: .*not found.*--minari-root"):
        METHOD.train(METHOD.parse(["--dataset", "test/none-v0", "--root", str(tmp_path), *SHORT]))
    with pytest.raises(SystemExit):  # tyro reports the config's ValueError and exits
        METHOD.parse(["--degrade-p", "2"])


def test_data_command_refuses_to_overwrite(tmp_path: Path, hopper: Path) -> None:
    args = [
        "--kind", "minari", "--env", "Hopper-v5", "--dataset-id", "test/hopper/random-v0",
        "--steps", "10", "--ref-max-score", "1", "--minari-root", str(hopper), "--quiet",
    ]  # fmt: skip
    with pytest.raises(UsageError, match=r"--dataset-id test/hopper/random-v0: .* already exists; "
                       r"pass --overwrite to replace it$"):  # fmt: skip
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


# ----------------------------------------------------------------------------- real data


def _collect(root: Path, env_id: str, dataset_id: str, steps: int) -> None:
    """``steps`` random steps of ``env_id`` written by Minari's own DataCollector."""
    minari = pytest.importorskip("minari")
    pytest.importorskip("jax")  # minari.DataCollector needs minari[create]
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        env = minari.DataCollector(gym.make(env_id), data_format="hdf5")
        env.action_space.seed(0)
        env.reset(seed=0)
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Minari's advice on metadata for publishing
            env.create_dataset(dataset_id=dataset_id, algorithm_name="random")
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


@pytest.mark.parametrize(("env_id", "bound"), [("InvertedPendulum-v5", 3.0), ("Pendulum-v1", 2.0)])
def test_datasets_of_wide_action_boxes_train_in_the_unit_box(
    tmp_path: Path, env_id: str, bound: float
) -> None:
    """DataCollector data of InvertedPendulum-v5 ([-3, 3]) and Pendulum-v1 ([-2, 2]) trains:
    the buffer holds the actions divided by the bound, evaluation runs the recorded env."""
    data = tmp_path / "data"
    _collect(data, env_id, "collector/wide-v0", 300)
    run = METHOD.train(
        METHOD.parse(
            ["--dataset", "collector/wide-v0", "--minari-root", str(data), "--algo", "bc",
             "--root", str(tmp_path), *SHORT, "--total-steps", "20"]
        )
    )  # fmt: skip
    raw = load_minari_episodes("collector/wide-v0", root=data)
    assert max(float(np.abs(ep.actions).max()) for ep in raw) > 1.0  # the env's units
    unit = ActionScale([-bound], [bound]).episodes_to_unit(raw, where="x")
    for ep, u in zip(raw, unit, strict=True):
        np.testing.assert_allclose(u.actions, ep.actions / bound, atol=1e-6)
    # The run trained on exactly those actions (the fingerprint of its buffer's content).
    state = io.load(run / "checkpoints" / "ckpt-000000000020.pt")
    assert state["data_fingerprint"] == dataset_fingerprint(unit)
    assert [e["step"] for e in _lines(run) if "eval/return" in e] == [0, 20]


def test_the_data_commands_own_wide_box_dataset_trains(tmp_path: Path) -> None:
    """`rl-train driftql-data --kind minari --env InvertedPendulum-v5` data is accepted."""
    args = ["--kind", "minari", "--env", "InvertedPendulum-v5", "--dataset-id", "t/ip/random-v0",
            "--steps", "200", "--ref-episodes", "1", "--ref-max-score", "1000",
            "--minari-root", str(tmp_path / "data"), "--quiet"]  # fmt: skip
    DATA.train(DATA.parse(args))
    run = METHOD.train(
        METHOD.parse(
            ["--dataset", "t/ip/random-v0", "--minari-root", str(tmp_path / "data"),
             "--algo", "bc", "--root", str(tmp_path), *SHORT, "--total-steps", "20"]
        )
    )  # fmt: skip
    assert [e["step"] for e in _lines(run) if "eval/normalized_score" in e] == [0, 20]


class _Actor:
    def __init__(self, action: float) -> None:
        self.action = action

    def __call__(self, obs: Any) -> Any:
        return torch.full((1,), self.action)


def test_an_mrq_policy_acts_in_the_environments_box() -> None:
    """An MR.Q agent acts in [-1, 1]; the data command's policy maps that onto the env's box."""
    space = gym.make("InvertedPendulum-v5").action_space  # [-3, 3]
    policy = env_policy(_Actor(1.0), space)
    np.testing.assert_array_equal(policy(np.zeros(4)), np.array([3.0], np.float32))
    assert env_policy(_Actor(-0.5), space)(np.zeros(4)).dtype == space.dtype
    np.testing.assert_array_equal(env_policy(_Actor(-0.5), space)(np.zeros(4)), [-1.5])
    assert env_policy(lambda obs: torch.tensor(1), gym.spaces.Discrete(2))(np.zeros(4)) == 1


def test_a_dataset_that_does_not_fit_the_eval_env_fails_before_training(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _collect(data, "InvertedPendulum-v5", "collector/ip-v0", 30)
    args = ["--dataset", "collector/ip-v0", "--minari-root", str(data), "--root", str(tmp_path),
            "--name", "bad", *SHORT]  # fmt: skip
    with pytest.raises(
        UsageError,
        match=r"collector/ip-v0 \(episode 0\) has observations of shape \(4,\), the evaluation "
        r"environment Hopper-v5 observes \(11,\).*--eval-env",
    ):
        METHOD.train(METHOD.parse([*args, "--eval-env", "Hopper-v5"]))
    # Same sizes, another box: Pendulum-v1 observes 3 numbers and takes one in [-2, 2].
    space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    ep = Episode(np.zeros((4, 3), np.float32), np.full((3, 1), 2.5, np.float32),
                 np.zeros(3, np.float32), np.zeros(3, np.bool_), np.array([False, False, True]))  # fmt: skip
    save_minari([ep], "test/box-v0", observation_space=space,
                action_space=gym.spaces.Box(-3.0, 3.0, (1,), np.float32), root=data)  # fmt: skip
    with pytest.raises(
        UsageError,
        match=r"test/box-v0 records actions in \[-3, 3\], the evaluation environment "
        r"Pendulum-v1 takes \[-2, 2\]",
    ):
        METHOD.train(METHOD.parse([*args, "--dataset", "test/box-v0", "--eval-env", "Pendulum-v1"]))
    for run in (tmp_path / "driftql").glob("*/0-bad"):  # nothing was trained
        assert not [e for e in _lines(run) if "train/updates" in e]


def _crafted(root: Path, marker: Path) -> None:
    """A Minari dataset whose eval_env_spec would run ``touch marker`` in Minari's
    recover_environment (entry_point os:system)."""
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    ep = Episode(
        np.zeros((4, 4), np.float32), np.zeros((3, 1), np.float32), np.zeros(3, np.float32),
        np.zeros(3, np.bool_), np.array([False, False, True]),
    )  # fmt: skip
    save_minari([ep], "test/crafted-v0", observation_space=space,
                action_space=gym.spaces.Box(-3.0, 3.0, (1,), np.float32), root=root)  # fmt: skip
    path = minari_dataset_dir("test/crafted-v0", root) / "data" / "metadata.json"
    meta = json.loads(path.read_text())
    spec = json.loads(gym.spec("InvertedPendulum-v5").to_json())
    spec.update(entry_point="os:system", kwargs={"command": f"touch {marker}"})
    meta["eval_env_spec"] = json.dumps(spec)
    path.write_text(json.dumps(meta))


def test_a_crafted_eval_env_spec_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "ran"
    _crafted(tmp_path / "data", marker)
    argv = ["driftql", "--dataset", "test/crafted-v0", "--minari-root", str(tmp_path / "data"),
            "--root", str(tmp_path), *SHORT]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "test/crafted-v0" in err[0]
    assert "entry point 'os:system'" in err[0]
    assert "--eval-env" in err[0]
    assert not marker.exists()
    # The environment passed explicitly is used instead; the crafted spec is not read.
    run = METHOD.train(
        METHOD.parse([*argv[1:], "--eval-env", "InvertedPendulum-v5", "--algo", "bc",
                      "--total-steps", "20"])
    )  # fmt: skip
    assert [e["step"] for e in _lines(run) if "eval/return" in e] == [0, 20]
    assert not marker.exists()


def test_task_id_and_eval_env_belong_to_one_kind_of_data(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--task-id 3 is for OGBench data"):
        METHOD.parse(["--dataset", "local/hopper/medium-v0", "--task-id", "3"])
    with pytest.raises(UsageError, match=r"--eval-env is for Minari data"):
        METHOD.parse(["--dataset", "x/cube-single-play-v0.npz", "--eval-env", "Hopper-v5"])


def test_ogbench_rewards_are_checked_and_said_to_be_unused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An OGBench file's own 'rewards' key: NaN is an error, else the log says once that the
    rewards come from the task (the OGBench environment is stood in for by Pendulum-v1)."""
    import driftql.data
    import driftql.evaluation

    # The trainer imports these when it loads the data, so patch them where they live.
    monkeypatch.setattr(
        driftql.evaluation,
        "make_ogbench_env",
        lambda task, task_id: gym.make("Pendulum-v1", max_episode_steps=5),
    )
    monkeypatch.setattr(
        driftql.data,
        "ogbench_relabel",
        lambda raw, env, env_id: (
            (np.zeros(len(raw["terminals"]) - int(raw["terminals"].sum()), np.float32),) * 2
        ),
    )
    rng = np.random.default_rng(0)
    n = 40
    terminals = np.zeros(n, np.bool_)
    terminals[[19, 39]] = True
    data = {
        "observations": rng.standard_normal((n, 3)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, 1)).astype(np.float32),
        "terminals": terminals,
        "rewards": np.zeros(n, np.float32),
    }
    good = tmp_path / "cube-single-play-v0.npz"
    np.savez(good, **data)
    args = ["--root", str(tmp_path), "--algo", "bc", *SHORT, "--total-steps", "10"]
    with caplog.at_level(logging.INFO, logger="rlworks"):
        METHOD.train(METHOD.parse(["--dataset", str(good), *args]))
    said = [r.getMessage() for r in caplog.records if "'rewards' key is not used" in r.getMessage()]
    assert len(said) == 1
    assert "rewards come from the task (cube-single-singletask-v0)" in said[0]
    data["rewards"][7] = np.nan
    bad = tmp_path / "bad" / "cube-single-play-v0.npz"
    bad.parent.mkdir()
    np.savez(bad, **data)
    with pytest.raises(UsageError, match=r"key 'rewards' has NaN or inf \(first at index \(7,\)\)"):
        METHOD.train(METHOD.parse(["--dataset", str(bad), *args, "--name", "bad"]))


def test_the_data_commands_terminal_shows_what_matters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Without --quiet and with stderr not a terminal: no progress bar, no Minari advice on
    metadata, and MuJoCo's warnings (HalfCheetah's model warns at every build) go to the log
    once instead of MUJOCO_LOG.TXT in the working directory."""
    monkeypatch.chdir(tmp_path)
    args = ["--kind", "minari", "--env", "HalfCheetah-v5", "--dataset-id", "t/hc/random-v0",
            "--steps", "20", "--ref-episodes", "1", "--ref-max-score", "1000",
            "--minari-root", str(tmp_path / "data")]  # fmt: skip
    DATA.train(DATA.parse(args))
    err = capfd.readouterr().err
    assert "step/s" not in err, err  # tqdm's bar
    assert "\r" not in err, err
    assert "is set to None" not in err, err
    assert "settotalmass" not in err.replace("MuJoCo: ", ""), err
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_data_command_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^--episodes must be an int >= 1, got 0$"):
        DATA.train(DATA.parse(["--out", str(tmp_path / "x.npz"), "--episodes", "0", "--quiet"]))
    ogbench_with_minari_options = ["--out", str(tmp_path / "x.npz"), "--steps", "5",
                                   "--minari-root", str(tmp_path), "--quiet"]  # fmt: skip
    with pytest.raises(UsageError, match=r"--steps, --minari-root: option\(s\) of --kind minari"):
        DATA.train(DATA.parse(ogbench_with_minari_options))
    with pytest.raises(UsageError, match=r"--out: option\(s\) of --kind ogbench"):
        DATA.train(DATA.parse(["--kind", "minari", "--out", str(tmp_path / "x.npz")]))


def test_an_existing_dataset_is_one_line_naming_overwrite(
    tmp_path: Path, hopper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["driftql-data", "--kind", "minari", "--env", "Hopper-v5", "--dataset-id",
            "test/hopper/random-v0", "--steps", "10", "--ref-max-score", "1",
            "--minari-root", str(hopper), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rl-train: --dataset-id test/hopper/random-v0: ")
    assert err[0].endswith("already exists; pass --overwrite to replace it")
    assert "overwrite=True" not in err[0]
