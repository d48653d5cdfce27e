"""Environment construction, space checks, configs and presets."""

from __future__ import annotations

import dataclasses
import json

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from mrq_drq import (
    PRESETS,
    EnvConfig,
    MRQAgent,
    MRQConfig,
    UnsupportedSpaceError,
    check_spaces,
    drq,
    make_buffer,
    make_env,
    tiny,
    transition_spec,
)
from mrq_drq.config import (
    EncoderConfig,
    PolicyConfig,
    ReplayConfig,
    ValueConfig,
    atari,
    dmc,
    dmc_visual,
    gym,
)

BOX_ACTION = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
VEC_OBS = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)


@pytest.mark.parametrize(
    ("obs_space", "action_space", "message"),
    [
        (spaces.Dict({"a": VEC_OBS}), BOX_ACTION, "observation space must be a Box"),
        (spaces.Tuple((VEC_OBS,)), BOX_ACTION, "observation space must be a Box"),
        (spaces.Discrete(5), BOX_ACTION, "observation space must be a Box"),
        (spaces.MultiDiscrete([2, 3]), BOX_ACTION, "observation space must be a Box"),
        (spaces.Box(0, 1, shape=(3, 4), dtype=np.float32), BOX_ACTION, "1-D"),
        (spaces.Box(0, 255, shape=(84, 84, 3), dtype=np.uint8), BOX_ACTION, "channels-first"),
        (spaces.Box(0, 1, shape=(3, 84, 84), dtype=np.float32), BOX_ACTION, "must be uint8"),
        (VEC_OBS, spaces.MultiDiscrete([2, 3]), "action space must be Discrete or a 1-D Box"),
        (VEC_OBS, spaces.MultiBinary(3), "action space must be Discrete or a 1-D Box"),
        (VEC_OBS, spaces.Dict({"a": BOX_ACTION}), "action space must be Discrete or a 1-D Box"),
        (VEC_OBS, spaces.Box(-np.inf, np.inf, shape=(2,)), "finite bounds"),
        (VEC_OBS, spaces.Box(-1.0, 1.0, shape=(2, 2)), "must be 1-D"),
        (VEC_OBS, spaces.Discrete(1), "n >= 2"),
        (VEC_OBS, spaces.Discrete(4, start=1), "start at 0"),
    ],
)
def test_unsupported_spaces_are_rejected_by_name(obs_space, action_space, message):
    with pytest.raises(UnsupportedSpaceError, match=message):
        check_spaces(obs_space, action_space)


def test_check_spaces_describes_supported_spaces():
    bounds = (np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    spec = check_spaces(VEC_OBS, spaces.Box(*bounds))
    assert spec.obs_shape == (4,)
    assert not spec.pixels
    assert not spec.discrete
    assert spec.action_dim == 2
    assert spec.action_low == (-2.0, 0.0)
    assert spec.action_high == (2.0, 1.0)
    stacked = check_spaces(spaces.Box(0, 255, (4, 1, 84, 84), np.uint8), spaces.Discrete(6))
    assert stacked.obs_shape == (4, 84, 84)
    assert stacked.history == 4
    assert stacked.frame_shape == (1, 84, 84)
    assert stacked.env_obs_shape == (4, 1, 84, 84)
    assert stacked.discrete
    assert stacked.action_dim == 6


def test_gym_env_is_float32_and_rescales_actions_to_unit_box():
    env = make_env(EnvConfig(suite="gym", env_id="InvertedPendulum-v5"), seed=0)
    spec = check_spaces(env.observation_space, env.action_space)
    assert spec.action_low == (-1.0,)
    assert spec.action_high == (1.0,)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32
    assert obs.shape == (4,)
    inner = env.unwrapped
    # +1 maps to the pendulum's +3 force limit.
    env.step(np.array([1.0], dtype=np.float32))
    assert isinstance(inner, gymnasium.Env)
    assert float(inner.data.ctrl[0]) == pytest.approx(3.0)  # type: ignore[attr-defined]
    env.close()


def test_gym_discrete_env_and_agent_act():
    cfg = tiny("CartPole-v1")
    env = make_env(cfg.env, seed=1)
    spec = check_spaces(env.observation_space, env.action_space)
    assert spec.discrete
    assert spec.action_dim == 2
    agent = MRQAgent(cfg, spec)
    obs, _ = env.reset(seed=1)
    _, _, _, _, _ = env.step(int(agent.act(obs, explore=True)))


def test_gym_rejects_unused_settings():
    with pytest.raises(ValueError, match="action_repeat=1"):
        make_env(EnvConfig(suite="gym", env_id="Pendulum-v1", action_repeat=2), seed=0)


def test_make_env_seeds_the_action_space():
    a = make_env(EnvConfig(suite="gym", env_id="Pendulum-v1"), seed=7)
    b = make_env(EnvConfig(suite="gym", env_id="Pendulum-v1"), seed=7)
    assert np.array_equal(a.action_space.sample(), b.action_space.sample())


def test_dmc_proprio_action_repeat_two_and_500_agent_steps():
    pytest.importorskip("dm_control")
    env = make_env(dmc("cartpole-balance").env, seed=0)
    spec = check_spaces(env.observation_space, env.action_space)
    assert spec.obs_shape == (5,)
    assert spec.action_low == (-1.0,)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32
    steps, truncated, terminated = 0, False, False
    while not (truncated or terminated):
        _, reward, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
        assert 0.0 <= float(reward) <= 2.0  # two frames of a [0, 1] reward
        steps += 1
    assert steps == 500
    assert truncated
    assert not terminated
    # Same seed, same initial state.
    again, _ = make_env(dmc("cartpole-balance").env, seed=0).reset(seed=0)
    first, _ = env.reset(seed=0)
    assert np.array_equal(first, again)


def test_dmc_visual_stacks_three_rgb_frames():
    pytest.importorskip("dm_control")
    cfg = dataclasses.replace(dmc_visual("cartpole-balance").env, image_size=64)
    env = make_env(cfg, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 3, 64, 64)
    assert obs.dtype == np.uint8
    assert np.array_equal(obs[0], obs[2])  # the first stack repeats the reset frame
    nxt, *_ = env.step(np.ones(1, dtype=np.float32))
    assert np.array_equal(nxt[:2], obs[1:])  # oldest frame dropped, newest appended
    spec = check_spaces(env.observation_space, env.action_space)
    assert spec.obs_shape == (9, 64, 64)
    assert spec.history == 3


def test_atari_preprocessing():
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    cfg = dataclasses.replace(atari("Pong").env, max_episode_frames=40)
    env = make_env(cfg, seed=0)
    spec = check_spaces(env.observation_space, env.action_space)
    assert spec.env_obs_shape == (4, 1, 84, 84)
    assert spec.discrete
    assert spec.action_dim == 6
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 1, 84, 84)
    assert obs.dtype == np.uint8
    steps, truncated = 0, False
    while not truncated:
        _, _reward, terminated, truncated, _ = env.step(0)
        assert not terminated
        steps += 1
    assert steps == 10  # 40 frames / frame skip 4
    assert env.random_action_prob == 0.0  # type: ignore[attr-defined]
    evaluation = make_env(cfg, seed=0, evaluation=True)
    assert evaluation.random_action_prob == pytest.approx(1e-3)  # type: ignore[attr-defined]


def test_malformed_dmc_id():
    with pytest.raises(ValueError, match="domain-task"):
        make_env(EnvConfig(suite="dmc", env_id="cheetah", action_repeat=2), seed=0)


# ------------------------------------------------------------------ configs


def test_presets_hold_the_paper_hyperparameters():
    cfg = gym()
    assert (cfg.encoder.zs_dim, cfg.encoder.zsa_dim, cfg.encoder.za_dim) == (512, 512, 256)
    assert (cfg.encoder.hidden_dim, cfg.encoder.lr, cfg.encoder.weight_decay) == (512, 1e-4, 1e-4)
    assert (cfg.encoder.horizon, cfg.value.n_step, cfg.encoder.num_bins) == (5, 3, 65)
    assert (cfg.encoder.dyn_weight, cfg.encoder.reward_weight, cfg.encoder.done_weight) == (
        1.0,
        0.1,
        0.1,
    )
    assert (cfg.value.lr, cfg.value.grad_clip, cfg.policy.lr) == (3e-4, 20.0, 3e-4)
    assert (cfg.replay.sampling, cfg.replay.alpha, cfg.replay.min_priority) == ("lap", 0.4, 1.0)
    assert (cfg.schedule.random_steps, cfg.schedule.target_update_interval) == (10_000, 250)
    assert cfg.sub_trajectory_length == 5
    assert dmc().env.action_repeat == 2
    assert dmc().schedule.total_steps == 500_000
    assert dmc_visual().env.history == 3
    assert dmc_visual().env.pixels
    a = atari().env
    assert (a.action_repeat, a.history, a.sticky_action_prob, a.max_episode_frames) == (
        4,
        4,
        0.25,
        108_000,
    )
    d = drq(gym())
    assert d.algorithm == "drq"
    assert d.encoder.hidden_dim == 750
    assert d.encoder.lr == 3e-4
    assert d.encoder.infonce_weight == 0.1
    assert d.encoder.infonce_temperature == 0.1
    assert d.replay.sampling == "faded"
    assert d.replay.fade_decay == 0.9999
    assert d.value.weight_decay == d.policy.weight_decay == d.encoder.weight_decay == 0.01
    # Follows the paper: the official code's silent changes only on request.
    assert d.value.reward_scaling
    assert d.encoder.done_weight == 0.1
    assert d.value.grad_clip == 20.0
    official = drq(gym(), as_official_code=True)
    assert not official.value.reward_scaling
    assert official.encoder.done_weight == 0.0
    assert official.value.grad_clip is None
    assert official.policy.pre_activ_weight == 0.0


def test_every_preset_builds_and_round_trips_through_json():
    for name, make in PRESETS.items():
        cfg = make()
        back = MRQConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert back == cfg, name


def test_from_dict_rejects_unknown_keys():
    data = tiny().to_dict()
    data["encoder"] = {**data["encoder"], "zs_size": 3}  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="zs_size"):
        MRQConfig.from_dict(data)
    with pytest.raises(ValueError, match="bogus"):
        MRQConfig.from_dict({"bogus": 1})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EncoderConfig(zs_dim=0), "encoder.zs_dim"),
        (lambda: EncoderConfig(lr=-1.0), "encoder.lr"),
        (lambda: EncoderConfig(num_bins=1), "num_bins"),
        (lambda: EncoderConfig(infonce_weight=float("nan")), "encoder.infonce_weight"),
        (lambda: ValueConfig(discount=1.5), "value.discount"),
        (lambda: ValueConfig(grad_clip=0.0), "value.grad_clip"),
        (lambda: ReplayConfig(sampling="per"), "replay.sampling"),  # type: ignore[arg-type]
        (lambda: ReplayConfig(batch_size=True), "replay.batch_size"),
        (lambda: PolicyConfig(lr=True), "policy.lr"),  # a bool is not a number
        (lambda: ReplayConfig(fade_decay=0.0), "replay.fade_decay"),
        (lambda: EnvConfig(suite="mujoco"), "env.suite"),  # type: ignore[arg-type]
        (lambda: EnvConfig(suite="gym", pixels=True), "env.pixels"),
    ],
)
def test_bad_config_values_name_the_field(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_buffer_helpers_match_the_spec():
    cfg = tiny()
    spec = check_spaces(spaces.Box(0, 255, (3, 1, 36, 36), np.uint8), spaces.Discrete(4))
    ts = transition_spec(spec)
    assert ts.obs_shape == (1, 36, 36)
    assert ts.history == 3
    assert ts.obs_dtype == torch.uint8
    assert ts.action_kind == "discrete"
    assert ts.num_actions == 4
    buf = make_buffer(drq(cfg), spec)
    assert buf.horizon == 5
    assert buf.sampler.kind == "faded"
    assert buf.capacity == cfg.replay.capacity


@pytest.mark.slow
def test_rendering_dmc_then_building_an_agent_does_not_crash():
    """Mesa's EGL then triton's LLVM (via torch._dynamo) segfaulted; DMCEnv imports dynamo first."""
    pytest.importorskip("dm_control")
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from mrq_drq import MRQAgent, check_spaces, dmc_visual, make_env, tiny\n"
        "cfg = dmc_visual('cartpole-balance')\n"
        "env = make_env(cfg.env, seed=0)\n"
        "obs, _ = env.reset(seed=0)\n"
        "spec = check_spaces(env.observation_space, env.action_space)\n"
        "agent = MRQAgent(tiny(), spec)\n"
        "print(tuple(agent.act(obs, explore=True).shape))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1,)" in out.stdout
