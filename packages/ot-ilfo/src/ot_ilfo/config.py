"""Configuration: one frozen dataclass per component, every default from the paper's code.

:class:`RewardConfig` is the optimal-transport reward (``ot_ilfo.rewards``), :class:`TD3Config`
the paper's learner (``ot_ilfo.agent``). Defaults follow the authors' supplementary code
(``OOPS_Supplementary/OOPS``: ``main.py`` argparse defaults and ``TD3.py``); where this package
departs from it the field's docstring says so and the README's Deviations table says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from rl_runtime.config import in_range, layer_sizes, non_negative, one_of, positive, positive_int

__all__ = ["AtomKind", "CostKind", "CriticLoss", "RewardConfig", "SolverKind", "TD3Config"]

AtomKind = Literal["state_next_state", "state", "state_action"]
"""What one transport atom is: ``(s_t, s_{t+1})`` (the paper, observation only), ``s_{t+1}``
alone, or ``(s_t, a_t)`` (learning from demonstrations with actions)."""

CostKind = Literal["sqrt_euclidean", "euclidean", "sqeuclidean", "cosine"]
"""Ground cost between two atoms: ``sqrt(||x - y||)`` (the paper), ``||x - y||``,
``||x - y||^2`` or ``1 - cos(x, y)``."""

SolverKind = Literal["sinkhorn", "sinkhorn_log", "emd"]
"""Transport solver: entropic Sinkhorn (scaling form), entropic Sinkhorn in the log domain, or
the exact network-simplex solution (no regularisation)."""

CriticLoss = Literal["pal", "mse"]
"""TD3 critic loss: PAL (the paper's code, from LAP/PAL) or TD3's mean squared error."""


@dataclass(frozen=True)
class RewardConfig:
    """The optimal-transport reward between a learner episode and one expert trajectory."""

    atoms: AtomKind = "state_next_state"
    """Transport atoms; ``(s, s')`` pairs as the paper."""
    cost: CostKind = "sqrt_euclidean"
    """Ground cost; the paper's code uses the square root of the Euclidean distance."""
    solver: SolverKind = "sinkhorn"
    """Solver. The paper's code runs ``sinkhorn_log``; the scaling form reaches the same plan
    (same fixed point) at a fraction of the CPU time for these costs, and falls back to the log
    domain with a warning where ``exp(-C / reg)`` would underflow (README, Deviations)."""
    reg: float = 0.05
    """Entropic regularisation of the Sinkhorn solvers (ignored by ``emd``)."""
    max_iter: int = 1000
    """Iteration cap of the Sinkhorn solvers (the paper's code: 20000; its solves converge long
    before either cap). Hitting it raises an ``OTConvergenceWarning``."""
    stop_thr: float = 1e-5
    """Sinkhorn stops when the L2 norm of the marginal violation falls below this (POT's
    default is 1e-9; at T = 1000 the rewards at 1e-5 agree with the converged ones to about
    1e-5 relative, after ~150 iterations instead of thousands: README, Deviations)."""
    emd_max_iter: int = 1_000_000
    """Network-simplex iteration cap of ``emd``."""
    reward_scale: float = 5.0
    """``sigma = reward_scale * T / sqrt(state_dim)``; per-step reward ``-sigma * sum_j C P``."""
    std_floor: float = 0.33
    """Floor on the expert's per-dimension state std before normalising (``--std_clip``)."""
    clip: float | None = None
    """Clamp normalised atoms to ``[-clip, clip]``; None (the paper code's effective default: its
    ``--clip_state`` flag can never turn clipping on) leaves them unclamped."""

    def __post_init__(self) -> None:
        positive("RewardConfig.reg", self.reg)
        positive("RewardConfig.reward_scale", self.reward_scale)
        positive("RewardConfig.std_floor", self.std_floor)
        positive("RewardConfig.stop_thr", self.stop_thr)
        positive_int("RewardConfig.max_iter", self.max_iter)
        positive_int("RewardConfig.emd_max_iter", self.emd_max_iter)
        if self.clip is not None:
            positive("RewardConfig.clip", self.clip)
        one_of("RewardConfig.atoms", self.atoms, get_args(AtomKind))
        one_of("RewardConfig.cost", self.cost, get_args(CostKind))
        one_of("RewardConfig.solver", self.solver, get_args(SolverKind))


@dataclass(frozen=True)
class TD3Config:
    """The paper's learner: TD3 with a time-to-horizon input and the PAL critic loss."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and of each critic."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    discount: float = 0.99
    """Discount gamma."""
    tau: float = 0.003
    """Polyak step of the target networks (the paper's main.py: 0.003; TD3's own: 0.005)."""
    expl_noise: float = 0.2
    """Std of the Gaussian exploration noise, in units of the [-1, 1] action range."""
    policy_noise: float = 0.1
    """Std of the target-policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target-policy smoothing noise."""
    policy_freq: int = 2
    """Critic updates per actor (and target) update."""
    critic_grad_clip: float = 25.0
    """Max global grad norm of the critic; 0 disables."""
    actor_grad_clip: float = 0.0
    """Max global grad norm of the actor; 0 (the paper's default) disables."""
    critic_loss: CriticLoss = "pal"
    """PAL (the paper's code) or MSE (TD3)."""
    pal_alpha: float = 0.4
    """PAL exponent alpha."""
    pal_min_priority: float = 1.0
    """PAL's minimum priority (the quadratic/power switch point)."""
    time_input: bool = True
    """The last observation entry is the time to horizon ``(T - t) / T`` (see
    :class:`ot_ilfo.envs.TimeToHorizon`): bootstrapping stops where the next value is 0."""
    aug_time: bool = True
    """With ``time_input``: train the critic on uniformly resampled times to horizon (the
    paper's ``--aug_time``)."""
    horizon: int = 1000
    """``T`` of the time-to-horizon input (the environment's episode length)."""

    def __post_init__(self) -> None:
        layer_sizes("TD3Config.hidden_sizes", self.hidden_sizes)
        for name in ("actor_lr", "critic_lr", "pal_alpha", "pal_min_priority"):
            positive(f"TD3Config.{name}", getattr(self, name))
        in_range("TD3Config.discount", self.discount, 0.0, 1.0, high_open=True)
        in_range("TD3Config.tau", self.tau, 0.0, 1.0, low_open=True)
        for name in ("expl_noise", "policy_noise", "noise_clip", "critic_grad_clip"):
            non_negative(f"TD3Config.{name}", getattr(self, name))
        non_negative("TD3Config.actor_grad_clip", self.actor_grad_clip)
        positive_int("TD3Config.policy_freq", self.policy_freq)
        positive_int("TD3Config.horizon", self.horizon)
        one_of("TD3Config.critic_loss", self.critic_loss, get_args(CriticLoss))
