"""Frozen configs of the fairbisim package: the two environments, the RL solvers (PPO, DQN),
the fairness baselines (R-PPO, A-PPO) and the Bisimulator.

Imports nothing heavy (no torch, no gymnasium), so ``rl-train fairbisim --help`` stays fast.
Every field the paper leaves open is a field here; the README gives each choice's reason.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from rl_runtime.config import (
    check,
    flag,
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
    "ENVS",
    "APPOConfig",
    "Algo",
    "BisimulatorConfig",
    "CollegeConfig",
    "DQNConfig",
    "EnvName",
    "FairBisimConfig",
    "LendingConfig",
    "PPOConfig",
    "RPPOConfig",
]

EnvName = Literal["lending", "college"]
Algo = Literal["bisimulator", "ppo", "dqn", "rppo", "appo"]
ENVS: tuple[EnvName, ...] = ("lending", "college")
ALGOS: tuple[Algo, ...] = ("bisimulator", "ppo", "dqn", "rppo", "appo")

# ml-fairness-gym's DelayedImpactParams (lending_params.py), after Liu et al. 2018.
DELAYED_IMPACT_CLUSTER_PROBS = (
    (0.0, 0.1, 0.1, 0.2, 0.3, 0.3, 0.0),
    (0.1, 0.1, 0.2, 0.3, 0.3, 0.0, 0.0),
)
DELAYED_IMPACT_SUCCESS_PROBS = (0.1, 0.2, 0.45, 0.6, 0.65, 0.7, 0.7)


def _prefix(name: str) -> str:
    return f"agent.{name}."


@dataclasses.dataclass(frozen=True)
class LendingConfig:
    """The delayed-impact lending environment (ml-fairness-gym's DelayedImpactEnv) in the RL
    formulation of POCAR / ELBERT (their cash, interest and episode length)."""

    group_likelihoods: tuple[float, float] = (0.5, 0.5)
    """Probability that an applicant belongs to group 0 / group 1."""
    cluster_probs: tuple[tuple[float, ...], tuple[float, ...]] = DELAYED_IMPACT_CLUSTER_PROBS
    """Initial credit-cluster distribution of group 0 (advantaged) and group 1."""
    success_probs: tuple[float, ...] = DELAYED_IMPACT_SUCCESS_PROBS
    """Repayment probability of each credit cluster."""
    cluster_shift_increment: float = 0.01
    """Probability mass moved one cluster up (repaid) or down (defaulted) per accepted loan."""
    loan_amount: float = 1.0
    """Lost on a default; the episode ends when the bank holds less than this."""
    interest_rate: float = 1.0
    """Earned per repaid loan, times loan_amount (POCAR/ELBERT: 1.0; ml-fairness-gym: 0.3)."""
    bank_starting_cash: float = 10_000.0
    """Cash at reset (POCAR/ELBERT: 10000; ml-fairness-gym: 1000)."""
    max_steps: int = 2_000
    """Time limit of a training episode (POCAR/ELBERT: 2000 steps)."""
    observe_tprs: bool = True
    """Append the two groups' running true-positive rates to the observation (POCAR/ELBERT)."""

    def __post_init__(self) -> None:
        p = _prefix("lending")
        check(
            len(self.group_likelihoods) == 2 and abs(sum(self.group_likelihoods) - 1) < 1e-6,
            f"{flag('group_likelihoods', p)} must be two probabilities summing to 1, "
            f"got {self.group_likelihoods!r}",
        )
        k = len(self.success_probs)
        check(k >= 2, f"{flag('success_probs', p)} needs at least 2 clusters, got {k}")
        for g, probs in enumerate(self.cluster_probs):
            check(
                len(probs) == k and abs(sum(probs) - 1) < 1e-6 and min(probs) >= 0,
                f"{flag('cluster_probs', p)}[{g}] must be {k} probabilities summing to 1, "
                f"got {probs!r}",
            )
        for q in self.success_probs:
            probability(flag("success_probs", p), q)
        probability(flag("cluster_shift_increment", p), self.cluster_shift_increment)
        positive(flag("loan_amount", p), self.loan_amount)
        non_negative(flag("interest_rate", p), self.interest_rate)
        positive(flag("bank_starting_cash", p), self.bank_starting_cash)
        positive_int(flag("max_steps", p), self.max_steps)

    @property
    def num_clusters(self) -> int:
        """Credit clusters (7)."""
        return len(self.success_probs)


@dataclasses.dataclass(frozen=True)
class CollegeConfig:
    """ml-fairness-gym's college-admission Stackelberg game, with a discretised threshold action
    and the admission-utility reward."""

    num_applicants: int = 20
    """Applicants per round (step)."""
    mix_weight: tuple[float, float] = (0.6, 0.4)
    """Probability that an applicant belongs to group 0 / group 1."""
    mu: tuple[float, float] = (0.8, 0.6)
    """Mean test score per group (clipped normal on [0, 1])."""
    sigma: tuple[float, float] = (0.1, 0.3)
    """Standard deviation of the test score per group."""
    true_threshold_factor: float = 0.1
    """An applicant of group g is eligible when score >= mu_g * (1 + factor)."""
    group_cost: tuple[float, float] = (0.8, 1.2)
    """Cost per score point of gaming, per group (group 1 pays more)."""
    gaming: bool = True
    """Applicants below the threshold raise their score to it when it pays (Stackelberg)."""
    gaming_control: float = 0.1
    """Most score points an applicant may add by gaming (ml-fairness-gym's default is inf: then
    every group-0 applicant can afford any threshold and no threshold excludes them; see the
    README)."""
    subsidize: bool = False
    """Group 1 pays only subsidy_beta of its gaming cost."""
    subsidy_beta: float = 0.8
    """Share of the gaming cost group 1 pays when subsidised."""
    max_steps: int = 100
    """Rounds per RL episode (ml-fairness-gym's max_steps is 100000; episodes are cut here)."""
    num_thresholds: int = 21
    """The discrete threshold grid of the RL action: linspace(0, 1, num_thresholds)."""
    epsilons: tuple[float, ...] = (0.0,)
    """The epsilon_prob values offered with each threshold (action = threshold x epsilon)."""
    false_positive_cost: float = 1.0
    """Utility reward: +1 per admitted eligible applicant, -this per admitted ineligible one."""

    def __post_init__(self) -> None:
        p = _prefix("college")
        positive_int(flag("num_applicants", p), self.num_applicants)
        check(
            len(self.mix_weight) == 2 and abs(sum(self.mix_weight) - 1) < 1e-6,
            f"{flag('mix_weight', p)} must be two probabilities summing to 1, got "
            f"{self.mix_weight!r}",
        )
        for name in ("mu", "sigma", "group_cost"):
            values = getattr(self, name)
            check(len(values) == 2, f"{flag(name, p)} needs one value per group, got {values!r}")
            for v in values:
                non_negative(flag(name, p), v)
        check(
            self.gaming_control == float("inf") or 0 <= self.gaming_control <= 1,
            f"{flag('gaming_control', p)} must be inf or in [0, 1], got {self.gaming_control!r}",
        )
        probability(flag("subsidy_beta", p), self.subsidy_beta)
        positive_int(flag("max_steps", p), self.max_steps)
        int_at_least(flag("num_thresholds", p), self.num_thresholds, 2)
        check(len(self.epsilons) >= 1, f"{flag('epsilons', p)} must not be empty")
        for e in self.epsilons:
            probability(flag("epsilons", p), e)
        non_negative(flag("false_positive_cost", p), self.false_positive_cost)

    @property
    def num_actions(self) -> int:
        """Discrete actions: thresholds x epsilons."""
        return self.num_thresholds * len(self.epsilons)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO (the solver of ppo, rppo, appo and, by default, bisimulator)."""

    hidden_sizes: tuple[int, ...] = (256, 128)
    """Actor and critic hidden widths (POCAR/ELBERT: 256-128 ReLU)."""
    lr: float = 3e-4
    """Adam learning rate (POCAR/ELBERT use 1e-5 over 10M steps; our budgets are far smaller)."""
    clip_coef: float = 0.2
    """Ratio (and value) clip."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    ent_coef: float = 0.01
    """Entropy bonus."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""

    def __post_init__(self) -> None:
        p = _prefix("ppo")
        layer_sizes(flag("hidden_sizes", p), self.hidden_sizes)
        positive(flag("lr", p), self.lr)
        positive(flag("clip_coef", p), self.clip_coef)
        non_negative(flag("vf_coef", p), self.vf_coef)
        non_negative(flag("ent_coef", p), self.ent_coef)
        positive(flag("max_grad_norm", p), self.max_grad_norm)


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """DQN on the on-policy loop: a Q-network regressed on the rollout's Q(lambda) returns
    (PQN-style, no replay), epsilon-greedy exploration."""

    hidden_sizes: tuple[int, ...] = (256, 128)
    """Q-network hidden widths."""
    lr: float = 3e-4
    """Adam learning rate."""
    epsilon_start: float = 1.0
    """Exploration rate at step 0."""
    epsilon_end: float = 0.05
    """Exploration rate after epsilon_decay_steps."""
    epsilon_decay_steps: int = 20_000
    """Environment steps of the linear epsilon decay."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""

    def __post_init__(self) -> None:
        p = _prefix("dqn")
        layer_sizes(flag("hidden_sizes", p), self.hidden_sizes)
        positive(flag("lr", p), self.lr)
        probability(flag("epsilon_start", p), self.epsilon_start)
        probability(flag("epsilon_end", p), self.epsilon_end)
        positive_int(flag("epsilon_decay_steps", p), self.epsilon_decay_steps)
        positive(flag("max_grad_norm", p), self.max_grad_norm)


@dataclasses.dataclass(frozen=True)
class RPPOConfig:
    """R-PPO: PPO on the reward minus a fairness penalty (POCAR's reward-only baseline)."""

    zeta0: float = 1.0
    """Weight of the task reward (POCAR/ELBERT ZETA_0)."""
    zeta1: float = 2.0
    """Weight of the penalty |TPR_0 - TPR_1| (POCAR/ELBERT R-PPO: 2)."""
    omega: float = 0.005
    """The penalty applies only while the gap is at least omega (POCAR/ELBERT: 0.005)."""

    def __post_init__(self) -> None:
        p = _prefix("rppo")
        non_negative(flag("zeta0", p), self.zeta0)
        non_negative(flag("zeta1", p), self.zeta1)
        non_negative(flag("omega", p), self.omega)


@dataclasses.dataclass(frozen=True)
class APPOConfig:
    """A-PPO: POCAR's advantage regularisation (Yu et al. 2022, eq. 3)."""

    beta0: float = 1.0
    """Weight of the task advantage."""
    beta1: float = 0.25
    """Weight of the value-thresholding term min(0, omega - gap)."""
    beta2: float = 0.25
    """Weight of the decrease-in-violation term while the gap exceeds omega."""
    omega: float = 0.005
    """Gap threshold."""
    model_lr: float = 1e-3
    """Adam learning rate of the one-step gap-change model."""
    model_steps: int = 20
    """Gradient steps of the gap-change model per rollout."""

    def __post_init__(self) -> None:
        p = _prefix("appo")
        for name in ("beta0", "beta1", "beta2", "omega"):
            non_negative(flag(name, p), getattr(self, name))
        positive(flag("model_lr", p), self.model_lr)
        positive_int(flag("model_steps", p), self.model_steps)


@dataclasses.dataclass(frozen=True)
class BisimulatorConfig:
    """The Bisimulator: learned reward r_phi = r + delta_phi and observation map o_psi, trained to
    make quantile-matched states of the two groups bisimilar under the learner's policy."""

    solver: Literal["ppo", "dqn"] = "ppo"
    """The unchanged RL solver run on the Bisimulator's MDP."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden widths of the reward correction, the reward model and the metric network."""
    lr: float = 3e-3
    """Adam learning rate of the reward correction and the observation map."""
    metric_lr: float = 1e-3
    """Adam learning rate of the metric network and the reward model."""
    metric_discount: float = 0.9
    """gamma of the pi-bisimulation metric's next-state term."""
    next_state: Literal["expected", "sampled"] = "expected"
    """Next states in the metric: the expected next feature from a learned dynamics model, or
    the sampled one (MICo-style; its independent coupling keeps identical applicants apart)."""
    metric_target_tau: float = 0.05
    """Polyak rate of the metric's target network."""
    num_quantiles: int = 64
    """Quantile-matched pairs per group pair and gradient step."""
    metric_steps: int = 20
    """Metric (TD) gradient steps per rollout."""
    bisim_steps: int = 50
    """Reward/observation (Bisimulator) gradient steps per rollout, after the metric steps."""
    bisim_weight: float = 1.0
    """Weight of the matched pairs' bisimulation distance in the Bisimulator loss."""
    alignment_weight: float = 1.0
    """Weight of the DBC-style term that makes the L1 distance of a matched pair's observations
    equal to their bisimulation distance."""
    reward_fidelity: float = 1.0
    """lambda_r: weight of E[delta_phi^2], which keeps r_phi near the true reward."""
    observation_fidelity: float = 1.0
    """lambda_o: weight of E[|o_psi(x) - x|^2], which keeps o_psi near the identity."""
    learn_reward: bool = True
    """Learn r_phi (off: the true reward)."""
    learn_observation: bool = True
    """Learn o_psi (off: the identity)."""
    acceptance_temperature: float = 0.05
    """College: temperature of the smooth admission rule through which o_psi gets gradients."""
    warmup_rollouts: int = 1
    """Rollouts on the original MDP before the first Bisimulator update (the metric is fitted
    from the first rollout on)."""

    def __post_init__(self) -> None:
        p = _prefix("bisim")
        one_of(flag("solver", p), self.solver, ("ppo", "dqn"))
        one_of(flag("next_state", p), self.next_state, ("expected", "sampled"))
        layer_sizes(flag("hidden_sizes", p), self.hidden_sizes)
        positive(flag("lr", p), self.lr)
        positive(flag("metric_lr", p), self.metric_lr)
        in_range(flag("metric_discount", p), self.metric_discount, 0.0, 1.0, high_open=True)
        in_range(flag("metric_target_tau", p), self.metric_target_tau, 0.0, 1.0, low_open=True)
        int_at_least(flag("num_quantiles", p), self.num_quantiles, 1)
        int_at_least(flag("metric_steps", p), self.metric_steps, 0)
        int_at_least(flag("bisim_steps", p), self.bisim_steps, 0)
        for name in ("bisim_weight", "alignment_weight", "reward_fidelity", "observation_fidelity"):
            non_negative(flag(name, p), getattr(self, name))
        positive(flag("acceptance_temperature", p), self.acceptance_temperature)
        int_at_least(flag("warmup_rollouts", p), self.warmup_rollouts, 0)


@dataclasses.dataclass(frozen=True)
class FairBisimConfig:
    """Everything the fairbisim learner needs besides the loop's schedule."""

    algo: Algo = "bisimulator"
    """bisimulator, ppo, dqn, rppo (reward penalty) or appo (advantage regularisation)."""
    env_name: EnvName = "lending"
    """lending or college."""
    lending: LendingConfig = dataclasses.field(default_factory=LendingConfig)
    """The lending environment."""
    college: CollegeConfig = dataclasses.field(default_factory=CollegeConfig)
    """The college-admission environment."""
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    """PPO (ppo, rppo, appo, bisimulator with solver ppo)."""
    dqn: DQNConfig = dataclasses.field(default_factory=DQNConfig)
    """DQN (dqn, bisimulator with solver dqn)."""
    rppo: RPPOConfig = dataclasses.field(default_factory=RPPOConfig)
    """R-PPO's penalty."""
    appo: APPOConfig = dataclasses.field(default_factory=APPOConfig)
    """A-PPO's advantage regularisation."""
    bisim: BisimulatorConfig = dataclasses.field(default_factory=BisimulatorConfig)
    """The Bisimulator."""

    def __post_init__(self) -> None:
        one_of("--algo", self.algo, ALGOS)
        one_of("--env", self.env_name, ENVS)

    @property
    def solver(self) -> Literal["ppo", "dqn"]:
        """The RL solver this algo trains with."""
        if self.algo == "dqn":
            return "dqn"
        if self.algo == "bisimulator":
            return self.bisim.solver
        return "ppo"
