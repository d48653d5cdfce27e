"""Configuration for MRS.Q and its two comparison arms: one frozen dataclass per component.

MRS.Q ("The Surprising Difficulty of Search in Model-Based RL", ICML 2026, arXiv 2601.21306) is
MR.Q with short-horizon MPPI planning in MR.Q's latent space, a critic ensemble whose minimum
is used both in the TD target and at the planning horizon, simplicial-embedding (SimNorm)
latents, no extra exploration noise and a termination-loss weight of 1. The MR.Q part of the
config is :class:`mrq_drq.config.MRQConfig` itself (networks, losses, replay, schedule,
environment), never a copy; this module adds the planner, the ensemble and the diagnostics.

:func:`arm` builds the paper's three arms from any MR.Q preset: ``mrq`` (MR.Q, acting with its
policy), ``mpc`` (MR.Q + TD-MPC2's MPPI: 2 critics, their mean at the horizon, MR.Q's
exploration noise) and ``mrsq``. The paper's ablations are switches on the ``mrsq`` arm:
``critics.target_critics=2`` (minimum of 2 random heads), ``planner.value_reduction="mean"``
(no minimum at the planning horizon), ``latent_simnorm=None`` (no SimNorm); re-adding
exploration noise is ``mrq.policy.exploration_noise=0.2``.

Imports nothing heavy (``rl-train mbsearch --help`` reads it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, get_args

from mrq_drq.config import MRQConfig, gym, tiny
from rl_runtime.config import (
    DictCodec,
    check,
    int_at_least,
    non_negative,
    one_of,
    positive,
    positive_int,
)

__all__ = [
    "ARMS",
    "Arm",
    "Continuation",
    "CriticConfig",
    "DiagnosticConfig",
    "MRSQConfig",
    "PlannerConfig",
    "Reduction",
    "RewardDecode",
    "arm",
    "gym_arm",
    "small_mrq",
    "tiny_arm",
]

Arm = Literal["mrq", "mpc", "mrsq"]
"""MR.Q (policy acts), MR.Q + MPPI (TD-MPC2's planner on MR.Q), MRS.Q."""

ARMS: tuple[Arm, ...] = get_args(Arm)

Reduction = Literal["min", "mean"]
"""How the critic ensemble is combined into one value."""

Continuation = Literal["threshold", "soft"]
"""How the planner reads continuation off MR.Q's terminal head (see ``PlannerConfig``)."""

RewardDecode = Literal["local", "expectation"]
"""How the planner reads a reward off MR.Q's two-hot logits (see ``PlannerConfig``)."""


@dataclass(frozen=True)
class PlannerConfig:
    """MPPI in MR.Q's latent space; defaults are TD-MPC2's (``tdmpc2/config.yaml``)."""

    enabled: bool = True
    """Act by planning; ``False`` acts with MR.Q's policy (the ``mrq`` arm)."""
    horizon: int = 3
    """Planning horizon H (model steps before the terminal value)."""
    iterations: int = 6
    """MPPI iterations per environment step."""
    num_samples: int = 512
    """Trajectories scored per iteration, the policy-prior ones included (TD-MPC2's count)."""
    num_pi_trajs: int = 24
    """Of those, trajectories proposed by rolling the policy through the model."""
    num_elites: int = 64
    """Best trajectories the new mean and std are fitted to."""
    temperature: float = 0.5
    """Elite weights ``exp(temperature * (V - max V))`` (TD-MPC2 multiplies by it)."""
    min_std: float = 0.05
    """Lower clamp of the sampling std."""
    max_std: float = 2.0
    """Upper clamp of the sampling std, and its value at the start of every plan."""
    prior_noise: float = 0.2
    """Std of the Gaussian added to the policy-prior actions of all but the first prior
    trajectory (MR.Q's policy is deterministic; TD-MPC2's is sampled)."""
    value_reduction: Reduction = "min"
    """Combination of the critics at the horizon: ``min`` (MRS.Q) or ``mean`` (MR.Q+MPC, and the
    "no minimum at the planning horizon" ablation)."""
    continuation: Continuation = "threshold"
    """``threshold``: a rolled-out step ends the episode when the terminal head predicts more
    than 0.5 (TD-MPC2's rule), and nothing after it counts; ``soft``: every later reward and the
    terminal value are weighted by ``clamp(1 - done, 0, 1)`` of each step before."""
    reward_decode: RewardDecode = "local"
    """``local``: the expectation over the most likely bin and its two neighbours (exact for a
    two-hot, blind to the far bins); ``expectation``: over all bins. MR.Q's bins are spaced in
    symlog space up to symexp(10) = 22,026 and its two-hot is linear in raw units, so a 0.1%
    leak onto an edge bin moves the full expectation by 22: at small budgets that error swamps
    the rewards (MR.Q itself never decodes them)."""
    plan_noise: bool = True
    """While exploring, add ``std_0 * N(0, 1)`` to the chosen action, as TD-MPC2 does (the MPC
    sampling's own exploration; MR.Q's Gaussian noise is ``mrq.policy.exploration_noise``)."""
    warm_start: bool = True
    """Start each plan's mean from the previous plan shifted by one step."""

    def __post_init__(self) -> None:
        for name in ("horizon", "iterations", "num_samples", "num_elites"):
            positive_int(f"planner.{name}", getattr(self, name))
        int_at_least("planner.num_pi_trajs", self.num_pi_trajs, 0)
        check(
            self.num_pi_trajs < self.num_samples,
            f"planner.num_pi_trajs ({self.num_pi_trajs}) must be below planner.num_samples "
            f"({self.num_samples})",
        )
        check(
            self.num_elites <= self.num_samples,
            f"planner.num_elites ({self.num_elites}) must be at most planner.num_samples "
            f"({self.num_samples})",
        )
        positive("planner.temperature", self.temperature)
        positive("planner.min_std", self.min_std)
        check(
            self.max_std >= self.min_std,
            f"planner.max_std ({self.max_std}) must be >= planner.min_std ({self.min_std})",
        )
        non_negative("planner.prior_noise", self.prior_noise)
        one_of("planner.value_reduction", self.value_reduction, get_args(Reduction))
        one_of("planner.reward_decode", self.reward_decode, get_args(RewardDecode))
        one_of("planner.continuation", self.continuation, get_args(Continuation))


@dataclass(frozen=True)
class CriticConfig:
    """The critic ensemble on MR.Q's zsa."""

    num_critics: int = 10
    """Q heads (MRS.Q 10, MR.Q 2)."""
    target_critics: int | None = None
    """The TD target's minimum over this many heads drawn at random per update; ``None``: over
    all of them (MRS.Q). 2 is the paper's "min of 2 random heads" ablation."""
    batched: bool = True
    """All heads in one batched forward (``rl_nets.EnsembleMLP``); ``False``: MR.Q's separate
    MLPs (its checkpoints' layout)."""

    def __post_init__(self) -> None:
        positive_int("critics.num_critics", self.num_critics)
        if self.target_critics is not None:
            int_at_least("critics.target_critics", self.target_critics, 1)
            check(
                self.target_critics <= self.num_critics,
                f"critics.target_critics ({self.target_critics}) must be at most "
                f"critics.num_critics ({self.num_critics})",
            )


@dataclass(frozen=True)
class DiagnosticConfig:
    """The relative overestimation ``(Q(s, a) - G) / |G|`` on the states the run visited."""

    overestimation: bool = True
    """Measure it at the end of every training episode (one batched critic forward)."""
    min_tail: int = 460
    """A state of a truncated episode counts only with at least this many steps after it in the
    episode, so that its Monte-Carlo return is nearly complete (0.99^460 < 1%); every state of an
    episode that terminated counts."""

    def __post_init__(self) -> None:
        int_at_least("diagnostic.min_tail", self.min_tail, 0)


@dataclass(frozen=True)
class MRSQConfig(DictCodec):
    """Everything that defines an MR.Q / MR.Q+MPC / MRS.Q run."""

    arm: Arm = "mrsq"
    """Label only (the preset it was built from); behaviour comes from the fields."""
    mrq: MRQConfig = field(default_factory=MRQConfig)
    """MR.Q's config: encoder, value, policy, replay, schedule, environment."""
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    """Action selection."""
    critics: CriticConfig = field(default_factory=CriticConfig)
    """The critic ensemble."""
    latent_simnorm: int | None = 8
    """SimNorm group size on zs and the predicted next zs (TD-MPC2's 8); ``None``: MR.Q's
    LayerNorm + ELU."""
    diagnostic: DiagnosticConfig = field(default_factory=DiagnosticConfig)
    """The overestimation diagnostic."""

    def __post_init__(self) -> None:
        one_of("arm", self.arm, ARMS)
        if self.latent_simnorm is not None:
            positive_int("latent_simnorm", self.latent_simnorm)
            check(
                self.mrq.encoder.zs_dim % self.latent_simnorm == 0,
                f"latent_simnorm ({self.latent_simnorm}) must divide mrq.encoder.zs_dim "
                f"({self.mrq.encoder.zs_dim})",
            )


def arm(name: Arm, base: MRQConfig) -> MRSQConfig:
    """One of the paper's three arms on an MR.Q config (any preset, any widths).

    * ``mrq``: MR.Q as published (2 critics, policy acts with Gaussian noise 0.2).
    * ``mpc``: MR.Q + TD-MPC2's MPPI: the same MR.Q, acting by planning with the mean of its 2
      critics at the horizon (TD-MPC2 averages 2 of its heads), MR.Q's exploration noise kept.
    * ``mrsq``: MRS.Q: MPPI with the minimum of 10 critics at the horizon and in the TD target,
      SimNorm latents (group 8), no exploration noise, termination-loss weight 1.
    """
    one_of("arm", name, ARMS)
    if name == "mrsq":
        mrq = dataclasses.replace(
            base,
            encoder=dataclasses.replace(base.encoder, done_weight=1.0),
            policy=dataclasses.replace(base.policy, exploration_noise=0.0),
        )
        return MRSQConfig(arm="mrsq", mrq=mrq)
    return MRSQConfig(
        arm=name,
        mrq=base,
        planner=PlannerConfig(enabled=name == "mpc", value_reduction="mean"),
        critics=CriticConfig(num_critics=2, batched=False),
        latent_simnorm=None,
    )


def gym_arm(name: Arm = "mrsq", env_id: str = "HalfCheetah-v5") -> MRSQConfig:
    """An arm at the paper's sizes on a Gym MuJoCo task (MR.Q's ``gym`` preset underneath)."""
    return arm(name, gym(env_id))


def small_mrq(env_id: str = "InvertedPendulum-v5") -> MRQConfig:
    """MR.Q's ``tiny`` widths (64) with the paper's 65 reward bins: the planner decodes rewards
    from the two-hot, and ``tiny``'s 17 bins put the neighbours of 1 at 0 and 2.5."""
    base = tiny(env_id)
    return dataclasses.replace(base, encoder=dataclasses.replace(base.encoder, num_bins=65))


def tiny_arm(name: Arm = "mrsq", env_id: str = "InvertedPendulum-v5") -> MRSQConfig:
    """An arm on :func:`small_mrq` for tests and CPU runs (not a paper setting)."""
    return arm(name, small_mrq(env_id))
