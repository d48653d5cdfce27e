"""NLE as a batched env: keys, packing, seeding, autoreset, replay, the other rollout sources."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hbs.config import EnvConfig, ObservationKeyError
from hbs.envs import (
    BL_AC,
    BL_DEPTH,
    BL_DLEVEL,
    BL_DNUM,
    BL_GOLD,
    BL_HP,
    BL_HPMAX,
    BL_HUNGER,
    BL_SCORE,
    BL_TIME,
    BL_X,
    BL_Y,
    NLEVecEnv,
    ObsLayout,
    is_blank,
    make_subprocess_env,
)
from rl_runtime.vecenv import BatchedEnv

CFG = EnvConfig(max_episode_steps=40)


def rollout(env, seeds, actions, reset_seeds):
    """Observations of a fixed action sequence; ``reset_seeds`` feeds the autoresets."""
    it = iter(reset_seeds)
    first = env.reset(seeds)
    steps = [env.step(torch.tensor(a), lambda i: next(it)).obs for a in actions]
    return torch.stack([first, *steps])


def test_blstats_indices_match_nle() -> None:
    from nle import nethack

    assert (BL_X, BL_Y, BL_SCORE, BL_HP, BL_HPMAX, BL_DEPTH, BL_GOLD) == (
        nethack.NLE_BL_X, nethack.NLE_BL_Y, nethack.NLE_BL_SCORE, nethack.NLE_BL_HP,
        nethack.NLE_BL_HPMAX, nethack.NLE_BL_DEPTH, nethack.NLE_BL_GOLD,
    )  # fmt: skip
    assert (BL_AC, BL_TIME, BL_HUNGER, BL_DNUM, BL_DLEVEL) == (
        nethack.NLE_BL_AC, nethack.NLE_BL_TIME, nethack.NLE_BL_HUNGER, nethack.NLE_BL_DNUM,
        nethack.NLE_BL_DLEVEL,
    )  # fmt: skip


def test_bad_observation_keys_are_refused_by_name() -> None:
    with pytest.raises(ObservationKeyError, match="'screen_descriptions'"):
        ObsLayout(("glyphs", "blstats", "screen_descriptions"))
    with pytest.raises(ObservationKeyError, match="'tty_chars'"):
        EnvConfig(observation_keys=("glyphs", "blstats", "tty_chars"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must include blstats"):
        EnvConfig(observation_keys=("glyphs", "message"))
    with pytest.raises(ValueError, match="repeated"):
        EnvConfig(observation_keys=("glyphs", "blstats", "glyphs"))


def test_packing_and_split_give_the_nle_arrays_back() -> None:
    env = NLEVecEnv(CFG, 1)
    try:
        obs = env.reset([3])
        v = env.layout.split(obs)
        assert v.glyphs.shape == (1, 21, 79)
        assert v.blstats.shape == (1, 27)
        assert v.message is not None
        assert v.message.shape == (1, 256)
        assert int(v.blstats[0, BL_HPMAX]) > 0
        assert not bool(is_blank(v.blstats)[0])
        assert obs.dtype == torch.int32
    finally:
        env.close()


def test_same_seeds_and_actions_same_episodes_and_a_batched_env() -> None:
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 23, size=(60, 2))
    a, b = NLEVecEnv(CFG, 2), NLEVecEnv(CFG, 2)
    try:
        assert isinstance(a, BatchedEnv)
        first = rollout(a, [11, 12], actions, itertools.count(100))
        second = rollout(b, [11, 12], actions, itertools.count(100))
        assert torch.equal(first, second)
        other = rollout(b, [13, 14], actions, itertools.count(100))
        assert not torch.equal(first[0], other[0])  # another seed, another dungeon
    finally:
        a.close()
        b.close()


def test_truncation_and_same_step_autoreset_with_the_given_seed() -> None:
    env, fresh = NLEVecEnv(EnvConfig(max_episode_steps=5), 1), NLEVecEnv(CFG, 1)
    try:
        env.reset([1])
        seeds: list[int] = []
        for t in range(5):
            r = env.step(torch.tensor([18]), lambda i: seeds.append(77) or 77)  # 18: search
            assert bool(r.truncated[0]) == (t == 4) or bool(r.terminated[0])
        assert seeds == [77]
        assert torch.equal(r.obs, fresh.reset([77]))  # the next episode's first observation
        assert not torch.equal(r.final_obs, r.obs)
    finally:
        env.close()
        fresh.close()


def test_replay_reproduces_the_current_episode() -> None:
    env, other = NLEVecEnv(CFG, 1), NLEVecEnv(CFG, 1)
    try:
        obs = env.reset([5])
        acts = [int(a) for a in np.random.default_rng(1).integers(0, 23, 25)]
        for a in acts:
            obs = env.step(torch.tensor([a]), lambda i: 0).obs
        assert torch.equal(other.replay([5], [acts]), obs)
    finally:
        env.close()
        other.close()


def test_subprocess_source_matches_in_process() -> None:
    actions = np.random.default_rng(2).integers(0, 23, size=(20, 2))
    inproc, sub = NLEVecEnv(CFG, 2), make_subprocess_env(CFG, 2)
    try:
        a = rollout(inproc, [21, 22], actions, itertools.count(5))
        b = rollout(sub, [21, 22], actions, itertools.count(5))
        assert torch.equal(a, b)
    finally:
        inproc.close()
        sub.close()


@pytest.mark.slow
def test_ray_source_matches_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers use this interpreter, not `uv run` in a copy of the tree (read at import).
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray = pytest.importorskip("ray")
    from hbs.ray_env import RayVecEnv

    actions = np.random.default_rng(3).integers(0, 23, size=(50, 4))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        inproc, remote = NLEVecEnv(CFG, 4), RayVecEnv(CFG, 4, workers=2, num_cpus=0.5)
        a = rollout(inproc, [1, 2, 3, 4], actions, itertools.count(9))
        b = rollout(remote, [1, 2, 3, 4], actions, itertools.count(9))
        assert torch.equal(a, b)
        assert torch.equal(
            remote.replay([1, 2, 3, 4], [[0]] * 4), inproc.replay([1, 2, 3, 4], [[0]] * 4)
        )
        inproc.close()
        remote.close()
    finally:
        ray.shutdown()
