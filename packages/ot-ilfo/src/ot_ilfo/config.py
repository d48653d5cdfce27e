"""Configuration: one frozen dataclass per component, every default from the paper's code.

:class:`RewardConfig` is the optimal-transport reward (``ot_ilfo.rewards``), :class:`TD3Config`
the paper's learner (``ot_ilfo.agent``). Defaults follow the authors' supplementary code
(``OOPS_Supplementary/OOPS``: ``main.py`` argparse defaults and ``TD3.py``); where this package
departs from it the field's docstring says so and the README's Deviations table says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

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


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _positive(name: str, value: float) -> None:
    _check(math.isfinite(value) and value > 0, f"{name} must be a finite number > 0, got {value!r}")


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
        _positive("RewardConfig.reg", self.reg)
        _positive("RewardConfig.reward_scale", self.reward_scale)
        _positive("RewardConfig.std_floor", self.std_floor)
        _positive("RewardConfig.stop_thr", self.stop_thr)
        _check(self.max_iter >= 1, f"RewardConfig.max_iter must be >= 1, got {self.max_iter}")
        _check(
            self.emd_max_iter >= 1,
            f"RewardConfig.emd_max_iter must be >= 1, got {self.emd_max_iter}",
        )
        if self.clip is not None:
            _positive("RewardConfig.clip", self.clip)
        for name, value, choices in (
            ("atoms", self.atoms, ("state_next_state", "state", "state_action")),
            ("cost", self.cost, ("sqrt_euclidean", "euclidean", "sqeuclidean", "cosine")),
            ("solver", self.solver, ("sinkhorn", "sinkhorn_log", "emd")),
        ):
            _check(value in choices, f"RewardConfig.{name} must be one of {choices}, got {value!r}")


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
        _check(len(self.hidden_sizes) >= 1, "TD3Config.hidden_sizes must not be empty")
        for name in ("actor_lr", "critic_lr", "pal_alpha", "pal_min_priority"):
            _positive(f"TD3Config.{name}", getattr(self, name))
        _check(0 <= self.discount < 1, f"TD3Config.discount must be in [0, 1), got {self.discount}")
        _check(0 < self.tau <= 1, f"TD3Config.tau must be in (0, 1], got {self.tau}")
        for name in ("expl_noise", "policy_noise", "noise_clip", "critic_grad_clip"):
            value = getattr(self, name)
            _check(value >= 0, f"TD3Config.{name} must be >= 0, got {value}")
        _check(self.actor_grad_clip >= 0, "TD3Config.actor_grad_clip must be >= 0")
        _check(self.policy_freq >= 1, f"TD3Config.policy_freq must be >= 1, got {self.policy_freq}")
        _check(self.horizon >= 1, f"TD3Config.horizon must be >= 1, got {self.horizon}")
        _check(
            self.critic_loss in ("pal", "mse"),
            f"TD3Config.critic_loss must be 'pal' or 'mse', got {self.critic_loss!r}",
        )
