"""Optimal-transport rewards between a learner episode and an expert state trajectory (on POT).

The recipe of the paper's code, step by step (``T_E`` expert steps, ``T`` learner steps, ``d``
state dimensions):

1. Statistics: mean ``mu`` and std of the expert states ``s_0..s_{T_E - 1}`` over all expert
   trajectories; a zero std becomes 1, then the std is floored at ``std_floor`` (0.33).
2. Atoms: every state is normalised as ``(s - mu) / (3 std + 1e-8)`` (optionally clamped); an
   atom is ``(s_t, s_{t+1})`` (default), ``s_{t+1}`` or ``(s_t, a_t)``, one per transition.
3. Cost: ``C[j, t] = sqrt(||x^E_j - x^L_t||_2)`` by default, shape ``(T_E, T)``.
4. Plan: ``P`` with uniform marginals ``1/T_E`` and ``1/T`` (so trajectories of different
   lengths are fine), entropic Sinkhorn with ``reg = 0.05`` by default, or exact EMD.
5. Reward of learner step ``t``: ``r_t = -sigma * sum_j C[j, t] P[j, t]`` with
   ``sigma = reward_scale * T / sqrt(d)``. As ``sum_j P[j, t] = 1/T``, ``r_t`` is
   ``-reward_scale / sqrt(d)`` times the plan-weighted mean cost of step ``t``, whatever ``T``.

Solver trouble is never hidden: hitting the iteration cap, POT's own warnings and a fallback
to the log domain are re-raised as :class:`OTConvergenceWarning` naming the solver and its
state, and every :class:`OTResult` says whether its solve converged.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import ot
from scipy.spatial.distance import cdist

from ot_ilfo.config import CostKind, RewardConfig, SolverKind

__all__ = [
    "OTConvergenceWarning",
    "OTResult",
    "OTRewarder",
    "SolveInfo",
    "StateNormalizer",
    "TrajectoryError",
    "check_trajectory",
    "cost_matrix",
    "solve_coupling",
]

FloatArray = npt.NDArray[np.float64]

# Largest cost spread / reg for which exp(-C / reg) stays well inside float64's normal range
# (exp(-700) ~ 1e-304); beyond it the scaling-form Sinkhorn kernel underflows to zeros.
_MAX_KERNEL_EXPONENT = 600.0


class TrajectoryError(ValueError):
    """A trajectory is empty, has the wrong rank or dimension, or holds NaN/inf."""


class OTConvergenceWarning(UserWarning):
    """A transport solve did not converge, or POT warned, or the solver fell back."""


def check_trajectory(x: Any, *, name: str, dim: int | None = None, min_rows: int = 1) -> FloatArray:
    """Validate one trajectory array and return it as float64.

    Args:
        x: ``(N, D)`` array-like (numpy or torch on the CPU).
        name: Used in error messages (``"learner states"``).
        dim: Expected ``D``; None accepts any ``D >= 1``.
        min_rows: Smallest ``N`` accepted.

    Returns:
        ``(N, D)`` float64 copy-free view when possible.

    Raises:
        TrajectoryError: wrong rank, too few rows, wrong ``D``, non-numeric dtype, NaN or inf.
    """
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    if arr.dtype.kind not in "biuf":
        raise TrajectoryError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise TrajectoryError(f"{name}: expected shape (N, D), got {arr.shape}")
    if arr.shape[0] < min_rows:
        raise TrajectoryError(
            f"{name}: expected at least {min_rows} rows, got {arr.shape[0]} (empty trajectory?)"
        )
    if arr.shape[1] < 1:
        raise TrajectoryError(f"{name}: has no features (shape {arr.shape})")
    if dim is not None and arr.shape[1] != dim:
        raise TrajectoryError(
            f"{name}: has {arr.shape[1]} features per step, expected {dim} (the expert's)"
        )
    out = arr.astype(np.float64, copy=False)
    if not np.isfinite(out).all():
        row, col = (int(i) for i in np.argwhere(~np.isfinite(out))[0])
        raise TrajectoryError(f"{name}: NaN or inf at step {row}, feature {col}")
    return out


class StateNormalizer:
    """``(x - mean) / (3 std + 1e-8)``, optionally clamped: the paper's atom normalisation.

    Args:
        mean: ``(D,)`` per-feature mean.
        std: ``(D,)`` per-feature std, already floored.
        clip: Clamp the result to ``[-clip, clip]``; None leaves it unclamped.
    """

    def __init__(self, mean: FloatArray, std: FloatArray, *, clip: float | None = None) -> None:
        if mean.shape != std.shape or mean.ndim != 1:
            raise ValueError(f"mean {mean.shape} and std {std.shape} must both be (D,)")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("mean must be finite and std finite and > 0")
        self.mean = mean
        self.std = std
        self.clip = clip

    @classmethod
    def fit(
        cls, data: Sequence[FloatArray], *, std_floor: float, clip: float | None = None
    ) -> StateNormalizer:
        """Fit on the rows of every array of ``data`` (each ``(N_i, D)``).

        The std is the population std (ddof 0); a zero std becomes 1 (a constant feature), then
        every std is floored at ``std_floor``.
        """
        rows = np.concatenate(list(data), axis=0)
        std = rows.std(axis=0)
        std = np.where(np.isclose(std, 0.0), 1.0, std)
        return cls(rows.mean(axis=0), np.maximum(std, std_floor), clip=clip)

    def __call__(self, x: FloatArray) -> FloatArray:
        """Normalise ``(..., D)``."""
        out = (x - self.mean) / (3.0 * self.std + 1e-8)
        if self.clip is not None:
            out = np.clip(out, -self.clip, self.clip)
        return out


def cost_matrix(x_expert: FloatArray, x_learner: FloatArray, cost: CostKind) -> FloatArray:
    """Ground cost between every expert atom and every learner atom.

    Args:
        x_expert: ``(T_E, D)``.
        x_learner: ``(T, D)``.
        cost: See :data:`ot_ilfo.config.CostKind`.

    Returns:
        ``(T_E, T)`` float64, non-negative.
    """
    # scipy's cdist takes exact differences; the |x|^2 + |y|^2 - 2 x.y expansion (ot.dist) leaves
    # ~1e-8 on the zero diagonal of identical trajectories, which the square root turns into 1e-4.
    if cost == "cosine":
        return np.maximum(cdist(x_expert, x_learner, metric="cosine"), 0.0).astype(np.float64)
    if cost == "sqeuclidean":
        return cdist(x_expert, x_learner, metric="sqeuclidean").astype(np.float64)
    euclid = cdist(x_expert, x_learner, metric="euclidean").astype(np.float64)
    if cost == "euclidean":
        return euclid
    if cost == "sqrt_euclidean":
        return np.sqrt(euclid)
    raise ValueError(f"unknown cost {cost!r}")


@dataclass(frozen=True)
class SolveInfo:
    """How a transport solve went."""

    solver: SolverKind
    """The solver that produced the plan (after any fallback)."""
    converged: bool
    """Sinkhorn: marginal error below ``stop_thr`` within ``max_iter``; EMD: optimal."""
    iterations: int
    """Sinkhorn iterations run (0 for EMD)."""
    marginal_error: float
    """Largest absolute deviation of the plan's marginals from the targets."""
    fell_back: bool = False
    """``sinkhorn`` was switched to ``sinkhorn_log`` because the kernel would underflow."""
    warnings: tuple[str, ...] = ()
    """The messages of the :class:`OTConvergenceWarning` s this solve emitted."""


def solve_coupling(
    cost: FloatArray,
    *,
    solver: SolverKind,
    reg: float,
    max_iter: int = 1000,
    stop_thr: float = 1e-9,
    emd_max_iter: int = 1_000_000,
    a: FloatArray | None = None,
    b: FloatArray | None = None,
) -> tuple[FloatArray, SolveInfo]:
    """Optimal plan between uniform (or given) marginals for ``cost``.

    Args:
        cost: ``(n, m)`` float64 ground costs.
        solver: ``"sinkhorn"``, ``"sinkhorn_log"`` or ``"emd"``.
        reg: Entropic regularisation (Sinkhorn only).
        max_iter: Sinkhorn iteration cap.
        stop_thr: Sinkhorn marginal-error threshold.
        emd_max_iter: Network-simplex iteration cap.
        a: ``(n,)`` source marginal; default uniform ``1/n``.
        b: ``(m,)`` target marginal; default uniform ``1/m``.

    Returns:
        ``(P, info)``: the ``(n, m)`` plan and a :class:`SolveInfo`.

    Warns:
        OTConvergenceWarning: the solve did not converge, POT warned, or ``sinkhorn`` fell back
            to the log domain.

    Raises:
        ValueError: ``cost`` is not a finite ``(n, m)`` matrix, or the solver returned NaN.
    """
    if cost.ndim != 2 or min(cost.shape) < 1:
        raise ValueError(f"cost: expected a non-empty (n, m) matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("cost: has NaN or inf entries")
    n, m = cost.shape
    a = np.full(n, 1.0 / n) if a is None else a
    b = np.full(m, 1.0 / m) if b is None else b
    fell_back = False
    notes: list[str] = []
    spread = float(cost.max() - cost.min())
    if solver == "sinkhorn" and spread / reg > _MAX_KERNEL_EXPONENT:
        notes.append(
            f"sinkhorn: cost spread {spread:.4g} / reg {reg:g} = {spread / reg:.4g} would "
            "underflow exp(-C / reg); solving in the log domain instead"
        )
        warnings.warn(OTConvergenceWarning(notes[-1]), stacklevel=2)
        solver, fell_back = "sinkhorn_log", True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if solver == "emd":
            plan, emd_log = ot.emd(a, b, cost, numItermax=emd_max_iter, log=True)
            log: dict[str, Any] = dict(emd_log)
            iterations = 0
            converged = int(log["result_code"]) == 1
        else:
            plan, sinkhorn_log = ot.sinkhorn(
                a,
                b,
                cost,
                reg,
                method=solver,
                numItermax=max_iter,
                stopThr=stop_thr,
                log=True,
                warn=True,
            )
            log = dict(sinkhorn_log)
            iterations = int(log["niter"])
            errors = log["err"]
            converged = bool(errors) and float(errors[-1]) < stop_thr
    plan = np.asarray(plan, dtype=np.float64)
    if not np.isfinite(plan).all():
        raise ValueError(
            f"{solver}: the plan has NaN/inf (reg {reg:g} too small for the cost range "
            f"{spread:.4g}? try solver='sinkhorn_log' or 'emd')"
        )
    marginal_error = max(
        float(np.abs(plan.sum(axis=1) - a).max()), float(np.abs(plan.sum(axis=0) - b).max())
    )
    messages = [str(w.message) for w in caught]
    if not converged or messages:
        detail = "; ".join(messages) if messages else "iteration cap reached"
        notes.append(
            f"{solver} (reg {reg:g}, {n}x{m}): not converged after {iterations} iterations, "
            f"marginal error {marginal_error:.3g}: {detail}"
        )
        warnings.warn(OTConvergenceWarning(notes[-1]), stacklevel=2)
    info = SolveInfo(solver, converged, iterations, marginal_error, fell_back, tuple(notes))
    return plan, info


@dataclass(frozen=True)
class OTResult:
    """Rewards of one learner episode against one expert trajectory."""

    rewards: FloatArray
    """``(T,)`` per-step rewards ``-sigma * sum_j C[j, t] P[j, t]``."""
    plan: FloatArray
    """``(T_E, T)`` transport plan (rows: expert atoms, columns: learner atoms)."""
    cost: FloatArray
    """``(T_E, T)`` ground costs."""
    matching: npt.NDArray[np.int64]
    """``(T,)`` expert atom each learner step sends most mass to (``argmax_j P[j, t]``)."""
    sigma: float
    """The reward scale used, ``reward_scale * T / sqrt(state_dim)``."""
    expert_index: int
    """Which expert trajectory was used."""
    info: SolveInfo
    """How the solve went."""

    @property
    def transport_cost(self) -> float:
        """``sum C * P`` (the entropic or exact Wasserstein cost of the plan)."""
        return float((self.cost * self.plan).sum())


class OTRewarder:
    """The paper's reward: normalisation by expert statistics, atoms, cost, plan, scaling.

    Args:
        expert_states: One ``(T_E + 1, d)`` array per expert trajectory (states only). Lengths
            may differ; ``d`` must agree.
        cfg: Reward settings (defaults: the paper's).
        expert_actions: With ``cfg.atoms == "state_action"``: one ``(T_E, a)`` array per
            trajectory; otherwise must be None.

    Raises:
        TrajectoryError: an expert trajectory is empty, malformed or has NaN/inf, or the
            dimensions disagree.
        ValueError: no trajectory, or actions missing/extra for the chosen atoms.
    """

    def __init__(
        self,
        expert_states: Sequence[Any],
        cfg: RewardConfig | None = None,
        *,
        expert_actions: Sequence[Any] | None = None,
    ) -> None:
        self.cfg = RewardConfig() if cfg is None else cfg
        if len(expert_states) == 0:
            raise ValueError("OTRewarder needs at least one expert trajectory")
        first = check_trajectory(expert_states[0], name="expert trajectory 0 states", min_rows=2)
        d = int(first.shape[1])
        states = [first] + [
            check_trajectory(s, name=f"expert trajectory {i} states", dim=d, min_rows=2)
            for i, s in enumerate(expert_states[1:], start=1)
        ]
        self._state_dim = d
        self.state_normalizer = StateNormalizer.fit(
            [s[:-1] for s in states], std_floor=self.cfg.std_floor, clip=self.cfg.clip
        )
        self.action_normalizer: StateNormalizer | None = None
        actions: list[FloatArray] | None = None
        if self.cfg.atoms == "state_action":
            if expert_actions is None or len(expert_actions) != len(states):
                raise ValueError(
                    "atoms='state_action' needs one expert action array per trajectory "
                    f"(got {0 if expert_actions is None else len(expert_actions)} for "
                    f"{len(states)} trajectories); state-only demonstrations use "
                    "'state_next_state' or 'state'"
                )
            actions = []
            for i, (s, act) in enumerate(zip(states, expert_actions, strict=True)):
                arr = check_trajectory(act, name=f"expert trajectory {i} actions")
                if arr.shape[0] != s.shape[0] - 1:
                    raise TrajectoryError(
                        f"expert trajectory {i}: {arr.shape[0]} actions for {s.shape[0]} states "
                        "(expected one fewer action than states)"
                    )
                if actions and arr.shape[1] != actions[0].shape[1]:
                    raise TrajectoryError(
                        f"expert trajectory {i} actions: {arr.shape[1]} features, expected "
                        f"{actions[0].shape[1]}"
                    )
                actions.append(arr)
            self.action_normalizer = StateNormalizer.fit(
                actions, std_floor=self.cfg.std_floor, clip=self.cfg.clip
            )
        elif expert_actions is not None:
            raise ValueError(f"expert_actions given but atoms={self.cfg.atoms!r} does not use them")
        self._action_dim = None if actions is None else int(actions[0].shape[1])
        # (T_E, D) atoms of every expert trajectory, normalised once.
        self.expert_atoms: list[FloatArray] = [
            self._atoms(s, None if actions is None else actions[i]) for i, s in enumerate(states)
        ]

    @property
    def num_experts(self) -> int:
        """Number of expert trajectories."""
        return len(self.expert_atoms)

    @property
    def state_dim(self) -> int:
        """``d``, the state dimension."""
        return self._state_dim

    def sigma(self, num_steps: int) -> float:
        """``reward_scale * T / sqrt(d)`` for a learner episode of ``T`` steps."""
        return self.cfg.reward_scale * num_steps / math.sqrt(self._state_dim)

    def _atoms(self, states: FloatArray, actions: FloatArray | None) -> FloatArray:
        s = self.state_normalizer(states)  # (T + 1, d)
        if self.cfg.atoms == "state_next_state":
            return np.concatenate([s[:-1], s[1:]], axis=1)  # (T, 2d)
        if self.cfg.atoms == "state":
            return s[1:]  # (T, d): where each transition lands
        if actions is None or self.action_normalizer is None:
            raise TrajectoryError("atoms='state_action' needs actions")
        return np.concatenate([s[:-1], self.action_normalizer(actions)], axis=1)  # (T, d + a)

    def rewards(self, states: Any, actions: Any = None, *, expert_index: int = 0) -> OTResult:
        """Per-step rewards of one learner episode against expert trajectory ``expert_index``.

        Args:
            states: ``(T + 1, d)`` learner states ``s_0..s_T`` (``T >= 1`` transitions).
            actions: ``(T, a)`` learner actions, only for ``atoms == "state_action"``.
            expert_index: In ``[0, num_experts)``.

        Returns:
            An :class:`OTResult` with ``(T,)`` rewards.

        Raises:
            TrajectoryError: empty, NaN/inf or wrong-dimension ``states``/``actions``.
            IndexError: ``expert_index`` out of range.
        """
        if not 0 <= expert_index < self.num_experts:
            raise IndexError(
                f"expert_index {expert_index} out of range for {self.num_experts} trajectories"
            )
        s = check_trajectory(states, name="learner states", dim=self._state_dim, min_rows=2)
        a = None
        if self.cfg.atoms == "state_action":
            if actions is None:
                raise TrajectoryError("learner actions: atoms='state_action' needs them")
            a = check_trajectory(actions, name="learner actions", dim=self._action_dim)
            if a.shape[0] != s.shape[0] - 1:
                raise TrajectoryError(
                    f"learner actions: {a.shape[0]} rows for {s.shape[0]} states "
                    "(expected one fewer)"
                )
        x_learner = self._atoms(s, a)  # (T, D)
        x_expert = self.expert_atoms[expert_index]  # (T_E, D)
        cost = cost_matrix(x_expert, x_learner, self.cfg.cost)  # (T_E, T)
        plan, info = solve_coupling(
            cost,
            solver=self.cfg.solver,
            reg=self.cfg.reg,
            max_iter=self.cfg.max_iter,
            stop_thr=self.cfg.stop_thr,
            emd_max_iter=self.cfg.emd_max_iter,
        )
        num_steps = int(x_learner.shape[0])
        sigma = self.sigma(num_steps)
        rewards = -sigma * (cost * plan).sum(axis=0)  # (T,): column sums over expert atoms
        return OTResult(
            rewards=rewards,
            plan=plan,
            cost=cost,
            matching=plan.argmax(axis=0).astype(np.int64),
            sigma=sigma,
            expert_index=expert_index,
            info=info,
        )
