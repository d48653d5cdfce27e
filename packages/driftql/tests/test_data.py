"""Loaders, degradation and the offline buffer of driftql.data, on hand-made datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from driftql.data import (
    DatasetError,
    dataset_fingerprint,
    degrade,
    fit_to_env,
    load_dataset,
    load_ogbench,
    make_offline_buffer,
    ogbench_episodes,
    read_ogbench_npz,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from rl_buffers.offline import ActionScale, Episode

torch.set_num_threads(1)


def _rows(lengths: list[int], obs_dim: int = 3, action_dim: int = 2) -> dict[str, np.ndarray]:
    """OGBench rows: trajectory k has lengths[k] rows; row r's observation is r + 0.5 * col."""
    n = sum(lengths)
    obs = np.arange(n, dtype=np.float32)[:, None] + 0.5 * np.arange(obs_dim, dtype=np.float32)
    actions = np.linspace(-0.9, 0.9, n * action_dim, dtype=np.float32).reshape(n, action_dim)
    terminals = np.zeros(n, dtype=bool)
    terminals[np.cumsum(lengths) - 1] = True
    qpos = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    return {"observations": obs, "actions": actions, "terminals": terminals, "qpos": qpos}


def _save(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez_compressed(path, **arrays)
    return path


def test_trajectories_become_episodes(tmp_path: Path) -> None:
    rows = _rows([3, 4])
    eps = load_ogbench(_save(tmp_path / "d.npz", rows))
    assert [ep.num_steps for ep in eps] == [2, 3]  # L rows -> L - 1 transitions
    assert [ep.episode_id for ep in eps] == [0, 1]
    np.testing.assert_array_equal(eps[0].observations, rows["observations"][0:3])
    np.testing.assert_array_equal(eps[1].observations, rows["observations"][3:7])
    np.testing.assert_array_equal(eps[0].actions, rows["actions"][0:2])  # row 2's action unused
    np.testing.assert_array_equal(eps[1].actions, rows["actions"][3:6])
    for ep in eps:
        assert not ep.rewards.any()
        assert not ep.terminations.any()
        assert ep.truncations.tolist() == [False] * (ep.num_steps - 1) + [True]
    assert [ep.num_steps for ep in load_dataset(str(tmp_path / "d.npz"))] == [2, 3]


def test_terminal_transitions_cut_trajectories() -> None:
    raw = read_ready(_rows([4, 4]))
    # Transitions in file order: trajectory 0 has t0 t1 t2, trajectory 1 has t0 t1 t2.
    rewards = np.array([-1, 0, -1, -1, -1, 0], np.float32)
    masks = np.array([1, 0, 1, 1, 1, 0], np.float32)
    eps = ogbench_episodes(raw, rewards=rewards, masks=masks)
    assert [ep.num_steps for ep in eps] == [2, 1, 3]
    assert [ep.episode_id for ep in eps] == [0, 0, 1]
    assert eps[0].terminations.tolist() == [False, True]
    assert eps[0].truncations.tolist() == [False, False]
    assert eps[1].terminations.tolist() == [False]
    assert eps[1].truncations.tolist() == [True]  # the trajectory's time limit
    assert eps[2].terminations.tolist() == [False, False, True]
    assert eps[2].truncations.tolist() == [False, False, False]  # terminal wins
    obs = raw["observations"]
    np.testing.assert_array_equal(eps[1].observations, obs[2:4])
    np.testing.assert_array_equal(eps[2].observations, obs[4:8])
    np.testing.assert_array_equal(np.concatenate([e.rewards for e in eps]), rewards)


def read_ready(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**rows, "terminals": rows["terminals"].astype(bool)}


def test_relabel_lengths_are_checked() -> None:
    with pytest.raises(DatasetError, match=r"rewards has shape \(2,\), expected \(3,\)"):
        ogbench_episodes(read_ready(_rows([4])), rewards=np.zeros(2), masks=np.ones(3))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: r.pop("terminals"), r"missing key\(s\) \['terminals'\]"),
        (lambda r: r.update(actions=r["actions"][:, 0]), r"'actions' has shape \(7,\)"),
        (lambda r: r.update(qpos=r["qpos"][:-1]), r"'qpos' has 6 rows, 'observations' has 7"),
        (
            lambda r: r["observations"].__setitem__((2, 1), np.nan),
            r"'observations' has NaN.*\(2, 1\)",
        ),
        (lambda r: r.update(terminals=r["terminals"] * 2), r"'terminals' must be 0/1"),
        (lambda r: r["terminals"].__setitem__(-1, False), r"ends inside a trajectory"),
        (lambda r: r["terminals"].__setitem__(3, True), r"single row"),
        (lambda r: r.update(observations=r["observations"].astype(str)), r"non-numeric"),
        # A 'rewards' key is not used (rewards come from the task) but is checked all the same.
        (
            lambda r: r.update(rewards=np.array([0, 1, np.nan, 0, 0, 0, 0.0])),
            r"'rewards' has NaN.*\(2,\)",
        ),
        (lambda r: r.update(rewards=np.zeros(6)), r"'rewards' has 6 rows, 'observations' has 7"),
        (lambda r: r.update(rewards=np.zeros((7, 2))), r"'rewards' has shape \(7, 2\)"),
    ],
)
def test_bad_files_are_rejected_by_name(tmp_path: Path, change, match) -> None:
    rows = _rows([3, 4])
    rows["terminals"] = rows["terminals"].astype(np.float32)
    change(rows)
    with pytest.raises(DatasetError, match=match):
        read_ogbench_npz(_save(tmp_path / "bad.npz", rows))


def test_truncated_and_corrupt_files(tmp_path: Path) -> None:
    good = _save(tmp_path / "good.npz", _rows([50, 50]))
    data = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut.npz: cannot read \(truncated or corrupt"):
        read_ogbench_npz(tmp_path / "cut.npz")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside a compressed member: CRC or zlib error
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(DatasetError, match=r"flip.npz: cannot read"):
        read_ogbench_npz(tmp_path / "flip.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DatasetError, match=r"text.npz: cannot read"):
        read_ogbench_npz(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_ogbench_npz(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------- degrade


def _episodes(lengths: list[int], action_dim: int = 3, seed: int = 0) -> list[Episode]:
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(lengths):
        out.append(
            Episode(
                observations=rng.normal(size=(n + 1, 4)).astype(np.float32),
                actions=rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32),
                rewards=rng.normal(size=n).astype(np.float32),
                terminations=np.zeros(n, bool),
                truncations=np.eye(1, n, n - 1, dtype=bool)[0],
                episode_id=i,
            )
        )
    return out


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    p=st.floats(0.0, 1.0),
    mode=st.sampled_from(["uniform", "gaussian"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_degrade_invariants(lengths: list[int], p: float, mode, seed: int) -> None:
    eps = _episodes(lengths)
    before = [ep.actions.copy() for ep in eps]
    out = degrade(eps, p, mode, torch.Generator().manual_seed(seed), noise_std=0.5)
    again = degrade(eps, p, mode, torch.Generator().manual_seed(seed), noise_std=0.5)
    for ep, new, rep, old in zip(eps, out, again, before, strict=True):
        np.testing.assert_array_equal(ep.actions, old)  # the input is untouched
        np.testing.assert_array_equal(new.actions, rep.actions)  # a seed gives one result
        assert new.actions.shape == old.shape
        assert new.actions.dtype == old.dtype
        assert (np.abs(new.actions) <= 1.0).all()
        for key in ("observations", "rewards", "terminations", "truncations"):
            assert getattr(new, key) is getattr(ep, key)
        changed = (new.actions != old).any(axis=1)
        if p == 0.0:
            assert not changed.any()
        if p == 1.0:
            assert changed.all()


def test_degrade_rate_and_distribution() -> None:
    eps = _episodes([5000, 5000], action_dim=2)
    out = degrade(eps, 0.3, "uniform", torch.Generator().manual_seed(1))
    old = np.concatenate([e.actions for e in eps])
    new = np.concatenate([e.actions for e in out])
    changed = (new != old).any(axis=1)
    # Binomial(10000, 0.3): standard deviation 46; 5 of them is a failure with prob ~1e-6.
    assert abs(changed.sum() - 3000) < 5 * 46
    assert abs(new[changed].mean()) < 0.05  # uniform on [-1, 1]: mean 0, std 0.58
    assert abs(new[changed].std() - 1 / np.sqrt(3)) < 0.03
    noisy = degrade(eps, 1.0, "gaussian", torch.Generator().manual_seed(2), noise_std=1e-3)
    delta = np.concatenate([e.actions for e in noisy]) - old
    assert 0.9e-3 < delta.std() < 1.1e-3


def test_degrade_bad_arguments() -> None:
    eps = _episodes([3])
    g = torch.Generator()
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        degrade(eps, 1.5, "uniform", g)
    with pytest.raises(ValueError, match="mode must be"):
        degrade(eps, 0.5, "random", g)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noise_std"):
        degrade(eps, 0.5, "gaussian", g, noise_std=0.0)
    ints = [eps[0]._replace(actions=np.zeros((3, 2), np.int64))]
    with pytest.raises(ValueError, match="expected floating actions"):
        degrade(ints, 0.5, "uniform", g)


# ----------------------------------------------------------------------------- buffer


def test_buffer_samples_are_dataset_transitions() -> None:
    raw = read_ready(_rows([4, 5, 3]))
    rewards = np.arange(9, dtype=np.float32)
    masks = np.ones(9, np.float32)
    masks[4] = 0.0  # trajectory 1's second transition is terminal
    eps = ogbench_episodes(raw, rewards=rewards, masks=masks)
    buffer = make_offline_buffer(eps, device="cpu")
    assert len(buffer) == 9
    table = {}
    for ep in eps:
        for t in range(ep.num_steps):
            key = float(ep.observations[t, 0])
            table[key] = (
                ep.actions[t],
                ep.rewards[t],
                ep.observations[t + 1],
                not ep.terminations[t],
            )
    batch = buffer.sample(256, torch.Generator().manual_seed(0))
    assert batch.obs.shape == (256, 3)
    assert batch.action.shape == (256, 2)
    assert batch.obs.dtype == batch.action.dtype == torch.float32
    seen = set()
    for i in range(256):
        action, reward, next_obs, not_done = table[float(batch.obs[i, 0])]
        np.testing.assert_array_equal(batch.action[i].numpy(), action)
        assert float(batch.reward[i]) == reward
        np.testing.assert_array_equal(batch.next_obs[i].numpy(), next_obs)
        assert float(batch.not_done[i]) == float(not_done)
        seen.add(float(batch.obs[i, 0]))
    assert len(seen) == 9  # every transition is drawn (256 uniform draws over 9)


def test_buffer_rejects_bad_episodes() -> None:
    eps = _episodes([3, 4])
    with pytest.raises(DatasetError, match="no episodes"):
        make_offline_buffer([], device="cpu")
    big = [eps[0]._replace(actions=eps[0].actions * 3)]
    with pytest.raises(DatasetError, match=r"key 'actions' reaches \|a\| = 2"):
        make_offline_buffer(big, device="cpu")
    other = _episodes([2], action_dim=5)
    with pytest.raises(DatasetError, match=r"episode 1: \(obs, action\) sizes \(4, 5\) differ"):
        make_offline_buffer([eps[0], other[0]], device="cpu")
    image = [eps[0]._replace(observations=np.zeros((4, 2, 2), np.float32))]
    with pytest.raises(DatasetError, match=r"expected \(T \+ 1, O\) flat vectors"):
        make_offline_buffer(image, device="cpu")


def test_fingerprint_tracks_content() -> None:
    eps = _episodes([3, 4])
    same = _episodes([3, 4])
    assert dataset_fingerprint(eps) == dataset_fingerprint(same)
    changed = degrade(eps, 1.0, "uniform", torch.Generator().manual_seed(0))
    assert dataset_fingerprint(changed) != dataset_fingerprint(eps)
    assert dataset_fingerprint(eps[:1]) != dataset_fingerprint(eps)


def test_a_rewards_key_is_read_and_kept_apart(tmp_path: Path) -> None:
    rows = _rows([3, 4])
    rows["rewards"] = np.arange(7, dtype=np.float64)
    raw = read_ogbench_npz(_save(tmp_path / "r.npz", rows))
    assert raw["rewards"].dtype == np.float32
    # Not used by the loaders: rewards are zeros without a task, the task's with one.
    assert all((ep.rewards == 0).all() for ep in ogbench_episodes(raw))


# ----------------------------------------------------------------------------- the env


def _box(*shape: int, low: float = -np.inf, high: float = np.inf) -> gym.spaces.Box:
    return gym.spaces.Box(low, high, shape, np.float32)


def _episode(obs_dim: int, actions: np.ndarray) -> Episode:
    n = len(actions)
    return Episode(np.zeros((n + 1, obs_dim), np.float32), actions.astype(np.float32),
                   np.zeros(n, np.float32), np.zeros(n, bool), np.eye(1, n, n - 1, dtype=bool)[0])  # fmt: skip


def test_fit_to_env_names_both_sides_of_a_mismatch() -> None:
    ep = _episode(3, np.array([[1.5], [-3.0]]))
    kw = {"dataset": "d", "env_id": "E-v0"}
    with pytest.raises(DatasetError, match=r"d \(episode 0\) has observations of shape \(3,\), "
                       r"the evaluation environment E-v0 observes \(20,\)"):  # fmt: skip
        fit_to_env([ep], observation_space=_box(20), action_space=_box(1, low=-3, high=3), **kw)
    with pytest.raises(DatasetError, match=r"has actions of shape \(1,\), .* takes \(2,\)"):
        fit_to_env([ep], observation_space=_box(3), action_space=_box(2, low=-1, high=1), **kw)
    with pytest.raises(DatasetError, match=r"d records actions in \[-3, 3\], .* takes \[-2, 2\]"):
        fit_to_env([ep], observation_space=_box(3), action_space=_box(1, low=-2, high=2),
                   dataset_action_space=_box(1, low=-3, high=3), **kw)  # fmt: skip
    # The dataset's box wins; without one (OGBench), the environment's; unbounded: identity.
    scale = fit_to_env([ep], observation_space=_box(3), action_space=_box(1, low=-3, high=3),
                       dataset_action_space=_box(1, low=-3, high=3), **kw)  # fmt: skip
    assert scale.describe() == "[-3, 3]"
    unbounded = fit_to_env([ep], observation_space=_box(3), action_space=_box(1),
                           dataset_action_space=_box(1), **kw)  # fmt: skip
    assert unbounded.is_identity


def test_unit_action_env_maps_the_agents_box_onto_the_env() -> None:
    from driftql.evaluation import unit_action_env

    env = gym.make("Pendulum-v1")  # torque in [-2, 2]
    assert unit_action_env(env, ActionScale([-1.0], [1.0])) is env
    wrapped = unit_action_env(env, ActionScale([-2.0], [2.0]))
    assert (wrapped.action_space.low, wrapped.action_space.high) == (-1.0, 1.0)
    seen: list[np.ndarray] = []
    inner = env.unwrapped
    step = inner.step
    inner.step = lambda a: (seen.append(np.asarray(a)), step(a))[1]  # type: ignore[method-assign]
    wrapped.reset(seed=0)
    for u in (1.0, -0.25, 3.0):
        wrapped.step(np.array([u], np.float32))
    np.testing.assert_allclose(np.concatenate(seen), [2.0, -0.5, 2.0])  # clipped onto the box
    wrapped.close()


def test_quiet_ogbench_removes_root_handlers_added_inside() -> None:
    import logging

    from driftql.evaluation import quiet_ogbench

    root = logging.getLogger()
    before = list(root.handlers)
    with quiet_ogbench():
        logging.basicConfig()  # what absl does on dm_control's first log message
        root.addHandler(logging.NullHandler())
    assert root.handlers == before


def test_quiet_ogbench_hides_glfw_and_precision_warnings_only() -> None:
    import warnings

    from driftql.evaluation import quiet_ogbench

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_ogbench():
            gym.spaces.Box(-np.ones(2), np.ones(2), (2,), np.float32)  # float64 bounds
            warnings.warn("X11: The DISPLAY environment variable is missing", stacklevel=1)
            warnings.warn("something else", stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]


@pytest.mark.slow
def test_building_an_ogbench_env_keeps_the_terminal_quiet(tmp_path: Path) -> None:
    """Every log line once (dm_control's absl logging gives the root logger a handler), no
    GLFW display warning, no gymnasium precision warnings, no MUJOCO_LOG.TXT."""
    pytest.importorskip("ogbench")
    code = (
        "import logging, sys\n"
        "log = logging.getLogger('rlworks'); log.setLevel(logging.INFO)\n"
        "log.addHandler(logging.StreamHandler(sys.stderr))\n"
        "from driftql.evaluation import make_ogbench_env, ogbench_success\n"
        "env = make_ogbench_env('cube-single', 0, max_episode_steps=5)\n"
        "ogbench_success(lambda ob: env.action_space.sample() * 0, env, episodes=1, seed=0)\n"
        # OGBench builds its action space (float64 bounds) anew at every access; the wrapper
        # keeps the one built once, so the accesses of a trainer warn nothing.
        "spaces = [env.action_space for _ in range(3)]\n"
        "assert all(s is spaces[0] for s in spaces)\n"
        "log.info('a line of the run')\n"
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MUJOCO_GL")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert done.stderr.count("a line of the run") == 1, done.stderr
    assert "GLFW" not in done.stderr, done.stderr
    assert "DISPLAY" not in done.stderr, done.stderr
    assert "precision lowered" not in done.stderr, done.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
