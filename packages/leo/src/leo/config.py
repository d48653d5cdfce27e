"""Configs of LEO and its baselines (frozen dataclasses; importing this module loads no torch).

Each config's ``validate()`` raises a ValueError naming the command-line flag of a bad field;
``rl-train leo`` calls them after parsing (so a bad value is one line, not tyro's error box) and
:func:`leo.agent.make_agent` calls them for library use.

Defaults are purejaxgcrl's (Matthews et al. 2026, github.com/MichaelTMatthews/purejaxgcrl at
``ee6b6bc``): ``leo.py`` for LEO and Dual LEO (PQN), ``pqn.py`` (and ``sweeps/craftax/pqn_her.yaml``)
for goal-conditioned PQN and PQN+HER, ``ppo.py`` and ``dual_leo_ppo.py`` for the PPO family.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from rl_runtime.config import (
    check,
    flag,
    in_range,
    int_at_least,
    one_of,
    positive,
    positive_int,
    probability,
)

__all__ = [
    "ALGOS",
    "ENVS",
    "Algo",
    "EnvConfig",
    "EnvName",
    "EvalConfig",
    "HerMode",
    "NetworkConfig",
    "PPOConfig",
    "QConfig",
]

Algo = Literal["leo", "pqn", "pqn-her", "ppo", "dual-leo-ppo", "dual-leo-pqn"]
ALGOS: tuple[Algo, ...] = ("leo", "pqn", "pqn-her", "ppo", "dual-leo-ppo", "dual-leo-pqn")
EnvName = Literal["gridworld", "craftax-classic", "craftax"]
ENVS: tuple[EnvName, ...] = ("gridworld", "craftax-classic", "craftax")
HerMode = Literal["random", "positive", "mixed", "all"]


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The Q / actor-critic torso: input BatchRenorm, a small conv on the map part of Craftax
    observations, then dense layers with LayerNorm and ReLU (orthogonal init)."""

    width: int = 1024
    """Width of every dense layer."""
    dense_layers: int = 4
    """Dense layers of the Q trunk (PPO: see PPOConfig's actor/critic layers)."""
    conv_layers: int = 1
    """Conv layers on the map channels (Craftax only)."""
    conv_features: int = 32
    """Channels of each conv layer."""
    conv_kernel: int = 3
    """Conv kernel size ('same' padding)."""
    norm_input: bool = True
    """Batch Renormalization on the inputs (the map and flat parts separately), as upstream."""
    norm_momentum: float = 0.999
    """Momentum of the Batch Renormalization running statistics (upstream: 0.999, which takes
    thousands of updates to settle; acting and the targets use the running statistics)."""
    sigmoid: bool = True
    """Sigmoid on the Q outputs: rewards are 0/1 and reaching a goal ends it, so Q lies in [0, 1]."""

    def validate(self) -> None:
        """Raise a ValueError naming the flag of the first bad field."""
        for name in ("width", "dense_layers", "conv_features", "conv_kernel"):
            positive_int(flag(name, "network."), getattr(self, name))
        int_at_least("--network.conv-layers", self.conv_layers, 0)
        in_range("--network.norm-momentum", self.norm_momentum, 0.0, 1.0, high_open=True)


@dataclasses.dataclass(frozen=True)
class QConfig:
    """PQN-style Q-learning (LEO, goal-conditioned PQN, PQN+HER, Dual LEO (PQN)): no replay
    buffer, no target network, epochs of minibatch updates on each fresh rollout."""

    num_steps: int = 32
    """Steps per env in a rollout (LEO: 32; upstream pqn.py: 2)."""
    num_epochs: int = 2
    """Passes over each rollout."""
    minibatch_size: int = 512
    """Transitions per gradient step (PQN+HER: (transition, goal) pairs)."""
    gamma: float = 0.99
    """Discount."""
    lr: float = 2e-4
    """RAdam learning rate."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the run's gradient steps."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip."""
    eps_start: float = 0.2
    """Initial epsilon of epsilon-greedy on the acting goal."""
    eps_finish: float = 0.01
    """Final epsilon."""
    eps_decay: float = 0.2
    """Fraction of the run's rollouts over which epsilon decays linearly."""
    her_mode: HerMode = "mixed"
    """pqn-her: relabelled goals drawn at random from the goals seen, from the goals the state
    achieves (positive), both (mixed), or every goal (all: naive all-goals relabelling)."""
    her_num_goals: int = 2
    """pqn-her: relabelled goals per transition (random/positive/mixed; all uses every goal)."""
    her_random_fraction: float = 0.5
    """pqn-her mixed: fraction of the relabelled goals drawn at random (the rest positive)."""
    leo_weight: float = 0.3
    """dual-leo-pqn: acting values (1 - w) * Q_uvfa + w * Q_leo."""

    def validate(self) -> None:
        """Raise a ValueError naming the flag of the first bad field."""
        for name in ("num_steps", "num_epochs", "minibatch_size", "her_num_goals"):
            positive_int(flag(name, "q."), getattr(self, name))
        for name in ("gamma", "eps_start", "eps_finish", "eps_decay", "her_random_fraction",
                     "leo_weight"):  # fmt: skip
            probability(flag(name, "q."), getattr(self, name))
        positive("--q.lr", self.lr)
        positive("--q.max-grad-norm", self.max_grad_norm)
        one_of("--q.her-mode", self.her_mode, ("random", "positive", "mixed", "all"))


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Goal-conditioned PPO (ppo.py) and Dual LEO (PPO) (dual_leo_ppo.py)."""

    num_steps: int = 64
    """Steps per env in a rollout."""
    num_epochs: int = 1
    """Passes over each rollout."""
    minibatch_size: int = 2048
    """Transitions per PPO gradient step."""
    gamma: float = 0.995
    """Discount (also the LEO teacher's, as in dual_leo_ppo.py)."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_eps: float = 0.2
    """Ratio and value clip."""
    ent_coef: float = 0.005
    """Entropy bonus."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    lr: float = 2e-4
    """Adam learning rate."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip."""
    embedding_layers: int = 1
    """Shared dense layers after the conv."""
    actor_layers: int = 2
    """Dense layers of the actor head."""
    critic_layers: int = 4
    """Dense layers of the critic head."""
    bc_coef: float = 0.1
    """dual-leo-ppo: weight of -log pi(argmax_a Q_leo(s, g, a))."""
    anneal_bc: bool = True
    """dual-leo-ppo: anneal bc_coef linearly to 0 (upstream's Craftax sweep sets it)."""

    def validate(self) -> None:
        """Raise a ValueError naming the flag of the first bad field."""
        for name in ("num_steps", "num_epochs", "minibatch_size", "embedding_layers",
                     "actor_layers", "critic_layers"):  # fmt: skip
            positive_int(flag(name, "ppo."), getattr(self, name))
        for name in ("gamma", "gae_lambda"):
            probability(flag(name, "ppo."), getattr(self, name))
        for name in ("clip_eps", "lr", "max_grad_norm"):
            positive(flag(name, "ppo."), getattr(self, name))
        for name in ("ent_coef", "vf_coef", "bc_coef"):
            in_range(flag(name, "ppo."), getattr(self, name), 0.0, 1e6)


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """The batch of training environments."""

    num_envs: int = 1024
    """Environments stepped together."""
    reset_ratio: int = 16
    """Optimistic resets: one fresh world per this many envs is generated each step, and envs
    whose episode ended draw from them (1: a fresh world for every env)."""
    only_seen_goals: bool = True
    """New acting goals are drawn from the goals achieved so far (else from all goals)."""
    grid_size: int = 16
    """Gridworld: side of the square map."""
    grid_wall_threshold: float = 0.3
    """Gridworld: a cell is a wall where a uniform draw is below this."""
    grid_map_seed: int = 0
    """Gridworld: seed of the map (fixed across runs, like upstream's map seed)."""
    grid_max_steps: int = 200
    """Gridworld: episode length (episodes start at a random time in [0, 50), as upstream)."""

    def validate(self) -> None:
        """Raise a ValueError naming the flag of the first bad field."""
        positive_int("--envs.num-envs", self.num_envs)
        positive_int("--envs.reset-ratio", self.reset_ratio)
        check(
            self.num_envs % self.reset_ratio == 0,
            f"--envs.reset-ratio ({self.reset_ratio}) must divide --envs.num-envs "
            f"({self.num_envs})",
        )
        int_at_least("--envs.grid-size", self.grid_size, 2)
        in_range("--envs.grid-wall-threshold", self.grid_wall_threshold, 0.0, 1.0, high_open=True)
        int_at_least("--envs.grid-map-seed", self.grid_map_seed, 0)
        int_at_least("--envs.grid-max-steps", self.grid_max_steps, 51)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Success rates: live during training, and by a greedy test of every goal."""

    repeats: int = 1
    """Test episodes per goal (each goal is the acting goal of its own env's first episode)."""
    max_steps: int = 512
    """Steps of a test episode at most (upstream's test_num_steps)."""
    epsilon: float = 0.0
    """Epsilon of the test policy."""
    live_decay: float = 0.999
    """Per-rollout decay of the live per-goal success and failure counts."""

    def validate(self) -> None:
        """Raise a ValueError naming the flag of the first bad field."""
        positive_int("--evals.repeats", self.repeats)
        positive_int("--evals.max-steps", self.max_steps)
        probability("--evals.epsilon", self.epsilon)
        probability("--evals.live-decay", self.live_decay)
