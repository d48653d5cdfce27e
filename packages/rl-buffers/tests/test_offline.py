"""Minari datasets: round trips, datasets written by other tools, and rejection of bad data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rl_buffers.offline import (
    ActionScale,
    DatasetError,
    DatasetNotFoundError,
    Episode,
    fill_buffer,
    load_minari,
    load_minari_goal_episodes,
    make_minari_env,
    minari_dataset_dir,
    minari_env_spec,
    minari_spaces,
    save_minari,
    validate_episode,
)

minari: Any = pytest.importorskip("minari")
h5py: Any = pytest.importorskip("h5py")
gym: Any = pytest.importorskip("gymnasium")

torch.set_num_threads(1)
# Minari asks for metadata the tiny test datasets do not need (eval env, env spec).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari")

META: dict[str, Any] = {
    "algorithm_name": "hand-made",
    "author": "rl-buffers tests",
    "author_email": "tests@example.invalid",
    "code_permalink": "https://example.invalid/rlworks",
    "description": "tiny test dataset",
}


def make_episode(n: int, seed: int, *, end: str = "truncated") -> Episode:
    rng = np.random.default_rng(seed)
    term = np.zeros(n, dtype=np.bool_)
    trunc = np.zeros(n, dtype=np.bool_)
    if end == "terminated":
        term[-1] = True
    elif end == "truncated":
        trunc[-1] = True
    return Episode(
        observations=rng.standard_normal((n + 1, 3)).astype(np.float32),
        actions=rng.uniform(-2, 2, (n, 1)).astype(np.float32),
        rewards=rng.standard_normal(n).astype(np.float32),
        terminations=term,
        truncations=trunc,
    )


def spaces() -> tuple[Any, Any]:
    obs_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    act_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    return obs_space, act_space


def save_tiny(root: Path | None, dataset_id: str = "tests/tiny-v0", **kwargs: Any) -> list[Episode]:
    episodes = [make_episode(4, 0, end="terminated"), make_episode(3, 1), make_episode(2, 2)]
    obs_space, act_space = spaces()
    save_minari(
        episodes,
        dataset_id,
        observation_space=obs_space,
        action_space=act_space,
        root=root,
        **META,
        **kwargs,
    )
    return episodes


def assert_same(a: Episode, b: Episode) -> None:
    for name in ("observations", "actions", "rewards", "terminations", "truncations"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


class RecordingBuffer:
    def __init__(self) -> None:
        self.rows: list[tuple[torch.Tensor, ...]] = []

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
    ) -> None:
        self.rows.append((obs, action, reward, next_obs, terminated, truncated))


# ----------------------------------------------------------------------------- round trip


def test_round_trip_with_metadata(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium/minari deprecation chatter
        episodes = save_tiny(
            tmp_path,
            env="Pendulum-v1",
            eval_env="Pendulum-v1",
            ref_min_score=-1500.0,
            ref_max_score=-150.0,
        )
    loaded = load_minari("tests/tiny-v0", root=tmp_path)
    assert [ep.episode_id for ep in loaded] == [0, 1, 2]
    for a, b in zip(episodes, loaded, strict=True):
        assert_same(a, b)
    assert loaded[0].observations.dtype == np.float32
    ds = minari.MinariDataset(tmp_path / "tests/tiny-v0/data")
    meta = ds.storage.metadata
    assert meta["algorithm_name"] == "hand-made"
    assert meta["author"] == {"rl-buffers tests"}
    assert meta["ref_min_score"] == -1500.0
    assert meta["ref_max_score"] == -150.0
    assert ds.env_spec.id == "Pendulum-v1"
    assert "eval_env_spec" in meta
    assert ds.total_steps == 9
    # Minari's own helpers work on it.
    assert minari.get_normalized_score(ds, np.array([-150.0]))[0] == pytest.approx(1.0)
    # No temporary directory is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["tests"]


def test_dataset_is_listed_and_loaded_from_minari_datasets_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    save_tiny(None)  # root=None: the environment variable decides
    assert "tests/tiny-v0" in minari.list_local_datasets()
    assert minari_dataset_dir("tests/tiny-v0") == tmp_path / "tests/tiny-v0"
    assert len(load_minari("tests/tiny-v0")) == 3
    assert len(minari.load_dataset("tests/tiny-v0")) == 3  # Minari's loader agrees


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    save_tiny(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_tiny(tmp_path)
    obs_space, act_space = spaces()
    save_minari(
        [make_episode(5, 9)],
        "tests/tiny-v0",
        observation_space=obs_space,
        action_space=act_space,
        root=tmp_path,
        overwrite=True,
        **META,
    )
    loaded = load_minari("tests/tiny-v0", root=tmp_path)
    assert len(loaded) == 1
    assert_same(loaded[0], make_episode(5, 9))


def test_failed_write_leaves_old_dataset_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_tiny(tmp_path)
    real = minari.create_dataset_from_buffers

    def crash_after_writing(**kwargs: Any) -> Any:
        real(**kwargs)
        raise RuntimeError("killed mid-save")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", crash_after_writing)
    with pytest.raises(RuntimeError, match="killed mid-save"):
        save_tiny(tmp_path, overwrite=True)
    with pytest.raises(RuntimeError, match="killed mid-save"):
        save_tiny(tmp_path, dataset_id="tests/other-v0")
    assert not (tmp_path / "tests/other-v0").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tests"]  # temp dirs removed
    assert len(load_minari("tests/tiny-v0", root=tmp_path)) == 3  # old dataset intact


def test_not_found_says_where_and_that_downloads_are_disabled(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="downloads are disabled") as info:
        load_minari("D4RL/door/human-v2", root=tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(ValueError, match="malformed dataset id"):
        load_minari("no version here!", root=tmp_path)


def test_ref_min_without_max_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ref_min_score was given without ref_max_score"):
        save_tiny(tmp_path, ref_min_score=0.0)


def test_save_rejects_episodes_that_do_not_match_spaces(tmp_path: Path) -> None:
    obs_space, act_space = spaces()
    bad = make_episode(3, 0)._replace(actions=np.zeros((3, 2), np.float32))
    with pytest.raises(DatasetError, match=r"episode 0: key 'actions' has per-step shape \(2,\)"):
        save_minari(
            [bad],
            "tests/bad-v0",
            observation_space=obs_space,
            action_space=act_space,
            root=tmp_path,
            **META,
        )
    assert not (tmp_path / "tests/bad-v0").exists()


# ----------------------------------------------------------------------------- other writers


def test_dataset_recorded_by_minari_data_collector_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("jax")  # minari.DataCollector needs jax (minari[create])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = minari.DataCollector(gym.make("Pendulum-v1", max_episode_steps=10), data_format="hdf5")
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    recorded_obs, recorded_act, recorded_rew = [obs], [], []
    for _ in range(25):  # two full episodes of 10 steps, then 5 steps of a third
        action = env.action_space.sample()
        obs, reward, terminated, truncated, _ = env.step(action)
        recorded_obs.append(obs)
        recorded_act.append(action)
        recorded_rew.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
            recorded_obs.append(obs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env.create_dataset(dataset_id="collector/pendulum-v0", **META)
    episodes = load_minari("collector/pendulum-v0")
    assert [ep.num_steps for ep in episodes] == [10, 10, 5]
    assert [bool(ep.truncations[-1]) for ep in episodes] == [True, True, True]
    flat_obs = np.concatenate([ep.observations for ep in episodes])
    np.testing.assert_allclose(flat_obs, np.stack(recorded_obs), rtol=0, atol=0)
    np.testing.assert_allclose(
        np.concatenate([ep.actions for ep in episodes]), np.stack(recorded_act)
    )
    np.testing.assert_allclose(
        np.concatenate([ep.rewards for ep in episodes]),
        np.asarray(recorded_rew, np.float32),
        rtol=1e-6,
    )


def write_h5py_goal_dataset(root: Path, dataset_id: str, lengths: list[int]) -> dict[str, Any]:
    """Write a goal-conditioned dataset with plain h5py + json, in Minari's on-disk layout."""
    from minari.serialization import serialize_space

    obs_space = gym.spaces.Dict(
        {
            "observation": gym.spaces.Box(-10, 10, (4,), np.float64),
            "achieved_goal": gym.spaces.Box(-10, 10, (2,), np.float64),
            "desired_goal": gym.spaces.Box(-10, 10, (2,), np.float64),
        }
    )
    act_space = gym.spaces.Discrete(4)
    data = root / dataset_id / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    truth: dict[str, Any] = {"episodes": [], "space_keys": list(obs_space.spaces)}
    with h5py.File(data / "main_data.hdf5", "w") as f:
        for i, n in enumerate(lengths):
            g = f.create_group(f"episode_{i}")
            g.attrs["id"] = i
            g.attrs["total_steps"] = n
            obs = {
                "observation": rng.standard_normal((n + 1, 4)),
                "achieved_goal": rng.standard_normal((n + 1, 2)),
                "desired_goal": np.repeat(rng.standard_normal((1, 2)), n + 1, axis=0),
            }
            og = g.create_group("observations")
            for k, v in obs.items():
                og.create_dataset(k, data=v)
            acts = rng.integers(0, 4, n)
            g.create_dataset("actions", data=acts)
            g.create_dataset("rewards", data=rng.standard_normal(n))
            g.create_dataset("terminations", data=np.zeros(n, dtype=np.bool_))
            trunc = np.zeros(n, dtype=np.bool_)
            trunc[-1] = True
            g.create_dataset("truncations", data=trunc)
            truth["episodes"].append((obs, acts))
    metadata = {
        "dataset_id": dataset_id,
        "total_episodes": len(lengths),
        "total_steps": sum(lengths),
        "data_format": "hdf5",
        "observation_space": serialize_space(obs_space),
        "action_space": serialize_space(act_space),
        "minari_version": minari.__version__,
    }
    (data / "metadata.json").write_text(json.dumps(metadata))
    return truth


def test_h5py_written_dict_dataset_loads_flattened(tmp_path: Path) -> None:
    truth = write_h5py_goal_dataset(tmp_path, "other/goals-v1", [3, 5])
    episodes = load_minari("other/goals-v1", root=tmp_path)
    assert len(episodes) == 2
    for ep, (obs, acts) in zip(episodes, truth["episodes"], strict=True):
        # Default order: the observation space's key order.
        expected = np.concatenate([obs[k] for k in truth["space_keys"]], axis=1)
        np.testing.assert_array_equal(ep.observations, expected)
        np.testing.assert_array_equal(ep.actions, acts)
        assert ep.observations.shape == (ep.num_steps + 1, 8)
    picked = load_minari("other/goals-v1", root=tmp_path, obs_keys=["desired_goal", "observation"])
    obs0 = truth["episodes"][0][0]
    np.testing.assert_array_equal(
        picked[0].observations, np.concatenate([obs0["desired_goal"], obs0["observation"]], axis=1)
    )
    with pytest.raises(DatasetError, match="key 'observations/velocity' is missing"):
        load_minari("other/goals-v1", root=tmp_path, obs_keys=["velocity"])


def test_h5py_written_dict_dataset_as_goal_episodes(tmp_path: Path) -> None:
    truth = write_h5py_goal_dataset(tmp_path, "other/goals-v1", [3, 5])
    goal_eps = load_minari_goal_episodes("other/goals-v1", root=tmp_path)
    for ep, (obs, acts) in zip(goal_eps, truth["episodes"], strict=True):
        n = len(acts)
        assert ep.observations.shape == (n + 1, 4)
        # (torch.testing.assert_close costs seconds on first use; exact equality is what we want.)
        assert torch.equal(ep.observations, torch.as_tensor(obs["observation"]))
        assert torch.equal(
            ep.achieved_goals, torch.as_tensor(obs["achieved_goal"], dtype=torch.float32)
        )
        assert torch.equal(
            ep.desired_goals, torch.as_tensor(obs["desired_goal"][:-1], dtype=torch.float32)
        )
        assert ep.desired_goals.shape == (n, 2)
        assert not ep.terminations.any()
        assert torch.equal(ep.actions, torch.as_tensor(acts))


# ----------------------------------------------------------------------------- validation


def corrupt(root: Path, dataset_id: str, edit: Any) -> None:
    with h5py.File(root / dataset_id / "data" / "main_data.hdf5", "a") as f:
        edit(f)


def test_missing_key_is_named(tmp_path: Path) -> None:
    save_tiny(tmp_path)
    corrupt(tmp_path, "tests/tiny-v0", lambda f: f["episode_1"].__delitem__("rewards"))
    with pytest.raises(DatasetError, match=r"'tests/tiny-v0', episode 1: missing key 'rewards'"):
        load_minari("tests/tiny-v0", root=tmp_path)
    # Episodes before the bad one are fine on their own.
    assert len(load_minari("tests/tiny-v0", root=tmp_path, episode_indices=[0, 2])) == 2


def test_missing_episode_group_is_named(tmp_path: Path) -> None:
    save_tiny(tmp_path)
    corrupt(tmp_path, "tests/tiny-v0", lambda f: f.__delitem__("episode_2"))
    with pytest.raises(DatasetError, match="episode 2: group 'episode_2' is missing"):
        load_minari("tests/tiny-v0", root=tmp_path)


def test_wrong_observation_length_is_rejected(tmp_path: Path) -> None:
    save_tiny(tmp_path)

    def drop_last_obs(f: Any) -> None:
        obs = f["episode_0/observations"][:-1]
        del f["episode_0/observations"]
        f["episode_0"].create_dataset("observations", data=obs)

    corrupt(tmp_path, "tests/tiny-v0", drop_last_obs)
    with pytest.raises(
        DatasetError,
        match=r"episode 0: key 'observations' has 4 rows, expected len\(actions\) \+ 1 = 5",
    ):
        load_minari("tests/tiny-v0", root=tmp_path)


@pytest.mark.parametrize("key", ["observations", "actions", "rewards"])
def test_nan_is_rejected(tmp_path: Path, key: str) -> None:
    save_tiny(tmp_path)

    def put_nan(f: Any) -> None:
        arr = f[f"episode_1/{key}"]
        value = arr[...]
        value.flat[1] = np.nan
        arr[...] = value

    corrupt(tmp_path, "tests/tiny-v0", put_nan)
    with pytest.raises(DatasetError, match=f"episode 1: key '{key}' has NaN or inf"):
        load_minari("tests/tiny-v0", root=tmp_path)


def test_truncated_file_is_rejected(tmp_path: Path) -> None:
    save_tiny(tmp_path)
    path = tmp_path / "tests/tiny-v0/data/main_data.hdf5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"tiny-v0.*not a readable HDF5 file.*truncated"):
        load_minari("tests/tiny-v0", root=tmp_path)
    path.write_bytes(data[:100])
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        load_minari("tests/tiny-v0", root=tmp_path)


def test_corrupt_metadata_is_rejected(tmp_path: Path) -> None:
    save_tiny(tmp_path)
    (tmp_path / "tests/tiny-v0/data/metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot open"):
        load_minari("tests/tiny-v0", root=tmp_path)


def test_space_mismatch_against_expected_shapes(tmp_path: Path) -> None:
    save_tiny(tmp_path)
    with pytest.raises(
        DatasetError, match=r"key 'observations' has per-step shape \(3,\), expected \(17,\)"
    ):
        load_minari("tests/tiny-v0", root=tmp_path, obs_shape=(17,))
    with pytest.raises(
        DatasetError, match=r"key 'actions' has per-step shape \(1,\), expected \(6,\)"
    ):
        load_minari("tests/tiny-v0", root=tmp_path, action_shape=(6,))


def test_validate_episode_rules() -> None:
    ep = make_episode(3, 0)
    where = "dataset 'x-v0', episode 7"
    args = (ep.observations, ep.actions, ep.rewards, ep.terminations, ep.truncations)
    assert validate_episode(*args, where=where).num_steps == 3
    term = np.array([True, False, False])
    with pytest.raises(DatasetError, match="episode 7: episode ends at step 0"):
        validate_episode(*args[:3], term, ep.truncations, where=where)
    with pytest.raises(DatasetError, match=r"key 'rewards' has shape \(2,\), expected \(3,\)"):
        validate_episode(*args[:2], ep.rewards[:2], *args[3:], where=where)
    with pytest.raises(DatasetError, match="no transitions"):
        validate_episode(
            ep.observations[:1],
            ep.actions[:0],
            ep.rewards[:0],
            ep.terminations[:0],
            ep.truncations[:0],
            where=where,
        )
    with pytest.raises(DatasetError, match="'terminations' must be boolean"):
        validate_episode(*args[:3], np.array([0, 2, 0]), ep.truncations, where=where)


# ----------------------------------------------------------------------------- fill_buffer


def test_fill_buffer_adds_every_transition_in_order(tmp_path: Path) -> None:
    episodes = save_tiny(tmp_path)
    # The last episode stops mid-way (neither flag): fill_buffer closes it as truncated.
    loaded = load_minari("tests/tiny-v0", root=tmp_path)
    loaded[2] = loaded[2]._replace(truncations=np.zeros(2, dtype=np.bool_))
    buf = RecordingBuffer()
    assert fill_buffer(buf, loaded) == 9
    assert len(buf.rows) == 9
    obs, action, reward, next_obs, _, _ = buf.rows[5]  # episode 1, step 1
    np.testing.assert_array_equal(obs.numpy(), episodes[1].observations[1])
    np.testing.assert_array_equal(next_obs.numpy(), episodes[1].observations[2])
    np.testing.assert_array_equal(action.numpy(), episodes[1].actions[1])
    assert reward.item() == pytest.approx(float(episodes[1].rewards[1]))
    flags = [(bool(r[4]), bool(r[5])) for r in buf.rows]
    assert flags == [(False, False)] * 3 + [(True, False)] + [(False, False)] * 2 + [
        (False, True),
        (False, False),
        (False, True),
    ]


def test_importing_rl_buffers_does_not_import_minari_or_h5py() -> None:
    code = (
        "import sys, rl_buffers, rl_buffers.offline, rl_buffers.goals, rl_buffers.multiagent;"
        "bad = [m for m in ('minari', 'h5py', 'jax') if m in sys.modules];"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr + result.stdout


# ----------------------------------------------------------------------------- with the core buffer


def test_fill_real_replay_buffer_extend_and_add_agree(tmp_path: Path) -> None:
    from rl_buffers import ReplayBuffer, TransitionSpec

    episodes = save_tiny(tmp_path)
    spec = TransitionSpec.continuous((3,), 1)
    loaded = load_minari("tests/tiny-v0", root=tmp_path, spec=spec)
    fast = ReplayBuffer(spec=spec, capacity=16)
    slow = ReplayBuffer(spec=spec, capacity=16)
    assert fill_buffer(fast, loaded) == 9
    assert fill_buffer(slow, loaded, per_step=True) == 9
    sf, ss = fast.storage.state_dict(), slow.storage.state_dict()
    for key in ("frames", "action", "reward"):
        assert torch.equal(sf[key], ss[key]), key
    for key in ("terminated", "truncated", "valid", "frame_ptr"):
        np.testing.assert_array_equal(sf[key], ss[key], err_msg=key)
    # Every sampled transition is one of the dataset's, with the right not_done.
    table = {
        (tuple(ep.observations[t]), tuple(ep.observations[t + 1])): (
            float(ep.rewards[t]),
            0.0 if ep.terminations[t] else 1.0,
        )
        for ep in episodes
        for t in range(ep.num_steps)
    }
    batch = fast.sample(128, torch.Generator().manual_seed(0))
    for o, no, r, nd in zip(batch.obs, batch.next_obs, batch.reward, batch.not_done, strict=True):
        reward, not_done = table[(tuple(o.numpy()), tuple(no.numpy()))]
        assert r.item() == pytest.approx(reward)
        assert nd.item() == not_done


def test_spec_mismatch_is_rejected(tmp_path: Path) -> None:
    from rl_buffers import TransitionSpec

    save_tiny(tmp_path)
    cases = [
        (TransitionSpec.discrete((3,), 4), "is not Discrete, but the spec has discrete actions"),
        (
            TransitionSpec.continuous((3,), 2),
            r"does not match the spec's continuous actions of shape \(2,\)",
        ),
        (
            TransitionSpec.continuous((5,), 1),
            r"episode 0: key 'observations' has per-step shape \(3,\), the spec expects \(5,\)",
        ),
        (
            TransitionSpec.continuous((3,), 1, obs_dtype=torch.uint8),
            "episode 0: key 'observations' is float32, the spec stores uint8 pixels",
        ),
    ]
    for spec, message in cases:
        with pytest.raises(DatasetError, match=message):
            load_minari("tests/tiny-v0", root=tmp_path, spec=spec)


# ----------------------------------------------------------------------------- action boxes


def test_action_scale_maps_a_box_onto_the_unit_box_and_back() -> None:
    scale = ActionScale([-3.0, 0.0], [3.0, 2.0])  # symmetric, and shifted
    box = np.array([[-3.0, 0.0], [0.0, 1.0], [3.0, 2.0], [1.5, 0.5]])
    unit = np.array([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0], [0.5, -0.5]])  # by hand
    np.testing.assert_array_equal(scale.to_unit(box), unit)
    np.testing.assert_array_equal(scale.to_box(unit), box)
    # An agent's action beyond [-1, 1] is clipped onto the box, never sent past it.
    np.testing.assert_array_equal(scale.to_box([[2.0, -2.0]]), [[3.0, 0.0]])
    assert scale.describe() == "[[-3.0, 0.0], [3.0, 2.0]]"
    assert ActionScale([-3.0], [3.0]).describe() == "[-3, 3]"
    assert not scale.is_identity
    assert ActionScale(-np.ones(2), np.ones(2)).is_identity


def test_episodes_to_unit_keeps_dtype_clips_rounding_and_names_what_is_out(tmp_path: Path) -> None:
    scale = ActionScale([-2.0], [2.0])
    ep = make_episode(5, 0)._replace(
        actions=np.array([[-2.0], [2.0001], [1.0], [0.0], [-1.0]], np.float32)
    )
    (out,) = scale.episodes_to_unit([ep], where="dataset 'x'")
    assert out.actions.dtype == np.float32
    np.testing.assert_allclose(out.actions[:, 0], [-1.0, 1.0, 0.5, 0.0, -0.5], atol=1e-7)
    np.testing.assert_array_equal(out.observations, ep.observations)  # only actions change
    far = ep._replace(actions=ep.actions * 2, episode_id=7)
    with pytest.raises(
        DatasetError, match=r"dataset 'x', episode 7: key 'actions' holds 4 .*\[-2, 2\]"
    ):
        scale.episodes_to_unit([far], where="dataset 'x'")
    # The unit box itself: the very same arrays (a resumed run's data fingerprint is unchanged).
    (same,) = ActionScale([-1.0], [1.0]).episodes_to_unit([ep], where="x")
    assert same.actions is ep.actions


def test_action_scale_rejects_boxes_it_cannot_map() -> None:
    with pytest.raises(DatasetError, match=r"unbounded"):
        ActionScale.from_space(gym.spaces.Box(-np.inf, np.inf, (2,)), where="dataset 'x'")
    with pytest.raises(DatasetError, match=r"high <= low"):
        ActionScale([1.0], [1.0])
    with pytest.raises(DatasetError, match=r"not a Box"):
        ActionScale.from_space(gym.spaces.Discrete(3))


def _collect(env_id: str, dataset_id: str, steps: int) -> None:
    """``steps`` random steps of ``env_id`` recorded by Minari's own DataCollector."""
    env = minari.DataCollector(gym.make(env_id), data_format="hdf5")
    env.action_space.seed(0)
    env.reset(seed=0)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env.create_dataset(dataset_id=dataset_id, **META)


@pytest.mark.parametrize(("env_id", "bound"), [("Pendulum-v1", 2.0), ("InvertedPendulum-v5", 3.0)])
def test_data_collector_datasets_with_wide_boxes_map_into_the_unit_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_id: str, bound: float
) -> None:
    pytest.importorskip("jax")  # minari.DataCollector needs jax (minari[create])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    _collect(env_id, "collector/wide-v0", 40)
    episodes = load_minari("collector/wide-v0")
    _, action_space = minari_spaces("collector/wide-v0")
    raw = np.concatenate([ep.actions for ep in episodes])
    assert np.abs(raw).max() > 1.0  # the env's units, not the agents'
    scale = ActionScale.from_space(action_space, where="collector/wide-v0")
    assert scale.describe() == f"[{-bound:g}, {bound:g}]"
    unit = np.concatenate([ep.actions for ep in scale.episodes_to_unit(episodes, where="x")])
    assert np.abs(unit).max() <= 1.0
    np.testing.assert_allclose(unit, raw / bound, atol=1e-6)
    np.testing.assert_allclose(scale.to_box(unit), raw, atol=1e-5)  # back at the env


# ----------------------------------------------------------------------------- environments


def test_make_minari_env_builds_the_registered_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("jax")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    _collect("InvertedPendulum-v5", "collector/ip-v0", 5)
    spec = minari_env_spec("collector/ip-v0")
    assert spec is not None
    assert spec["id"] == "InvertedPendulum-v5"
    with make_minari_env("collector/ip-v0") as env:
        assert env.spec.id == "InvertedPendulum-v5"
        assert env.spec.max_episode_steps == 1000


def _with_spec(root: Path, dataset_id: str, **changes: Any) -> None:
    """Rewrite the dataset's eval_env_spec: InvertedPendulum-v5's, with ``changes``."""
    base = gym.spec("InvertedPendulum-v5").to_json()
    spec = {**json.loads(base), **changes}
    path = minari_dataset_dir(dataset_id, root) / "data" / "metadata.json"
    meta = json.loads(path.read_text())
    meta["eval_env_spec"] = json.dumps(spec)
    path.write_text(json.dumps(meta))


RUN_COMMAND = {"entry_point": "os:system"}  # Minari's recover_environment: os.system(**kwargs)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({**RUN_COMMAND, "id": "Evil-v0"}, r"names 'Evil-v0', which is not registered"),
        (RUN_COMMAND, r"gives 'InvertedPendulum-v5' the entry point 'os:system'"),
        (
            {"additional_wrappers": [{"name": "W", "entry_point": "os:system", "kwargs": {}}]},
            r"adds wrappers \['W'\]",
        ),
        ({"kwargs": {"reset_noise_scale": 10.0}}, r"arguments \['reset_noise_scale'\]"),
    ],
)
def test_make_minari_env_runs_nothing_a_crafted_spec_names(
    tmp_path: Path, changes: dict[str, Any], reason: str
) -> None:
    marker = tmp_path / "ran"
    save_tiny(tmp_path, "tests/crafted-v0")
    if changes.get("entry_point") == "os:system":  # the command the crafted spec would run
        changes = {**changes, "kwargs": {"command": f"touch {marker}"}}
    _with_spec(tmp_path, "tests/crafted-v0", **changes)
    with pytest.raises(DatasetError, match=rf"'tests/crafted-v0': its eval_env_spec .*{reason}"):
        make_minari_env("tests/crafted-v0", root=tmp_path, flag="--eval-env ID")
    assert not marker.exists()
    with pytest.raises(DatasetError, match=r"pass --eval-env ID$"):
        make_minari_env("tests/crafted-v0", root=tmp_path, flag="--eval-env ID")


def test_make_minari_env_without_a_recorded_environment(tmp_path: Path) -> None:
    save_tiny(tmp_path, "tests/no-env-v0")
    assert minari_env_spec("tests/no-env-v0", root=tmp_path) is None
    with pytest.raises(DatasetError, match=r"records no environment.*pass --eval-env ID"):
        make_minari_env("tests/no-env-v0", root=tmp_path, flag="--eval-env ID")


def test_save_minari_does_not_print_minari_metadata_advice(tmp_path: Path) -> None:
    obs_space, act_space = spaces()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_minari([make_episode(3, 0)], "tests/quiet-v0", observation_space=obs_space,
                    action_space=act_space, root=tmp_path)  # fmt: skip
    assert not [w for w in caught if "is set to None" in str(w.message)]


def test_multi_agent_rewards_round_trip_with_reward_shape(tmp_path: Path) -> None:
    """One reward per agent: ``reward_shape=(N,)`` writes and reads ``(T, N)`` rewards; without
    it, or with another N, the episode is refused naming the key."""
    rng = np.random.default_rng(0)
    t, n = 4, 3
    ep = Episode(
        observations=rng.standard_normal((t + 1, n, 2)).astype(np.float32),
        actions=rng.uniform(0, 1, (t, n, 5)).astype(np.float32),
        rewards=rng.standard_normal((t, n)).astype(np.float32),
        terminations=np.zeros(t, dtype=np.bool_),
        truncations=np.array([False] * (t - 1) + [True]),
    )
    spaces = {
        "observation_space": gym.spaces.Box(-np.inf, np.inf, (n, 2), np.float32),
        "action_space": gym.spaces.Box(0.0, 1.0, (n, 5), np.float32),
    }
    with pytest.raises(DatasetError, match=r"key 'rewards' has shape \(4, 3\), expected \(4,\)"):
        save_minari([ep], "tests/multi-v0", root=tmp_path, **spaces, **META)
    save_minari([ep], "tests/multi-v0", root=tmp_path, reward_shape=(n,), **spaces, **META)
    (loaded,) = load_minari("tests/multi-v0", root=tmp_path, reward_shape=(n,))
    np.testing.assert_array_equal(loaded.rewards, ep.rewards)
    np.testing.assert_array_equal(loaded.observations, ep.observations)
    with pytest.raises(DatasetError, match=r"episode 0: key 'rewards' has shape \(4, 3\)"):
        load_minari("tests/multi-v0", root=tmp_path, reward_shape=(2,))
