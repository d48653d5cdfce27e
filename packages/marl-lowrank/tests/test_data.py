"""Datasets: the game's behaviour policies, atomic files, multi-agent Minari round trips, and
bad data refused with a DatasetError naming the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from marl_lowrank.config import GameConfig, SpreadConfig
from marl_lowrank.data import (
    MultiAgentBatches,
    agent_names,
    data_fingerprint,
    episodes_to_data,
    load_game_dataset,
    load_minari_multiagent,
    save_game_dataset,
    save_minari_multiagent,
)
from marl_lowrank.game import behaviour_probs, deterministic_metrics, make_game_dataset
from marl_lowrank.spread import collect_episodes, obs_dim
from rl_buffers.offline import DatasetError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_game_rewards_are_the_pair_sum_plus_bounded_noise() -> None:
    cfg = GameConfig(num_agents=5, sigma=0.2, dataset_size=500)
    data = make_game_dataset(cfg, seed=1)
    a = data.action[..., 0]
    noise = data.reward - a * a.sum(dim=-1, keepdim=True) / 5
    assert float(noise.abs().max()) <= 0.2 + 1e-6
    assert float(noise.abs().max()) > 0.15  # the noise is there
    assert bool(data.terminated.all())
    assert data.agents == agent_names(5)
    assert data_fingerprint(data) == data_fingerprint(make_game_dataset(cfg, seed=1))
    assert data_fingerprint(data) != data_fingerprint(make_game_dataset(cfg, seed=2))


def test_behaviour_policies_differ_as_documented() -> None:
    def mean_action(behaviour: str) -> float:
        cfg = GameConfig(num_agents=10, behaviour=behaviour, dataset_size=2000)  # pyright: ignore[reportArgumentType]
        return float(make_game_dataset(cfg, seed=0).action.mean())

    assert abs(mean_action("uniform")) < 0.05
    assert mean_action("noisy-good") > 0.4
    discrete = GameConfig(num_agents=6, num_actions=3, behaviour="biased")
    probs = behaviour_probs(discrete, torch.Generator().manual_seed(0))
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))
    assert float(probs.min()) > 0.0  # every action is covered


def test_exact_metrics_at_the_optimum_and_at_zero() -> None:
    ones = torch.ones(3, 8)
    assert deterministic_metrics(ones) == {"return": 1.0, "optimum_distance": 0.0, "nash_gap": 0.0}
    zeros = deterministic_metrics(torch.zeros(3, 8))
    assert zeros["return"] == 0.0
    assert zeros["optimum_distance"] == 1.0
    assert abs(zeros["nash_gap"] - 1 / 8) < 1e-7  # deviating to +-1 earns a_i^2 / N


def test_game_file_round_trip_is_atomic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    data = make_game_dataset(GameConfig(num_agents=3, num_actions=2, dataset_size=50), seed=0)
    path = tmp_path / "game.pt"
    save_game_dataset(data, path, overwrite=False)
    back = load_game_dataset(path, num_agents=3, num_actions=2)
    assert data_fingerprint(back) == data_fingerprint(data)
    assert back.meta["behaviour"] == "uniform"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["game.pt"]  # no temporary left
    with pytest.raises(FileExistsError):
        save_game_dataset(data, path, overwrite=False)


def _bad(data, **changes):
    return data._replace(**changes)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: _bad(d, reward=d.reward[:, :2]), r"key 'reward' has shape \(20, 2\)"),
        (lambda d: _bad(d, reward=d.reward.double()), r"key 'reward' .*float64, expected"),
        (lambda d: _bad(d, agents=("a", "a", "b")), r"key 'agents' must be distinct"),
        (lambda d: _bad(d, action=d.action * 3), r"key 'action' has values outside \[-1, 1\]"),
        (lambda d: _bad(d, obs=d.obs[:, :, :1]), r"keys 'obs' and 'next_obs' differ"),
        (
            lambda d: _bad(d, reward=d.reward.index_fill(0, torch.tensor([3]), float("nan"))),
            r"key 'reward' has NaN",
        ),
        (lambda d: _bad(d, terminated=d.terminated.float()), r"key 'terminated' .* expected"),
    ],
)
def test_bad_game_datasets_are_refused_naming_the_key(tmp_path: Path, change, match) -> None:
    data = make_game_dataset(GameConfig(num_agents=3, dataset_size=20), seed=0)
    with pytest.raises(DatasetError, match=match):
        save_game_dataset(change(data), tmp_path / "bad.pt", overwrite=True)
    assert not (tmp_path / "bad.pt").exists()


def test_game_files_with_the_wrong_agents_or_corruption_are_refused(tmp_path: Path) -> None:
    data = make_game_dataset(GameConfig(num_agents=3, num_actions=2, dataset_size=20), seed=0)
    path = tmp_path / "game.pt"
    save_game_dataset(data, path, overwrite=False)
    with pytest.raises(DatasetError, match="lists 3 agents, the environment has 5"):
        load_game_dataset(path, num_agents=5)
    with pytest.raises(DatasetError, match=r"indices outside \[0, 1\)"):
        load_game_dataset(path, num_actions=1)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match=r"truncated|corrupt|length"):
        load_game_dataset(path)
    with pytest.raises(DatasetError, match="no such file"):
        load_game_dataset(tmp_path / "missing.pt")


def test_spread_minari_round_trip_and_agent_checks(tmp_path: Path) -> None:
    import gymnasium as gym

    cfg = SpreadConfig(episodes=2, max_cycles=5)
    episodes = collect_episodes(cfg, seed=0)
    n, d = 3, obs_dim(3)
    assert episodes[0].observations.shape == (6, n, d)
    assert episodes[0].rewards.shape == (5, n)
    agents = agent_names(n)
    spaces = {
        "observation_space": gym.spaces.Box(-np.inf, np.inf, (n, d), np.float32),
        "action_space": gym.spaces.Box(0.0, 1.0, (n, 5), np.float32),
    }
    save_minari_multiagent(
        episodes, "test/spread-v0", agents=agents, description="t", root=tmp_path, **spaces
    )
    loaded, scale = load_minari_multiagent("test/spread-v0", agents=agents, root=tmp_path)
    np.testing.assert_array_equal(loaded[1].rewards, episodes[1].rewards)
    data = episodes_to_data(loaded, agents=agents, scale=scale, meta={}, where="t")
    assert data.num_samples == 10
    assert float(data.action.min()) >= -1.0
    assert float(data.action.max()) <= 1.0
    assert bool(data.terminated.any()) is False  # simple_spread truncates, never terminates
    with pytest.raises(DatasetError, match=r"key 'agents' is \['agent_0'"):
        load_minari_multiagent("test/spread-v0", agents=agent_names(4), root=tmp_path)


def test_batches_are_seeded_and_resume_exactly() -> None:
    data = make_game_dataset(GameConfig(num_agents=3, dataset_size=100), seed=0)
    a = MultiAgentBatches(data, batch_size=8, seed=5, device="cpu")
    b = MultiAgentBatches(data, batch_size=8, seed=5, device="cpu")
    a.sample()
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a.sample().indices, b.sample().indices)
    batch = a.sample()
    assert batch.obs.shape == (8, 3, 2)
    assert batch.not_done.shape == (8, 3)
    assert float(batch.not_done.max()) == 0.0  # one-step episodes never bootstrap
