"""Configuration for MR.Q and DR.Q: one frozen dataclass per component, presets per benchmark.

Every number defaults to the MR.Q paper / official code (``facebookresearch/MRQ``); the
:func:`drq` transform applies DR.Q's hyperparameter changes (``dmksjfl/DR.Q``). Presets are plain
functions returning a :class:`MRQConfig`; :data:`PRESETS` maps their names to them for a CLI.

Values the paper states for continuous actions (exploration and target-policy noise) are halved
by the agent for discrete actions (one-hot actions live in [0, 1], not [-1, 1]); the config keeps
the paper's numbers so that one preset serves both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from rl_nets import ActivationName
from rl_runtime.config import (
    DictCodec,
    check,
    in_range,
    int_at_least,
    non_negative,
    one_of,
    positive,
    positive_int,
    probability,
)

__all__ = [
    "PRESETS",
    "EncoderConfig",
    "EnvConfig",
    "MRQConfig",
    "PolicyConfig",
    "ReplayConfig",
    "ScheduleConfig",
    "Suite",
    "ValueConfig",
    "atari",
    "dmc",
    "dmc_visual",
    "drq",
    "gym",
    "tiny",
]

Suite = Literal["gym", "dmc", "atari"]
"""Benchmark family: Gymnasium (MuJoCo v5, classic control), DeepMind Control, Atari (ALE)."""

Sampling = Literal["uniform", "lap", "faded"]
"""Replay sampling: uniform, LAP priorities (MR.Q), LAP x recency fading (DR.Q)."""


@dataclass(frozen=True)
class EncoderConfig:
    """State encoder f, action embedding, state-action encoder g, MDP head, and their loss."""

    zs_dim: int = 512
    """Width of the state embedding zs."""
    za_dim: int = 256
    """Width of the action embedding za."""
    zsa_dim: int = 512
    """Width of the state-action embedding zsa."""
    hidden_dim: int = 512
    """Hidden width of the encoder MLPs (DR.Q: 750)."""
    activation: ActivationName = "elu"
    """Activation of every encoder layer."""
    lr: float = 1e-4
    """AdamW learning rate (DR.Q: 3e-4)."""
    weight_decay: float = 1e-4
    """AdamW weight decay (DR.Q: 0.01)."""
    horizon: int = 5
    """Latent unroll length of the model loss (sub-trajectory length)."""
    dyn_weight: float = 1.0
    """Weight of the latent dynamics MSE, per unroll step."""
    reward_weight: float = 0.1
    """Weight of the two-hot reward cross-entropy, per unroll step."""
    done_weight: float = 0.1
    """Weight of the terminal MSE, per unroll step (0 disables it, as the official DR.Q code does)."""
    infonce_weight: float = 0.0
    """Weight of DR.Q's InfoNCE term between predicted and target next zs (MR.Q: 0)."""
    infonce_temperature: float = 0.1
    """InfoNCE softmax temperature."""
    num_bins: int = 65
    """Two-hot reward bins, spaced uniformly in symlog space."""
    bin_range: float = 10.0
    """Bins cover symexp([-bin_range, bin_range])."""
    pixel_augmentation: bool = True
    """Random-shift augmentation of pixel observations (encoder and RL batches)."""
    augmentation_pad: int = 4
    """Pad of the random shift, in pixels."""

    def __post_init__(self) -> None:
        for name in ("zs_dim", "za_dim", "zsa_dim", "hidden_dim", "horizon", "num_bins"):
            positive_int(f"encoder.{name}", getattr(self, name))
        int_at_least("encoder.num_bins", self.num_bins, 2)
        for name in ("lr", "infonce_temperature", "bin_range"):
            positive(f"encoder.{name}", getattr(self, name))
        for name in (
            "weight_decay",
            "dyn_weight",
            "reward_weight",
            "done_weight",
            "infonce_weight",
        ):
            non_negative(f"encoder.{name}", getattr(self, name))
        int_at_least("encoder.augmentation_pad", self.augmentation_pad, 0)


@dataclass(frozen=True)
class ValueConfig:
    """Twin Q heads on zsa and their TD3-style n-step target."""

    hidden_dim: int = 512
    """Hidden width of each Q head."""
    activation: ActivationName = "elu"
    """Activation of the Q heads."""
    lr: float = 3e-4
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay (DR.Q: 0.01)."""
    grad_clip: float | None = 20.0
    """Global gradient-norm clip of the value update; ``None`` disables it (official DR.Q code)."""
    discount: float = 0.99
    """Per-step discount gamma."""
    n_step: int = 3
    """Length of the multi-step return."""
    target_policy_noise: float = 0.2
    """Std of the Gaussian added to the target action (halved for discrete actions)."""
    noise_clip: float = 0.3
    """Clip of the target-action noise (halved for discrete actions)."""
    reward_scaling: bool = True
    """Learn Q in units of the buffer's mean |r| (MR.Q); ``False`` = raw rewards (official DR.Q)."""

    def __post_init__(self) -> None:
        positive_int("value.hidden_dim", self.hidden_dim)
        positive_int("value.n_step", self.n_step)
        positive("value.lr", self.lr)
        non_negative("value.weight_decay", self.weight_decay)
        non_negative("value.target_policy_noise", self.target_policy_noise)
        non_negative("value.noise_clip", self.noise_clip)
        if self.grad_clip is not None:
            positive("value.grad_clip", self.grad_clip)
        in_range("value.discount", self.discount, 0.0, 1.0)


@dataclass(frozen=True)
class PolicyConfig:
    """Deterministic policy on zs: tanh for continuous actions, Gumbel-softmax for discrete."""

    hidden_dim: int = 512
    """Hidden width."""
    activation: ActivationName = "relu"
    """Hidden activation."""
    lr: float = 3e-4
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay (DR.Q: 0.01)."""
    gumbel_tau: float = 10.0
    """Gumbel-softmax temperature (discrete actions)."""
    pre_activ_weight: float = 1e-5
    """Weight of mean(pre_tanh^2) in the policy loss (0 disables it, as the official DR.Q code does)."""
    exploration_noise: float = 0.2
    """Std of the Gaussian added to actions while exploring (halved for discrete actions)."""

    def __post_init__(self) -> None:
        positive_int("policy.hidden_dim", self.hidden_dim)
        positive("policy.lr", self.lr)
        positive("policy.gumbel_tau", self.gumbel_tau)
        non_negative("policy.weight_decay", self.weight_decay)
        non_negative("policy.pre_activ_weight", self.pre_activ_weight)
        non_negative("policy.exploration_noise", self.exploration_noise)


@dataclass(frozen=True)
class ReplayConfig:
    """Replay buffer size, batch size and prioritisation."""

    capacity: int = 1_000_000
    """Transitions held."""
    batch_size: int = 256
    """Batch size of both the encoder and the RL updates."""
    sampling: Sampling = "lap"
    """``"lap"`` (MR.Q), ``"faded"`` (DR.Q: LAP x age decay) or ``"uniform"``."""
    alpha: float = 0.4
    """LAP priority exponent: p = max(|delta|, min_priority)^alpha."""
    min_priority: float = 1.0
    """LAP priority floor (equal to the Huber threshold, so no importance weights are needed)."""
    fade_decay: float = 0.9999
    """DR.Q: sampling weight multiplier per environment step of age."""
    fade_floor: float = 0.1
    """DR.Q: lower bound of the age weight."""

    def __post_init__(self) -> None:
        positive_int("replay.capacity", self.capacity)
        positive_int("replay.batch_size", self.batch_size)
        one_of("replay.sampling", self.sampling, get_args(Sampling))
        positive("replay.alpha", self.alpha)
        positive("replay.min_priority", self.min_priority)
        in_range("replay.fade_decay", self.fade_decay, 0.0, 1.0, low_open=True)
        probability("replay.fade_floor", self.fade_floor)


@dataclass(frozen=True)
class ScheduleConfig:
    """When to act randomly, train, sync targets and evaluate (counted in agent steps)."""

    total_steps: int = 1_000_000
    """Agent steps of the run (an agent step is ``action_repeat`` environment frames)."""
    random_steps: int = 10_000
    """Uniformly random actions until the buffer holds this many transitions; training starts after."""
    target_update_interval: int = 250
    """Every this many training steps: hard target sync, reward-scale refresh, encoder burst."""
    encoder_updates_per_sync: int = 250
    """Encoder updates run back to back right after each target sync."""
    eval_interval: int = 5_000
    """Evaluate every this many agent steps."""
    eval_episodes: int = 10
    """Episodes per evaluation."""

    def __post_init__(self) -> None:
        for name in (
            "total_steps",
            "target_update_interval",
            "encoder_updates_per_sync",
            "eval_interval",
            "eval_episodes",
        ):
            positive_int(f"schedule.{name}", getattr(self, name))
        int_at_least("schedule.random_steps", self.random_steps, 0)


@dataclass(frozen=True)
class EnvConfig:
    """Which environment to build and how to preprocess it (see :mod:`mrq_drq.envs`)."""

    suite: Suite = "gym"
    """Benchmark family."""
    env_id: str = "HalfCheetah-v5"
    """Gymnasium id; ``"domain-task"`` for DMC (e.g. ``"cheetah-run"``); game for Atari (``"Pong"``)."""
    pixels: bool = False
    """DMC only: render RGB frames instead of the proprioceptive state."""
    action_repeat: int = 1
    """Environment frames per agent step (DMC 2, Atari 4), rewards summed."""
    history: int = 1
    """Frames stacked into one observation along the channel axis (DMC visual 3, Atari 4)."""
    image_size: int = 84
    """Side of the square pixel observation."""
    grayscale: bool = True
    """Atari only: grayscale frames (one channel)."""
    sticky_action_prob: float = 0.25
    """Atari only: probability that the emulator repeats the previous action."""
    max_episode_frames: int = 108_000
    """Atari only: emulator frames before truncation (30 minutes at 60 Hz)."""
    eval_random_action_prob: float = 1e-3
    """Atari only: epsilon of random actions in the evaluation environment."""
    pool_last_two_frames: bool = True
    """Atari only: max-pool over the last two emulator frames of an agent step (flicker)."""

    def __post_init__(self) -> None:
        one_of("env.suite", self.suite, get_args(Suite))
        check(
            isinstance(self.env_id, str) and bool(self.env_id),
            f"env.env_id must be a non-empty string, got {self.env_id!r}",
        )
        for name in ("action_repeat", "history", "image_size", "max_episode_frames"):
            positive_int(f"env.{name}", getattr(self, name))
        probability("env.sticky_action_prob", self.sticky_action_prob)
        probability("env.eval_random_action_prob", self.eval_random_action_prob)
        check(
            not (self.pixels and self.suite == "gym"),
            "env.pixels is only supported for suite 'dmc' (Atari is always pixels)",
        )


@dataclass(frozen=True)
class MRQConfig(DictCodec):
    """Everything that defines an MR.Q / DR.Q run."""

    algorithm: Literal["mrq", "drq"] = "mrq"
    """Label only (what the preset implements); behaviour comes from the fields below."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """Encoder networks and model loss."""
    value: ValueConfig = field(default_factory=ValueConfig)
    """Q heads and target."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Actor."""
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """Replay buffer."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Training schedule."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Environment."""

    def __post_init__(self) -> None:
        one_of("algorithm", self.algorithm, ("mrq", "drq"))

    @property
    def sub_trajectory_length(self) -> int:
        """Transitions a sampled start needs after it: max(encoder horizon, n-step)."""
        return max(self.encoder.horizon, self.value.n_step)


# --------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------


def gym(env_id: str = "HalfCheetah-v5") -> MRQConfig:
    """MR.Q on Gymnasium MuJoCo (v5): no wrappers, 1M steps, evaluation every 5k."""
    return MRQConfig(env=EnvConfig(suite="gym", env_id=env_id))


def dmc(env_id: str = "cheetah-run") -> MRQConfig:
    """MR.Q on DMC proprioceptive: action repeat 2, 500k agent steps (1M frames)."""
    return MRQConfig(
        schedule=ScheduleConfig(total_steps=500_000),
        env=EnvConfig(suite="dmc", env_id=env_id, action_repeat=2),
    )


def dmc_visual(env_id: str = "cheetah-run") -> MRQConfig:
    """MR.Q on DMC visual: RGB 84x84, history 3, action repeat 2, 500k agent steps."""
    return MRQConfig(
        schedule=ScheduleConfig(total_steps=500_000),
        env=EnvConfig(suite="dmc", env_id=env_id, pixels=True, action_repeat=2, history=3),
    )


def atari(env_id: str = "Pong") -> MRQConfig:
    """MR.Q on Atari: grayscale 84x84, history 4, frame skip 4, sticky actions, 2.5M agent steps."""
    return MRQConfig(
        schedule=ScheduleConfig(total_steps=2_500_000, eval_interval=100_000),
        env=EnvConfig(suite="atari", env_id=env_id, action_repeat=4, history=4),
    )


def drq(base: MRQConfig, *, as_official_code: bool = False) -> MRQConfig:
    """Apply DR.Q's changes to an MR.Q config.

    The paper's changes: InfoNCE weight 0.1 (temperature 0.1), faded prioritised replay, encoder
    width 750, encoder lr 3e-4, weight decay 0.01 on all three optimizers.

    Args:
        base: An MR.Q preset (any suite; sizes of the ``tiny`` preset are kept except the encoder
            width, which is scaled by 750/512).
        as_official_code: Also apply what the official DR.Q code changes without the paper saying
            so: no reward scaling in the value target, no terminal loss, no value gradient clip,
            no policy pre-activation penalty. Off by default (see the README's Deviations table).

    Returns:
        A new config with ``algorithm="drq"``.
    """
    hidden = round(base.encoder.hidden_dim * 750 / 512)
    encoder = dataclasses.replace(
        base.encoder, hidden_dim=hidden, lr=3e-4, weight_decay=0.01, infonce_weight=0.1
    )
    value = dataclasses.replace(base.value, weight_decay=0.01)
    policy = dataclasses.replace(base.policy, weight_decay=0.01)
    if as_official_code:
        encoder = dataclasses.replace(encoder, done_weight=0.0)
        value = dataclasses.replace(value, reward_scaling=False, grad_clip=None)
        policy = dataclasses.replace(policy, pre_activ_weight=0.0)
    return dataclasses.replace(
        base,
        algorithm="drq",
        encoder=encoder,
        value=value,
        policy=policy,
        replay=dataclasses.replace(base.replay, sampling="faded"),
    )


def tiny(env_id: str = "InvertedPendulum-v5") -> MRQConfig:
    """Small-width MR.Q for tests and smoke runs on easy Gym tasks (not a paper setting).

    Widths 64 (zs, zsa, hidden) and 32 (za), batch 64, 17 bins, 250 random steps, targets synced
    and 25 encoder updates every 25 steps; everything else as the paper.
    """
    return MRQConfig(
        encoder=EncoderConfig(zs_dim=64, za_dim=32, zsa_dim=64, hidden_dim=64, num_bins=17),
        value=ValueConfig(hidden_dim=64),
        policy=PolicyConfig(hidden_dim=64),
        replay=ReplayConfig(capacity=20_000, batch_size=64),
        schedule=ScheduleConfig(
            total_steps=3_000,
            random_steps=250,
            target_update_interval=25,
            encoder_updates_per_sync=25,
            eval_interval=1_000,
            eval_episodes=5,
        ),
        env=EnvConfig(suite="gym", env_id=env_id),
    )


PRESETS: Mapping[str, Callable[[], MRQConfig]] = {
    "gym": gym,
    "dmc": dmc,
    "dmc_visual": dmc_visual,
    "atari": atari,
    "test": tiny,
    "gym_drq": lambda: drq(gym()),
    "dmc_drq": lambda: drq(dmc()),
    "dmc_visual_drq": lambda: drq(dmc_visual()),
    "atari_drq": lambda: drq(atari()),
    "test_drq": lambda: drq(tiny()),
}
"""Preset name -> zero-argument constructor (default environment of each suite)."""
