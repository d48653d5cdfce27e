"""Configuration of HBS, SOL-style options and flat PPO on NetHack: one frozen dataclass per
component. Imports neither torch nor nle (``rl-train hbs --help`` stays light).

Defaults follow SOL's NetHack configuration (``facebookresearch/sol``, ``exp_configs``: reward
scales, gamma, option lengths ``2^k, k = 0..7``) scaled down to a CPU; where HBS's paper is
silent (the weights' distribution, the controller's timescale) the field says what was chosen
and the README says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from rl_runtime.config import (
    check,
    in_range,
    int_at_least,
    layer_sizes,
    non_negative,
    one_of,
    positive,
    positive_int,
    probability,
)

__all__ = [
    "ALGOS",
    "DEFAULT_REWARDS",
    "DEFAULT_SCALES",
    "OBSERVATION_KEYS",
    "Algo",
    "EnvConfig",
    "HBSConfig",
    "NetworkConfig",
    "ObservationKey",
    "ObservationKeyError",
    "OptionConfig",
    "PPOConfig",
    "RolloutSource",
    "Task",
    "WeightsDist",
    "check_observation_keys",
    "smoke",
]

Task = Literal["score", "challenge"]
"""``score``: ``NetHackScore-v0`` (23 actions, in-game score as the task reward); ``challenge``:
``NetHackChallenge-v0`` (121 actions, random character, the NeurIPS 2021 challenge setting)."""

ObservationKey = Literal["glyphs", "blstats", "message"]
"""The observation keys this package reads (each one is packed into one int32 vector)."""

Algo = Literal["hbs", "options", "flat"]
"""``hbs``: the controller outputs a weight vector over the K reward functions; ``options``:
SOL-style, the controller picks one reward function (one-hot weights); ``flat``: no controller,
PPO on the task reward alone."""
ALGOS: tuple[Algo, ...] = get_args(Algo)

WeightsDist = Literal["grid", "dirichlet"]
"""HBS's controller distribution over weights: ``grid``, a factored categorical over
``weight_levels`` evenly spaced values in [0, 1] per reward function (the multi-discrete
controller of SOL's later ``sol_md_*`` NetHack configs, 3 levels, unnormalised); ``dirichlet``, a
Dirichlet on the simplex."""

RolloutSource = Literal["inprocess", "subprocess", "ray"]
"""Where the environments run: one process stepping the whole batch (default), gymnasium's
async vector env (a worker process per env), or Ray actors each stepping a shard of the batch."""

DEFAULT_REWARDS: tuple[str, ...] = (
    "score",
    "health",
    "gold",
    "eating",
    "scout",
    "descend",
    "kills",
    "armor",
)
"""Every reward function of :mod:`hbs.rewards`, in the order of the weight vector."""

DEFAULT_SCALES: dict[str, float] = {
    "score": 1.0,
    "health": 10.0,
    "gold": 1.0,
    "eating": 1.0,
    "scout": 1.0,
    "descend": 100.0,
    "kills": 1.0,
    "armor": 10.0,
}
"""Per-function scales: SOL's NetHack configs for score (1), health (10), scout (1) and its
staircase reward (dlvl 100); gold, eating, kills and armour are this package's (one coin, one
meal, one kill per unit; an armour-class point is worth a health point)."""


OBSERVATION_KEYS: tuple[ObservationKey, ...] = get_args(ObservationKey)


class ObservationKeyError(ValueError):
    """An observation key this package cannot read (or a repeated / missing one)."""


def check_observation_keys(keys: tuple[str, ...]) -> None:
    """Raise :class:`ObservationKeyError` naming the first key outside glyphs, blstats, message.

    Other NLE keys (``screen_descriptions``, ``tty_chars``, ...) are refused rather than ignored:
    the network and the rewards would never read them, and they cost step time.
    """
    if not keys:
        raise ObservationKeyError("--agent.env.observation-keys: give at least one key")
    for key in keys:
        if key not in OBSERVATION_KEYS:
            raise ObservationKeyError(
                f"--agent.env.observation-keys: unknown or unsupported observation key {key!r}; "
                f"this package reads {', '.join(OBSERVATION_KEYS)}"
            )


@dataclass(frozen=True)
class EnvConfig:
    """The NetHack environment (``nle``)."""

    task: Task = "score"
    """NetHackScore-v0 or NetHackChallenge-v0."""
    observation_keys: tuple[ObservationKey, ...] = ("glyphs", "blstats", "message")
    """NLE observation keys (glyphs and blstats are required by the rewards and the network;
    no screen descriptions: they cost about half the step time)."""
    character: str = "mon-hum-neu-mal"
    """NLE character (role-race-alignment-gender; ``@`` picks at random). Challenge uses ``@``."""
    max_episode_steps: int = 5_000
    """Episode cut (truncation, bootstrapped), NLE's default."""
    fix_moon_phase: bool = True
    """Derive moon phase, Friday 13th and night from the seed instead of the clock (replays)."""
    fixed_seed: int | None = None
    """Start every episode from this seed (one dungeon, replayed with every reset: the learning
    test's short budget); None: each episode's own seed from the loop."""

    def __post_init__(self) -> None:
        one_of("--agent.env.task", self.task, get_args(Task))
        check_observation_keys(self.observation_keys)
        for key in ("glyphs", "blstats"):
            check(
                key in self.observation_keys,
                f"--agent.env.observation-keys must include {key} (the rewards read it)",
            )
        check(
            len(set(self.observation_keys)) == len(self.observation_keys),
            "--agent.env.observation-keys: a key is repeated",
        )
        positive_int("--agent.env.max-episode-steps", self.max_episode_steps)
        if self.fixed_seed is not None:
            int_at_least("--agent.env.fixed-seed", self.fixed_seed, 0)


@dataclass(frozen=True)
class NetworkConfig:
    """The one network shared by the controller and the worker."""

    glyph_embed: int = 16
    """Glyph embedding width."""
    crop: int = 9
    """Side of the egocentric glyph crop around the agent (odd)."""
    conv_channels: int = 32
    """Channels of the two 3x3 conv layers on the crop; 0: no convolution (the embedded crop is
    flattened into the torso)."""
    message_buckets: int = 1024
    """Hash buckets of the message's byte bigrams (an embedding bag)."""
    message_embed: int = 32
    """Message embedding width."""
    blstats_hidden: int = 64
    """Width of the blstats encoder."""
    hidden: tuple[int, ...] = (256, 256)
    """Torso MLP after the encoders are concatenated."""

    def __post_init__(self) -> None:
        for name in (
            "glyph_embed",
            "message_buckets",
            "message_embed",
            "blstats_hidden",
        ):
            positive_int(f"--agent.network.{name.replace('_', '-')}", getattr(self, name))
        int_at_least("--agent.network.conv-channels", self.conv_channels, 0)
        int_at_least("--agent.network.crop", self.crop, 3)
        check(self.crop % 2 == 1, f"--agent.network.crop must be odd, got {self.crop}")
        layer_sizes("--agent.network.hidden", self.hidden)


@dataclass(frozen=True)
class OptionConfig:
    """The controller's choices: weights over the reward functions and an option length."""

    rewards: tuple[str, ...] = DEFAULT_REWARDS
    """Reward functions (names in hbs.rewards.REWARDS), in the order of the weight vector."""
    reward_scales: tuple[float, ...] = ()
    """Scale of each reward function before weighting, one per reward; empty: DEFAULT_SCALES
    (SOL's NetHack scales where it has them, 1 for a function it does not know)."""
    worker_reward_scale: float = 0.01
    """Global scale of the worker's reward sum_k w_k * scale_k * r_k (SOL: reward_scale 0.01)."""
    controller_reward_scale: float = 0.01
    """Scale of the task reward (the env's: NetHackScore's score change) that the controller,
    and flat PPO's worker, maximise."""
    max_length_exponent: int = 7
    """Option lengths are 2^k for k = 0..max_length_exponent (SOL: 7, i.e. 1..128)."""
    weights_dist: WeightsDist = "grid"
    """HBS's weights distribution (see WeightsDist)."""
    weight_levels: int = 3
    """Levels of the grid distribution: evenly spaced in [0, 1] (SOL's sol_md: 3, linear)."""
    dirichlet_min_concentration: float = 0.1
    """Floor on the Dirichlet's concentrations (softplus + floor)."""
    growing_rewards: tuple[int, ...] = ()
    """Ablation: steps (environment steps) at which the next reward function joins the set;
    the set starts with the first len(rewards) - len(growing_rewards) functions. Empty: fixed."""

    def __post_init__(self) -> None:
        check(len(self.rewards) >= 1, "--agent.options.rewards: give at least one reward")
        check(
            len(set(self.rewards)) == len(self.rewards),
            "--agent.options.rewards: a reward is repeated",
        )
        check(
            len(self.reward_scales) in (0, len(self.rewards)),
            f"--agent.options.reward-scales: one per reward ({len(self.rewards)}), got "
            f"{len(self.reward_scales)}",
        )
        for s in self.reward_scales:
            non_negative("--agent.options.reward-scales", s)
        positive("--agent.options.worker-reward-scale", self.worker_reward_scale)
        positive("--agent.options.controller-reward-scale", self.controller_reward_scale)
        in_range("--agent.options.max-length-exponent", self.max_length_exponent, 0, 10)
        one_of("--agent.options.weights-dist", self.weights_dist, get_args(WeightsDist))
        int_at_least("--agent.options.weight-levels", self.weight_levels, 2)
        positive("--agent.options.dirichlet-min-concentration", self.dirichlet_min_concentration)
        check(
            len(self.growing_rewards) < len(self.rewards),
            "--agent.options.growing-rewards: fewer steps than rewards (one reward starts)",
        )
        check(
            list(self.growing_rewards) == sorted(self.growing_rewards)
            and all(s > 0 for s in self.growing_rewards),
            "--agent.options.growing-rewards: increasing positive steps",
        )

    @property
    def scales(self) -> tuple[float, ...]:
        """The scale of each reward function (``reward_scales`` or the defaults)."""
        if self.reward_scales:
            return self.reward_scales
        return tuple(DEFAULT_SCALES.get(name, 1.0) for name in self.rewards)

    @property
    def num_rewards(self) -> int:
        """K."""
        return len(self.rewards)

    @property
    def num_lengths(self) -> int:
        """How many option lengths the controller chooses from."""
        return self.max_length_exponent + 1


@dataclass(frozen=True)
class PPOConfig:
    """PPO on the worker's and the controller's transitions (one optimiser, summed losses)."""

    lr: float = 3e-4
    """Adam learning rate."""
    anneal_lr: bool = False
    """Linear decay of the learning rate to 0 over the run."""
    clip_coef: float = 0.2
    """Ratio (and value) clipping."""
    vf_coef: float = 0.5
    """Value-loss weight (SOL: value_loss_coeff 0.5)."""
    ent_coef: float = 0.01
    """Worker entropy weight."""
    controller_ent_coef: float = 0.01
    """Controller entropy weight (weights and length)."""
    controller_loss_coef: float = 1.0
    """Weight of the controller's PPO loss in the summed loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    gamma: float = 0.99
    """Worker discount per environment step (SOL: 0.99)."""
    controller_gamma: float = 0.99
    """Controller discount per decision (SOL discounts each policy per own step)."""
    gae_lambda: float = 0.95
    """GAE lambda, worker and controller."""
    num_envs: int = 16
    """Environments stepped as one batch (N)."""
    num_steps: int = 128
    """Steps per env per rollout (T)."""
    update_epochs: int = 2
    """Passes over each rollout."""
    num_minibatches: int = 4
    """Minibatches per pass (worker and controller batches each split this many ways)."""

    def __post_init__(self) -> None:
        for name in ("lr", "clip_coef", "max_grad_norm"):
            positive(f"--agent.ppo.{name.replace('_', '-')}", getattr(self, name))
        for name in ("vf_coef", "ent_coef", "controller_ent_coef", "controller_loss_coef"):
            non_negative(f"--agent.ppo.{name.replace('_', '-')}", getattr(self, name))
        for name in ("gamma", "controller_gamma", "gae_lambda"):
            probability(f"--agent.ppo.{name.replace('_', '-')}", getattr(self, name))
        for name in ("num_envs", "num_steps", "update_epochs", "num_minibatches"):
            positive_int(f"--agent.ppo.{name.replace('_', '-')}", getattr(self, name))
        check(
            (self.num_envs * self.num_steps) % self.num_minibatches == 0,
            f"--agent.ppo.num-minibatches ({self.num_minibatches}) must divide num-envs x "
            f"num-steps ({self.num_envs} x {self.num_steps})",
        )

    @property
    def rollout_steps(self) -> int:
        """Environment steps per rollout (N * T)."""
        return self.num_envs * self.num_steps


@dataclass(frozen=True)
class HBSConfig:
    """Everything the agent and its loop need."""

    algo: Algo = "hbs"
    """hbs, options (SOL-style) or flat PPO."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The NetHack task."""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    """The shared network."""
    options: OptionConfig = field(default_factory=OptionConfig)
    """Reward functions and the controller's choices."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """The update."""
    source: RolloutSource = "inprocess"
    """Where the environments run."""
    workers: int = 2
    """Ray actors (source ray); each steps num_envs / workers envs."""

    def __post_init__(self) -> None:
        one_of("--algo", self.algo, ALGOS)
        one_of("--agent.source", self.source, get_args(RolloutSource))
        positive_int("--agent.workers", self.workers)
        if self.source == "ray":
            check(
                self.ppo.num_envs % self.workers == 0,
                f"--agent.workers ({self.workers}) must divide --agent.ppo.num-envs "
                f"({self.ppo.num_envs})",
            )


def smoke() -> HBSConfig:
    """Tiny widths and batches for tests."""
    return HBSConfig(
        network=NetworkConfig(
            glyph_embed=8,
            crop=5,
            conv_channels=8,
            message_buckets=64,
            message_embed=8,
            blstats_hidden=16,
            hidden=(32,),
        ),
        env=EnvConfig(max_episode_steps=200),
        ppo=PPOConfig(num_envs=2, num_steps=16, num_minibatches=2, update_epochs=1),
    )
