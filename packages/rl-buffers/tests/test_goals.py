"""Goal relabelling: hand-made episodes with known answers, and hypothesis properties."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from rl_buffers import io
from rl_buffers.goals import (
    GoalEpisode,
    GoalEpisodeStorage,
    HerSampler,
    HerStrategy,
    all_goals_from_achievements,
    all_goals_from_reward_fn,
    her_goal_steps,
    mask_achievements,
    relabel_prob_from_k,
)
from torch import Tensor

torch.set_num_threads(1)


def sparse_reward(achieved: Tensor, desired: Tensor) -> tuple[Tensor, Tensor]:
    """Fetch-style: 0 on success, -1 otherwise; reaching the goal terminates."""
    success = (achieved - desired).norm(dim=-1) < 0.5
    return success.float() - 1.0, success


def never_terminates(achieved: Tensor, desired: Tensor) -> tuple[Tensor, Tensor]:
    success = (achieved - desired).norm(dim=-1) < 0.5
    return success.float(), torch.zeros_like(success)


def line_episode(length: int, desired: float = 100.0, tag: float = 0.0) -> GoalEpisode:
    """Agent walks along a line: achieved_goals[t] = tag + t; obs[t] = [t, tag]."""
    t = torch.arange(length + 1, dtype=torch.float32)
    return GoalEpisode(
        observations=torch.stack([t, torch.full_like(t, tag)], dim=1),
        achieved_goals=(tag + t)[:, None],
        desired_goals=torch.full((length, 1), desired),
        actions=torch.ones(length, 1),
        terminations=torch.zeros(length, dtype=torch.bool),
    )


def make_storage(capacity: int = 4, max_steps: int = 8) -> GoalEpisodeStorage:
    return GoalEpisodeStorage(capacity, max_steps, obs_shape=(2,), goal_dim=1, action_shape=(1,))


# ----------------------------------------------------------------------------- goal steps


def test_relabel_prob_from_k() -> None:
    assert relabel_prob_from_k(4) == pytest.approx(0.8)
    assert relabel_prob_from_k(0) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        relabel_prob_from_k(-1)


def test_final_is_episode_end() -> None:
    step = torch.tensor([0, 2, 4])
    length = torch.tensor([3, 3, 5])
    got = her_goal_steps(step, length, "final", torch.Generator().manual_seed(0))
    assert got.tolist() == [3, 3, 5]


@pytest.mark.parametrize(
    ("strategy", "step", "length", "allowed"),
    [
        ("future", 1, 4, {2, 3, 4}),
        ("future", 0, 1, {1}),
        ("future", 3, 4, {4}),  # the last transition can only be relabelled with its own next state
        ("episode", 2, 4, {1, 2, 3, 4}),
        ("episode", 0, 1, {1}),
    ],
)
def test_goal_step_range_and_uniformity(
    strategy: HerStrategy, step: int, length: int, allowed: set[int]
) -> None:
    n = 8000
    got = her_goal_steps(
        torch.full((n,), step), torch.full((n,), length), strategy, torch.Generator().manual_seed(1)
    )
    assert set(got.tolist()) == allowed
    counts = torch.bincount(got, minlength=length + 1)[sorted(allowed)].float()
    # Uniform over the allowed set: every count within 10% of n / |allowed| (seeded, deterministic).
    assert torch.allclose(counts, torch.full_like(counts, n / len(allowed)), rtol=0.1)


def test_goal_steps_reject_bad_input() -> None:
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="0 <= t < length"):
        her_goal_steps(torch.tensor([3]), torch.tensor([3]), "future", g)
    with pytest.raises(ValueError, match="int64"):
        her_goal_steps(torch.tensor([0.0]), torch.tensor([3.0]), "future", g)
    with pytest.raises(ValueError, match="strategy must be one of"):
        her_goal_steps(torch.tensor([0]), torch.tensor([3]), "past", g)  # pyright: ignore[reportArgumentType]


# ----------------------------------------------------------------------------- storage + sampler


def test_uniform_over_transitions_not_episodes() -> None:
    storage = make_storage()
    storage.add_episode(line_episode(1, tag=0.0))
    storage.add_episode(line_episode(3, tag=10.0))
    episode, step = storage.sample_transitions(8000, torch.Generator().manual_seed(0))
    frac_long = (episode == 1).float().mean().item()
    assert frac_long == pytest.approx(0.75, abs=0.02)
    assert set(step[episode == 0].tolist()) == {0}
    assert set(step[episode == 1].tolist()) == {0, 1, 2}


def test_no_relabel_keeps_desired_goal_and_rewards_it() -> None:
    storage = make_storage()
    ep = line_episode(4, desired=2.0)
    storage.add_episode(ep)
    sampler = HerSampler(sparse_reward, "future", relabel_prob=0.0)
    batch = sampler.sample(storage, 256, torch.Generator().manual_seed(0))
    assert not batch.relabelled.any()
    assert (batch.goal == 2.0).all()
    assert (batch.goal_step == -1).all()
    # Transition t reaches achieved goal t + 1: success (reward 0, terminal) only for t = 1.
    expected_reward = torch.where(batch.step == 1, 0.0, -1.0)
    assert torch.equal(batch.reward, expected_reward)
    assert torch.equal(batch.not_done, torch.where(batch.step == 1, 0.0, 1.0))
    assert torch.equal(batch.obs[:, 0], batch.step.float())
    assert torch.equal(batch.next_obs[:, 0], batch.step.float() + 1)
    assert torch.equal(batch.next_achieved_goal[:, 0], batch.step.float() + 1)


def test_final_relabel_hand_computed() -> None:
    storage = make_storage()
    storage.add_episode(line_episode(3))  # achieved goals 0, 1, 2, 3
    sampler = HerSampler(sparse_reward, "final", relabel_prob=1.0)
    step = torch.tensor([0, 1, 2])
    batch = sampler.relabel(storage, torch.zeros(3, dtype=torch.int64), step, torch.Generator())
    assert batch.goal[:, 0].tolist() == [3.0, 3.0, 3.0]
    assert batch.goal_step.tolist() == [3, 3, 3]
    assert batch.reward.tolist() == [-1.0, -1.0, 0.0]  # only the last step reaches 3
    assert batch.not_done.tolist() == [1.0, 1.0, 0.0]


def test_future_relabel_reward_matches_goal_step() -> None:
    storage = make_storage()
    storage.add_episode(line_episode(6))
    batch = HerSampler(never_terminates, "future", 1.0).sample(
        storage, 512, torch.Generator().manual_seed(3)
    )
    # achieved_goals[j] = j on this line, so the goal equals its step and success iff j == t + 1.
    assert torch.equal(batch.goal[:, 0], batch.goal_step.float())
    assert (batch.goal_step > batch.step).all()
    assert torch.equal(batch.reward, (batch.goal_step == batch.step + 1).float())
    assert (batch.not_done == 1.0).all()  # never_terminates: reaching the goal does not end it


def test_goal_independent_termination_ends_every_goal() -> None:
    storage = make_storage()
    ep = line_episode(2)._replace(terminations=torch.tensor([False, True]))
    storage.add_episode(ep)
    batch = HerSampler(never_terminates, "episode", 0.5).relabel(
        storage, torch.tensor([0, 0]), torch.tensor([0, 1]), torch.Generator().manual_seed(0)
    )
    assert batch.not_done.tolist() == [1.0, 0.0]


def test_ring_overwrites_oldest_episode() -> None:
    storage = make_storage(capacity=2)
    for tag in (0.0, 10.0, 20.0):
        storage.add_episode(line_episode(2, tag=tag))
    assert storage.num_episodes == 2
    assert len(storage) == 4
    batch = HerSampler(never_terminates, "future", 0.5).sample(
        storage, 400, torch.Generator().manual_seed(0)
    )
    assert set(batch.obs[:, 1].tolist()) == {10.0, 20.0}


def test_state_dict_round_trip_gives_same_samples(tmp_path: Path) -> None:
    storage = make_storage()
    for tag in (0.0, 10.0, 20.0):
        storage.add_episode(line_episode(3, tag=tag))
    sampler = HerSampler(sparse_reward, "future", 0.8)
    io.save(storage.state_dict(), tmp_path / "her.pt")
    restored = make_storage()
    restored.load_state_dict(io.load(tmp_path / "her.pt"))
    a = sampler.sample(storage, 64, torch.Generator().manual_seed(5))
    b = sampler.sample(restored, 64, torch.Generator().manual_seed(5))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    restored.add_episode(line_episode(1, tag=30.0))
    storage.add_episode(line_episode(1, tag=30.0))
    assert torch.equal(restored.lengths, storage.lengths)


def test_load_state_dict_rejects_wrong_shapes() -> None:
    state = make_storage(capacity=4).state_dict()
    with pytest.raises(ValueError, match="'observations': expected"):
        make_storage(capacity=3).load_state_dict(state)
    del state["lengths"]
    with pytest.raises(KeyError, match="lengths"):
        make_storage().load_state_dict(state)


def test_add_episode_rejects_bad_episodes() -> None:
    storage = make_storage(max_steps=4)
    ep = line_episode(3)
    with pytest.raises(ValueError, match="achieved_goals has shape"):
        storage.add_episode(ep._replace(achieved_goals=ep.achieved_goals[:-1]))
    with pytest.raises(ValueError, match=r"expected 1\.\.4"):
        storage.add_episode(line_episode(5))
    with pytest.raises(ValueError, match="True at step 0"):
        storage.add_episode(ep._replace(terminations=torch.tensor([True, False, False])))
    bad = ep.desired_goals.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="desired_goals contains NaN"):
        storage.add_episode(ep._replace(desired_goals=bad))
    with pytest.raises(ValueError, match="empty"):
        storage.sample_transitions(4, torch.Generator())


def test_bad_reward_fn_is_named() -> None:
    storage = make_storage()
    storage.add_episode(line_episode(2))

    def scalar_reward(achieved: Tensor, desired: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros(()), torch.zeros((), dtype=torch.bool)

    with pytest.raises(ValueError, match="compute_reward must return reward and terminated"):
        HerSampler(scalar_reward).sample(storage, 4, torch.Generator())
    with pytest.raises(ValueError, match="relabel_prob"):
        HerSampler(sparse_reward, relabel_prob=1.5)


@st.composite
def episode_sets(draw: st.DrawFn) -> tuple[int, list[int]]:
    capacity = draw(st.integers(1, 5))
    lengths = draw(st.lists(st.integers(1, 6), min_size=1, max_size=9))
    return capacity, lengths


@given(
    episodes=episode_sets(),
    strategy=st.sampled_from(["final", "future", "episode"]),
    relabel_prob=st.sampled_from([0.0, 0.3, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_relabelled_goals_come_from_the_same_episode_and_right_steps(
    episodes: tuple[int, list[int]], strategy: HerStrategy, relabel_prob: float, seed: int
) -> None:
    capacity, lengths = episodes
    storage = GoalEpisodeStorage(capacity, 6, obs_shape=(2,), goal_dim=2, action_shape=())
    for uid, n in enumerate(lengths):
        t = torch.arange(n + 1, dtype=torch.float32)
        # Goal vectors encode (episode uid, step) so that any goal can be traced to its origin.
        storage.add_episode(
            GoalEpisode(
                observations=torch.stack([torch.full_like(t, uid), t], dim=1),
                achieved_goals=torch.stack([torch.full_like(t, uid), t], dim=1),
                desired_goals=torch.tensor([[-1.0 - uid, -1.0]]).expand(n, 2),
                actions=torch.zeros(n),
                terminations=torch.zeros(n, dtype=torch.bool),
            )
        )
    batch = HerSampler(never_terminates, strategy, relabel_prob).sample(
        storage, 64, torch.Generator().manual_seed(seed)
    )
    uid = batch.obs[:, 0]
    t = batch.step
    length = torch.tensor(lengths)[uid.long()]
    # Only the last `capacity` episodes are sampled.
    assert (uid >= len(lengths) - capacity).all()
    relabelled = batch.relabelled
    # Original goals: the episode's own desired goal.
    assert (batch.goal[~relabelled, 0] == -1.0 - uid[~relabelled]).all()
    # Hindsight goals: same episode, and the step range of the strategy.
    goal_uid, goal_step = batch.goal[relabelled, 0], batch.goal[relabelled, 1].long()
    assert torch.equal(goal_uid, uid[relabelled])
    assert torch.equal(goal_step, batch.goal_step[relabelled])
    t_r, n_r = t[relabelled], length[relabelled]
    if strategy == "final":
        assert torch.equal(goal_step, n_r)
    elif strategy == "future":
        assert ((goal_step >= t_r + 1) & (goal_step <= n_r)).all()
    else:
        assert ((goal_step >= 1) & (goal_step <= n_r)).all()


# ----------------------------------------------------------------------------- all goals


def test_all_goals_from_achievements_hand_computed() -> None:
    achieved = torch.tensor([[True, False, False], [False, True, True], [False, False, False]])
    terminated = torch.tensor([False, False, True])
    out = all_goals_from_achievements(achieved, terminated)
    assert out.reward.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert out.terminated.tolist() == [
        [True, False, False],
        [False, True, True],
        [True, True, True],
    ]
    assert torch.equal(out.not_done, 1.0 - out.terminated.float())
    sub = all_goals_from_achievements(achieved, terminated, goal_ids=torch.tensor([2, 0]))
    assert sub.reward.tolist() == [[0, 1], [1, 0], [0, 0]]


def test_all_goals_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="achieved must be bool"):
        all_goals_from_achievements(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="terminated must be"):
        all_goals_from_achievements(
            torch.zeros(2, 3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match=r"goal_ids must lie in \[0, 3\)"):
        all_goals_from_achievements(torch.zeros(2, 3, dtype=torch.bool), goal_ids=torch.tensor([3]))
    with pytest.raises(ValueError, match="goal_dim mismatch"):
        all_goals_from_reward_fn(torch.zeros(2, 3), torch.zeros(4, 2), sparse_reward)


def test_mask_achievements_like_leo() -> None:
    # obs: inventory one-hot slots [wood=0, wood=1, wood=2, stone=1].
    obs = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    masks = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    assert mask_achievements(obs, masks).tolist() == [[True, True, False], [False, True, True]]
    with pytest.raises(ValueError, match="observation width 4 != goal mask width 3"):
        mask_achievements(obs, masks[:, :3])


@given(
    batch=st.integers(1, 6),
    n_goals=st.integers(1, 7),
    seed=st.integers(0, 2**31 - 1),
)
def test_all_goals_equal_a_loop_over_goals(batch: int, n_goals: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    achieved = torch.rand(batch, n_goals, generator=g) < 0.3
    terminated = torch.rand(batch, generator=g) < 0.2
    out = all_goals_from_achievements(achieved, terminated)
    for k in range(n_goals):
        assert torch.equal(out.reward[:, k], achieved[:, k].float())
        assert torch.equal(out.terminated[:, k], achieved[:, k] | terminated)

    goals = torch.randint(0, 3, (n_goals, 2), generator=g).float()
    next_achieved = torch.randint(0, 3, (batch, 2), generator=g).float()
    vec = all_goals_from_reward_fn(next_achieved, goals, sparse_reward, terminated)
    for k in range(n_goals):
        r, term = sparse_reward(next_achieved, goals[k].expand(batch, 2))
        assert torch.equal(vec.reward[:, k], r)
        assert torch.equal(vec.terminated[:, k], term | terminated)
        assert torch.equal(vec.not_done[:, k], (~(term | terminated)).float())


@pytest.mark.gpu
def test_storage_and_sampling_on_cuda() -> None:
    storage = GoalEpisodeStorage(2, 4, obs_shape=(2,), goal_dim=1, action_shape=(1,), device="cuda")
    storage.add_episode(line_episode(3))
    for generator in (torch.Generator(), torch.Generator(device="cuda")):
        generator.manual_seed(0)
        batch = HerSampler(sparse_reward, "future", 1.0).sample(storage, 16, generator)
        assert batch.obs.device.type == "cuda"
        assert (batch.goal_step > batch.step).all()
        assert torch.equal(batch.goal[:, 0], batch.goal_step.float())
