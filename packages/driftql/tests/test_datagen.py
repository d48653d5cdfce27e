"""Dataset generation (OGBench oracles, Minari), checked against OGBench's and Minari's own readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from driftql.data import load_minari_episodes, load_ogbench, read_ogbench_npz
from driftql.datagen import (
    MinariGenConfig,
    OGBenchGenConfig,
    generate_minari,
    generate_ogbench,
    ogbench_val_path,
    rollout,
    scene_episode_is_healthy,
)
from driftql.evaluation import (
    evaluate_ogbench,
    minari_reference_scores,
    normalized_score,
    ogbench_env_id,
)

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- OGBench


def _flat(episodes):
    """Transitions of the episodes, concatenated as OGBench's regular dataset lays them out."""
    return {
        "observations": np.concatenate([e.observations[:-1] for e in episodes]),
        "next_observations": np.concatenate([e.observations[1:] for e in episodes]),
        "actions": np.concatenate([e.actions for e in episodes]),
        "rewards": np.concatenate([e.rewards for e in episodes]),
        "masks": 1.0 - np.concatenate([e.terminations for e in episodes]),
    }


@pytest.mark.slow
def test_cube_play_data_roundtrips_through_ogbench(tmp_path: Path) -> None:
    ogbench = pytest.importorskip("ogbench")
    cfg = OGBenchGenConfig(
        env="cube-single", num_episodes=2, val_episodes=1, max_episode_steps=60, seed=3
    )
    path = tmp_path / "cube-single-play-v0.npz"
    report = generate_ogbench(cfg, path, progress=False)
    assert report.paths == (path, ogbench_val_path(path))
    assert (report.steps, report.episodes) == (180, 3)
    raw = read_ogbench_npz(path)
    assert raw["observations"].shape == (120, 28)
    assert raw["actions"].shape == (120, 5)
    assert raw["qpos"].shape[0] == raw["qvel"].shape[0] == 120
    assert np.flatnonzero(raw["terminals"]).tolist() == [59, 119]
    assert (np.abs(raw["actions"]) <= 1).all()

    # Put the cube on task 1's target in some rows, so that the relabelled data has successes
    # and terminal transitions; OGBench's reader is the ground truth for the layout.
    name = "cube-single-play-singletask-task1-v0"
    env = ogbench.make_env_and_datasets(name, env_only=True)
    env.reset()
    target = env.unwrapped._data.mocap_pos[0].copy()
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["qpos"][[5, 6, 30, 58, 70], 14:17] = target
    np.savez_compressed(path, **arrays)
    _, train, _ = ogbench.make_env_and_datasets(name, dataset_path=str(path))
    episodes = load_ogbench(path, env_id=ogbench_env_id("cube-single", 1), env=env)
    ours = _flat(episodes)
    for key in ("observations", "next_observations", "actions", "rewards", "masks"):
        np.testing.assert_array_equal(ours[key], train[key], err_msg=key)
    assert (train["masks"] == 0).sum() == 5
    assert len(episodes) == 2 + 5 - 1  # row 58 is the last transition of its trajectory


@pytest.mark.slow
def test_puzzle_play_data_is_reproducible_and_loads(tmp_path: Path) -> None:
    ogbench = pytest.importorskip("ogbench")
    cfg = OGBenchGenConfig(
        env="puzzle-3x3", num_episodes=1, val_episodes=1, max_episode_steps=40, seed=0,
        p_random_action=0.3,
    )  # fmt: skip
    a, b = tmp_path / "a" / "puzzle-3x3-play-v0.npz", tmp_path / "b" / "puzzle-3x3-play-v0.npz"
    generate_ogbench(cfg, a, progress=False)
    state = np.random.get_state()  # noqa: NPY002
    generate_ogbench(cfg, b, progress=False)
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # noqa: NPY002
    raw_a, raw_b = read_ogbench_npz(a), read_ogbench_npz(b)
    assert raw_a.keys() == raw_b.keys() == {
        "observations", "actions", "terminals", "qpos", "qvel", "button_states",
    }  # fmt: skip
    for key in raw_a:
        np.testing.assert_array_equal(raw_a[key], raw_b[key], err_msg=key)
    name = "puzzle-3x3-play-singletask-task4-v0"
    env, train, _ = ogbench.make_env_and_datasets(name, dataset_path=str(a))
    ours = _flat(load_ogbench(a, env_id=ogbench_env_id("puzzle-3x3", 4), env=env))
    for key in ("observations", "next_observations", "actions", "rewards", "masks"):
        np.testing.assert_array_equal(ours[key], train[key], err_msg=key)


@pytest.mark.slow
def test_scene_play_data_uses_every_oracle_retries_unhealthy_episodes_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ogbench = pytest.importorskip("ogbench")
    from driftql import datagen

    targets: list[str] = []
    make_oracles = datagen._make_oracles

    def spying_oracles(cfg, env):
        oracles = make_oracles(cfg, env)
        for name, oracle in oracles.items():
            reset = oracle.reset
            oracle.reset = lambda *a, _n=name, _r=reset, **k: (targets.append(_n), _r(*a, **k))[1]
        return oracles

    checks: list[int] = []

    def first_one_unhealthy(qpos):
        checks.append(len(qpos))
        return len(checks) > 1

    monkeypatch.setattr(datagen, "_make_oracles", spying_oracles)
    monkeypatch.setattr(datagen, "scene_episode_is_healthy", first_one_unhealthy)
    cfg = OGBenchGenConfig(env="scene", num_episodes=1, val_episodes=1, max_episode_steps=400)
    path = tmp_path / "scene-play-v0.npz"
    report = generate_ogbench(cfg, path, progress=False)
    # The rejected first episode is collected again; the files hold only the kept two.
    assert (report.rejected_episodes, report.episodes, report.steps) == (1, 2, 800)
    assert checks == [400, 400, 400]
    assert set(targets) == {"cube", "button", "drawer", "window"}
    raw = read_ogbench_npz(path)
    assert raw["observations"].shape == (400, 40)
    assert raw["button_states"].shape == (400, 2)
    name = "scene-play-singletask-task2-v0"
    env, train, _ = ogbench.make_env_and_datasets(name, dataset_path=str(path))
    ours = _flat(load_ogbench(path, env_id=ogbench_env_id("scene", 2), env=env))
    for key in ("observations", "next_observations", "actions", "rewards", "masks"):
        np.testing.assert_array_equal(ours[key], train[key], err_msg=key)


def test_scene_health_check_by_hand() -> None:
    qpos = np.zeros((3, 25))
    qpos[:, 14:17] = [0.4, 0.0, 0.02]  # cube on the table, in view
    assert scene_episode_is_healthy(qpos)
    right = qpos.copy()
    right[1, 15] = 0.29  # too far right
    assert not scene_episode_is_healthy(right)
    left = qpos.copy()
    left[2, 15:17] = [-0.3, 0.02]  # too far left, on the table
    assert not scene_episode_is_healthy(left)
    left[2, 16] = 0.07  # ... but inside the drawer: fine
    assert scene_episode_is_healthy(left)
    left[2, 16] = 0.081
    assert not scene_episode_is_healthy(left)


def test_ogbench_refuses_to_overwrite(tmp_path: Path) -> None:
    pytest.importorskip("ogbench")
    path = tmp_path / "x.npz"
    ogbench_val_path(path).write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match=r"x-val.npz already exist"):
        generate_ogbench(OGBenchGenConfig(num_episodes=1), path, progress=False)
    assert ogbench_val_path(path).read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"env": "scene-2"}, "no scripted play oracle"),
        ({"env": "cube-sextuple"}, "no scripted play oracle"),
        ({"num_episodes": 0}, "num_episodes must be an int >= 1"),
        ({"num_episodes": True}, "num_episodes must be an int >= 1"),
        ({"val_episodes": 0}, "always reads a -val.npz"),
        ({"val_episodes": -2}, "val_episodes must be an int >= -1"),
        ({"p_random_action": 1.5}, r"p_random_action must be a finite number in \[0, 1\]"),
        ({"noise": float("nan")}, "OGBenchGenConfig.noise must be a finite number >= 0"),
        ({"max_episode_steps": 1}, "max_episode_steps must be an int >= 2"),
    ],
)
def test_ogbench_config_errors(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        OGBenchGenConfig(**kwargs)


def test_ogbench_names() -> None:
    assert OGBenchGenConfig(num_episodes=35).num_val_episodes == 3
    assert OGBenchGenConfig(num_episodes=5).num_val_episodes == 1
    assert ogbench_env_id("cube-single", 2) == "cube-single-singletask-task2-v0"
    assert ogbench_env_id("puzzle-3x3-play-v0", 5) == "puzzle-3x3-singletask-task5-v0"
    assert ogbench_env_id("scene", 0) == "scene-singletask-v0"
    with pytest.raises(ValueError, match=r"task ids are 1\.\.5"):
        ogbench_env_id("cube-single", 6)
    assert ogbench_val_path("d/cube.npz") == Path("d/cube-val.npz")


@pytest.mark.slow
def test_ogbench_success_on_its_own_env() -> None:
    pytest.importorskip("ogbench")
    result = evaluate_ogbench(
        lambda ob: np.zeros(5, np.float32), "cube-single", task_ids=(1, 3), episodes=2
    )
    assert result.success_rate == 0.0  # a still arm never moves the cube to its target
    assert result.lengths == {1: (200, 200), 3: (200, 200)}  # cube-single's time limit
    metrics = result.metrics()
    assert metrics["eval/success"] == 0.0
    assert metrics["eval/return"] == -200.0  # one unsolved subtask: -1 per step
    assert set(metrics) >= {"eval/success_task1", "eval/success_task3"}


# ----------------------------------------------------------------------------- Minari


def test_minari_dataset_roundtrip_and_scores(tmp_path: Path) -> None:
    minari = pytest.importorskip("minari")
    cfg = MinariGenConfig(
        env_id="Hopper-v5", dataset_id="test/hopper/random-v0", num_steps=150, seed=4,
        ref_episodes=2,
    )  # fmt: skip
    report = generate_minari(cfg, None, ref_max_score=3234.3, root=tmp_path, progress=False)
    assert report.steps == 150
    episodes = load_minari_episodes(cfg.dataset_id, root=tmp_path)
    assert sum(ep.num_steps for ep in episodes) == 150
    assert len(episodes) == report.episodes
    assert episodes[-1].terminations[-1] or episodes[-1].truncations[-1]

    import gymnasium as gym

    with gym.make("Hopper-v5") as env:
        again = rollout(env, None, num_steps=150, seed=4)
    for ep, ref in zip(episodes, again, strict=True):  # what was collected is what is stored
        np.testing.assert_array_equal(ep.observations, ref.observations)
        np.testing.assert_array_equal(ep.actions, ref.actions)
        np.testing.assert_array_equal(ep.rewards, ref.rewards)

    lo, hi = minari_reference_scores(cfg.dataset_id, root=tmp_path)
    assert hi == 3234.3
    assert lo == report.ref_min_score
    assert -100 < lo < 100  # a random hopper falls within a few dozen steps
    dataset = minari.MinariDataset(tmp_path / cfg.dataset_id / "data")
    returns = np.array([lo, hi, 1000.0])
    np.testing.assert_allclose(
        normalized_score(returns, lo, hi), 100 * minari.get_normalized_score(dataset, returns)
    )
    np.testing.assert_allclose(normalized_score([lo, hi], lo, hi), [0.0, 100.0])

    with pytest.raises(FileExistsError, match="already exists"):
        generate_minari(cfg, None, ref_max_score=1.0, root=tmp_path, progress=False)


def test_minari_policy_and_expert_scores(tmp_path: Path) -> None:
    pytest.importorskip("minari")
    zero = lambda ob: np.zeros(3, np.float32)  # noqa: E731
    cfg = MinariGenConfig(
        env_id="Hopper-v5", dataset_id="test/hopper/zero-v0", num_steps=60, ref_episodes=1,
        p_random_action=0.5,
    )  # fmt: skip
    report = generate_minari(cfg, zero, root=tmp_path, progress=False)
    episodes = load_minari_episodes(cfg.dataset_id, root=tmp_path)
    actions = np.concatenate([ep.actions for ep in episodes])
    random_rows = (actions != 0).any(axis=1)
    assert 0.25 < random_rows.mean() < 0.75  # p_random_action = 0.5 of 60 steps
    assert report.ref_max_score == minari_reference_scores(cfg.dataset_id, root=tmp_path)[1]
    assert report.ref_max_score != report.ref_min_score
    with pytest.raises(ValueError, match="needs an expert policy or an explicit ref_max_score"):
        generate_minari(
            MinariGenConfig(dataset_id="test/x/y-v0"), None, root=tmp_path, progress=False
        )
