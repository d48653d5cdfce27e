"""The absorbing N-chain: why search needs short horizons even with a perfect model and values.

The chain has ``n`` steps and ``A`` actions. At each step one action (unknown to the planner)
moves along the chain; any other drops the agent into an absorbing state with reward 0 forever.
Only the full correct sequence is rewarded (return 1, else 0). Uniform random shooting with
``m`` sequences of length ``n`` finds it with probability ``1 - (1 - A^-n)^m``
(:func:`closed_form`): for ``A = 10``, ``m = 1000``, about 0.63 at ``n = 3`` and 1e-7 at
``n = 10``.

This module checks the formula by simulation (:func:`random_shooting`) and runs the iterative
planners on the same budget with a perfect model and exact returns (:func:`cem`,
:func:`mppi_discrete`: ``iterations`` rounds sharing the ``m`` sequences, refitting a
per-step categorical distribution to the elites), and model-predictive control with a short
horizon ``h`` and the exact value at the horizon (:func:`short_horizon_mpc`: ``V*(s) = 1`` on
the chain, 0 once absorbed, gamma = 1). A planner succeeds if the best sequence it evaluated is
the correct one (its exact return is 1). Every function draws from the ``numpy`` generator it is
given; trials are vectorised in chunks.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "ChainResult",
    "cem",
    "chain_table",
    "closed_form",
    "mppi_discrete",
    "random_shooting",
    "short_horizon_mpc",
]

_CHUNK_ELEMENTS = 4_000_000
"""Action draws held at once (trials x sequences x steps) when vectorising trials."""


class ChainResult(NamedTuple):
    """A simulated success rate.

    Attributes:
        rate: Fraction of trials in which the correct sequence was found.
        stderr: Its binomial standard error ``sqrt(rate (1 - rate) / trials)``.
        trials: Number of trials.
    """

    rate: float
    stderr: float
    trials: int


def _result(successes: int, trials: int) -> ChainResult:
    rate = successes / trials
    return ChainResult(rate, math.sqrt(rate * (1.0 - rate) / trials), trials)


def _check(actions: int, length: int, budget: int, trials: int) -> None:
    if actions < 2 or length < 1 or budget < 1 or trials < 1:
        raise ValueError(
            f"need actions >= 2, length >= 1, budget >= 1, trials >= 1; got A={actions}, "
            f"n={length}, m={budget}, trials={trials}"
        )


def closed_form(actions: int, length: int, budget: int) -> float:
    """``1 - (1 - A^-n)^m``: random shooting's chance to find the rewarded sequence.

    Computed as ``-expm1(m * log1p(-A^-n))`` so that tiny probabilities keep their digits.
    """
    _check(actions, length, budget, 1)
    return -math.expm1(budget * math.log1p(-(float(actions) ** -length)))


def _chunks(trials: int, per_trial: int) -> list[int]:
    size = max(1, _CHUNK_ELEMENTS // max(per_trial, 1))
    return [min(size, trials - start) for start in range(0, trials, size)]


def random_shooting(
    actions: int, length: int, budget: int, *, trials: int, rng: np.random.Generator
) -> ChainResult:
    """Simulate random shooting: ``m`` uniform sequences, success if one is the correct one.

    Each trial draws its own correct sequence and its own ``m`` candidate sequences.
    """
    _check(actions, length, budget, trials)
    successes = 0
    for size in _chunks(trials, budget * length):
        target = rng.integers(actions, size=(size, 1, length))
        seqs = rng.integers(actions, size=(size, budget, length))
        successes += int((seqs == target).all(axis=2).any(axis=1).sum())
    return _result(successes, trials)


def _iterative(
    actions: int,
    length: int,
    budget: int,
    *,
    trials: int,
    rng: np.random.Generator,
    iterations: int,
    elite_fraction: float,
    floor: float,
    temperature: float | None,
) -> ChainResult:
    """CEM (``temperature`` None: equal elite weights) or MPPI (``exp(T (V - max V))``)."""
    _check(actions, length, budget, trials)
    # The budget split over the rounds, the first ones taking the remainder: m sequences in all.
    rounds = [budget // iterations + (r < budget % iterations) for r in range(iterations)]
    rounds = [s for s in rounds if s > 0]
    successes = 0
    for size in _chunks(trials, rounds[0] * length):
        target = rng.integers(actions, size=(size, 1, length))
        probs = np.full((size, length, actions), 1.0 / actions)
        found = np.zeros(size, dtype=bool)
        for per_iter in rounds:
            elites = max(1, round(elite_fraction * per_iter))
            # Categorical draws per (trial, sequence, step) by inverting the CDF.
            cdf = np.cumsum(probs, axis=2)[:, None]  # (T, 1, n, A)
            u = rng.random((size, per_iter, length, 1))
            seqs = np.minimum((u > cdf).sum(axis=3), actions - 1)  # (T, S, n)
            value = (seqs == target).all(axis=2).astype(np.float64)  # exact return, (T, S)
            found |= value.max(axis=1) > 0
            # Elites by value, ties (all-zero returns) broken at random.
            order = np.argsort(-(value + 1e-9 * rng.random(value.shape)), axis=1)[:, :elites]
            elite_seqs = np.take_along_axis(seqs, order[:, :, None], axis=1)  # (T, E, n)
            elite_val = np.take_along_axis(value, order, axis=1)  # (T, E)
            if temperature is None:
                weight = np.ones_like(elite_val)
            else:
                weight = np.exp(temperature * (elite_val - elite_val.max(axis=1, keepdims=True)))
            weight = weight / weight.sum(axis=1, keepdims=True)
            onehot = np.eye(actions)[elite_seqs]  # (T, E, n, A)
            freq = (weight[:, :, None, None] * onehot).sum(axis=1)  # (T, n, A)
            # Mixed with uniform: the discrete counterpart of MPPI's std floor.
            probs = (1.0 - floor) * freq + floor / actions
        successes += int(found.sum())
    return _result(successes, trials)


def cem(
    actions: int,
    length: int,
    budget: int,
    *,
    trials: int,
    rng: np.random.Generator,
    iterations: int = 6,
    elite_fraction: float = 0.125,
    floor: float = 0.1,
) -> ChainResult:
    """Cross-entropy method on per-step categorical distributions, ``m`` sequences in all.

    Args:
        iterations: Rounds (``m`` split as evenly as possible; fewer rounds if ``m`` is smaller).
        elite_fraction: Share of a round's sequences refitted to (TD-MPC2's 64 / 512).
        floor: The refitted distribution is mixed with uniform by this much.
    """
    return _iterative(
        actions,
        length,
        budget,
        trials=trials,
        rng=rng,
        iterations=iterations,
        elite_fraction=elite_fraction,
        floor=floor,
        temperature=None,
    )


def mppi_discrete(
    actions: int,
    length: int,
    budget: int,
    *,
    trials: int,
    rng: np.random.Generator,
    iterations: int = 6,
    elite_fraction: float = 0.125,
    floor: float = 0.1,
    temperature: float = 0.5,
) -> ChainResult:
    """MPPI as TD-MPC2 weights it (elites weighted ``exp(T (V - max V))``) on categorical
    distributions; see :func:`cem` for the other arguments."""
    return _iterative(
        actions,
        length,
        budget,
        trials=trials,
        rng=rng,
        iterations=iterations,
        elite_fraction=elite_fraction,
        floor=floor,
        temperature=temperature,
    )


def short_horizon_mpc(
    actions: int,
    length: int,
    budget: int,
    *,
    horizon: int,
    trials: int,
    rng: np.random.Generator,
) -> ChainResult:
    """Model-predictive control with random shooting over ``horizon`` steps and the exact value.

    At each of the ``n`` steps, ``m`` uniform sequences of ``min(horizon, steps left)`` actions
    are scored by the perfect model and ``V*`` at their end (1 if still on the chain); the first
    action of the best is executed (ties: the first drawn). Success: every executed action was
    correct.
    """
    _check(actions, length, budget, trials)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    alive = np.ones(trials, dtype=bool)
    for step in range(length):
        h = min(horizon, length - step)
        # Only whether the executed action is correct matters; draw per trial in chunks.
        correct_now = np.zeros(trials, dtype=bool)
        start = 0
        for size in _chunks(trials, budget * h):
            target = rng.integers(actions, size=(size, 1, h))
            seqs = rng.integers(actions, size=(size, budget, h))
            on_chain = (seqs == target).all(axis=2)  # value 1 iff on the chain after h steps
            best = np.where(on_chain.any(axis=1), on_chain.argmax(axis=1), 0)
            first = seqs[np.arange(size), best, 0]
            correct_now[start : start + size] = first == target[:, 0, 0]
            start += size
        alive &= correct_now
    return _result(int(alive.sum()), trials)


def chain_table(
    actions: tuple[int, ...],
    lengths: tuple[int, ...],
    budgets: tuple[int, ...],
    *,
    trials: int,
    planner_trials: int,
    horizon: int,
    seed: int,
    planners: bool = True,
) -> list[dict[str, float | int]]:
    """The study's rows: for every ``(A, n, m)``, random shooting's closed form and simulated
    rate, and (``planners``) CEM, MPPI and short-horizon MPC with exact values.

    Each row draws from its own generator ``default_rng([seed, A, n, m])``, so a row does not
    depend on which other rows are computed.

    Returns:
        One dict per row: ``actions``, ``length``, ``budget``, ``closed_form``,
        ``random_shooting`` (+ ``_stderr``), and ``cem``, ``mppi``, ``mpc_h{horizon}`` (+
        ``_stderr``) with ``planners``.
    """
    rows: list[dict[str, float | int]] = []
    for a in actions:
        for n in lengths:
            for m in budgets:
                rng = np.random.default_rng([seed, a, n, m])
                rs = random_shooting(a, n, m, trials=trials, rng=rng)
                row: dict[str, float | int] = {
                    "actions": a,
                    "length": n,
                    "budget": m,
                    "closed_form": closed_form(a, n, m),
                    "random_shooting": rs.rate,
                    "random_shooting_stderr": rs.stderr,
                }
                if planners:
                    for name, result in (
                        ("cem", cem(a, n, m, trials=planner_trials, rng=rng)),
                        ("mppi", mppi_discrete(a, n, m, trials=planner_trials, rng=rng)),
                        (
                            f"mpc_h{horizon}",
                            short_horizon_mpc(
                                a, n, m, horizon=horizon, trials=planner_trials, rng=rng
                            ),
                        ),
                    ):
                        row[name] = result.rate
                        row[f"{name}_stderr"] = result.stderr
                rows.append(row)
    return rows
