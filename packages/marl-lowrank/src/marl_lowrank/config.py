"""Configuration: one frozen dataclass per component (imports nothing heavy: the command line's
``--help`` reads these).

:class:`CriticConfig` picks the critic class (interaction rank), :class:`TD3BCConfig` the
decentralised TD3+BC learner of the paper's experiments, :class:`DRACConfig` the decentralised
regularised actor-critic (DR-AC) for discrete actions, :class:`GameConfig` the N-agent
contextual game and :class:`SpreadConfig` PettingZoo's (mpe2) simple_spread. Where the paper is
silent the field's docstring says so and the README's Deviations table gives the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    "Behaviour",
    "CriticConfig",
    "CriticKind",
    "DRACConfig",
    "GameConfig",
    "OthersActions",
    "Regularizer",
    "SpreadBehaviour",
    "SpreadConfig",
    "TD3BCConfig",
]

CriticKind = Literal["ir1", "ir2", "irk", "joint", "independent"]
"""Critic class for agent i: ``ir1`` sum_j f(s, a_j) (single-agent value decomposition),
``ir2`` sum_j f(s, a_i, a_j) (one shared pair network), ``irk`` the sum over every subset of at
most K agents (small N and K), ``joint`` f(s, a_1..a_N), ``independent`` f(s, a_i)."""

OthersActions = Literal["policy", "data"]
"""The other agents' actions in agent i's actor loss: their current policies' (DR-AC's local Q
against the others' current iterates) or the dataset's (MADDPG/BRUD style)."""

Regularizer = Literal["chi2", "kl"]
"""DR-AC's behaviour regulariser: chi^2(pi || mu) (the paper's contextual-game algorithm) or
KL(pi || mu)."""

Behaviour = Literal["uniform", "biased", "noisy-good"]
"""Behaviour policy of a game dataset (README: Datasets)."""

SpreadBehaviour = Literal["scripted", "noisy", "random"]
"""Behaviour policy of a simple_spread dataset: the scripted go-to-landmark controller, the same
with Gaussian noise and random actions mixed in, or uniform random actions."""


@dataclass(frozen=True)
class CriticConfig:
    """The critic class and its shared network."""

    kind: CriticKind = "ir2"
    """Interaction rank of the critic (see :data:`CriticKind`)."""
    k: int = 3
    """Largest subset size of the ``irk`` critic (ignored by the others)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden widths of the shared term network (per pair for ir2, per agent for ir1...). The
    paper does not give them; small widths keep N = 50 pairs (2,500 terms a sample) cheap."""
    agent_id: bool = True
    """Feed one-hot agent ids to the term networks (parameter sharing with an agent id, as the
    paper's actors)."""
    num_critics: int = 2
    """Critics trained side by side; TD3's clipped double-Q target takes their minimum."""

    def __post_init__(self) -> None:
        one_of("--critic", self.kind, get_args(CriticKind))
        int_at_least("--<algo>.critic.k", self.k, 1)
        layer_sizes("--<algo>.critic.hidden-sizes", self.hidden_sizes)
        positive_int("--<algo>.critic.num-critics", self.num_critics)


@dataclass(frozen=True)
class TD3BCConfig:
    """Decentralised TD3+BC (Fujimoto & Gu, 2021) with one actor shared by all agents (plus an
    agent id); defaults are TD3+BC's."""

    critic: CriticConfig = CriticConfig()
    """The critic class."""
    actor_hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden widths of the shared actor."""
    actor_lr: float = 3e-4
    """Actor Adam learning rate (TD3+BC: 3e-4)."""
    critic_lr: float = 3e-4
    """Critic Adam learning rate (TD3+BC: 3e-4)."""
    discount: float = 0.99
    """Discount; the contextual game's one-step episodes never bootstrap."""
    tau: float = 0.005
    """Target-network soft update rate."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise (actions in [-1, 1])."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise."""
    policy_freq: int = 2
    """Critic updates per actor (and target) update."""
    alpha: float = 2.5
    """TD3+BC's alpha: lambda = alpha / mean |Q| weighs Q against the behaviour-cloning term."""
    batch_size: int = 256
    """Joint transitions per update."""
    others: OthersActions = "policy"
    """Other agents' actions in agent i's actor loss (the paper does not say; DR-AC evaluates
    against the others' current policies, so that is the default)."""

    def __post_init__(self) -> None:
        layer_sizes("--td3bc.actor-hidden-sizes", self.actor_hidden_sizes)
        positive("--td3bc.actor-lr", self.actor_lr)
        positive("--td3bc.critic-lr", self.critic_lr)
        in_range("--td3bc.discount", self.discount, 0.0, 1.0)
        in_range("--td3bc.tau", self.tau, 0.0, 1.0, low_open=True)
        non_negative("--td3bc.policy-noise", self.policy_noise)
        non_negative("--td3bc.noise-clip", self.noise_clip)
        positive_int("--td3bc.policy-freq", self.policy_freq)
        non_negative("--td3bc.alpha", self.alpha)
        positive_int("--td3bc.batch-size", self.batch_size)
        one_of("--td3bc.others", self.others, get_args(OthersActions))


@dataclass(frozen=True)
class DRACConfig:
    """DR-AC for discrete actions: a K-IR critic fitted by least squares, then no-regret
    mirror-descent (multiplicative-weights) updates of every agent's policy against its local Q
    under the others' current iterates, minus a behaviour regulariser; the output is the uniform
    mixture of the iterates."""

    critic: CriticConfig = CriticConfig()
    """The critic class."""
    critic_lr: float = 1e-3
    """Adam learning rate of the least-squares critic fit."""
    batch_size: int = 256
    """Joint samples per critic step."""
    critic_steps: int = 2_000
    """Least-squares steps before the no-regret iterations (the game's Q is its reward, which
    does not depend on the policies, so one fit serves every iterate)."""
    iterations: int = 200
    """No-regret iterations T (the output mixes T iterates)."""
    eta: float = 0.5
    """Mirror-descent step size."""
    reg: Regularizer = "chi2"
    """Behaviour regulariser (see :data:`Regularizer`)."""
    reg_coef: float = 0.01
    """Weight of the regulariser (0: plain multiplicative weights on the critic). The paper gives
    no value; chi^2's gradient 2 pi / mu is large where the data rarely shows an action, so a
    small weight already pins such actions (README: DR-AC)."""
    behaviour_smoothing: float = 1.0
    """Add-one (Laplace) count added to every action when estimating mu_i from the data."""
    mc_samples: int = 64
    """Samples of the others' actions for the local Q of the joint and irk critics (ir1, ir2 and
    independent critics marginalise exactly)."""

    def __post_init__(self) -> None:
        positive("--drac.critic-lr", self.critic_lr)
        positive_int("--drac.batch-size", self.batch_size)
        int_at_least("--drac.critic-steps", self.critic_steps, 0)
        positive_int("--drac.iterations", self.iterations)
        positive("--drac.eta", self.eta)
        one_of("--drac.reg", self.reg, get_args(Regularizer))
        non_negative("--drac.reg-coef", self.reg_coef)
        positive("--drac.behaviour-smoothing", self.behaviour_smoothing)
        positive_int("--drac.mc-samples", self.mc_samples)


@dataclass(frozen=True)
class GameConfig:
    """The contextual game r_i(s, a) = sum_j a_i a_j / N + U(-sigma, sigma) (the paper's
    2-IR reward; it ignores the context) and its offline dataset."""

    num_agents: int = 50
    """N (the paper: 50)."""
    sigma: float = 0.1
    """Reward noise half-width (the paper: sigma > 0, value not given)."""
    context_dim: int = 2
    """Context dimension (contexts s ~ U[-1, 1]^d; the reward ignores them, as the paper's)."""
    num_actions: int = 0
    """0: continuous actions in [-1, 1]; A >= 2: discrete actions with values evenly spaced in
    [-1, 1] (DR-AC)."""
    num_contexts: int = 1
    """Discrete games: contexts drawn uniformly from this many (one-hot); DR-AC keeps one
    policy table per context."""
    behaviour: Behaviour = "uniform"
    """Behaviour policy of the dataset (README: Datasets)."""
    dataset_size: int = 10_000
    """Joint samples in the dataset."""

    def __post_init__(self) -> None:
        int_at_least("--game.num-agents", self.num_agents, 2)
        non_negative("--game.sigma", self.sigma)
        positive_int("--game.context-dim", self.context_dim)
        check(
            self.num_actions == 0 or self.num_actions >= 2,
            f"--game.num-actions must be 0 (continuous) or >= 2, got {self.num_actions!r}",
        )
        positive_int("--game.num-contexts", self.num_contexts)
        one_of("--game.behaviour", self.behaviour, get_args(Behaviour))
        positive_int("--game.dataset-size", self.dataset_size)


@dataclass(frozen=True)
class SpreadConfig:
    """simple_spread_v3 from mpe2 (continuous actions) and its offline dataset."""

    num_agents: int = 3
    """Agents (and landmarks)."""
    max_cycles: int = 25
    """Episode length (mpe2's default)."""
    local_ratio: float = 0.5
    """Weight of the local (collision) reward against the global (coverage) one (mpe2's)."""
    behaviour: SpreadBehaviour = "noisy"
    """Behaviour policy of the dataset."""
    noise_std: float = 0.3
    """Gaussian noise on the scripted action (``noisy``), in units of the [0, 1] action box."""
    random_prob: float = 0.3
    """Per agent and step, the chance that ``noisy`` plays a uniform random action instead."""
    episodes: int = 200
    """Episodes in the dataset."""

    def __post_init__(self) -> None:
        int_at_least("--spread.num-agents", self.num_agents, 1)
        positive_int("--spread.max-cycles", self.max_cycles)
        probability("--spread.local-ratio", self.local_ratio)
        one_of("--spread.behaviour", self.behaviour, get_args(SpreadBehaviour))
        non_negative("--spread.noise-std", self.noise_std)
        probability("--spread.random-prob", self.random_prob)
        positive_int("--spread.episodes", self.episodes)
