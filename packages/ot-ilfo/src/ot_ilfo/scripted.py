"""Scripted experts: hand-written controllers for tasks where one is good enough to imitate.

:data:`SCRIPTED` maps each controller's name to its environment id and policy. This module
imports numpy only, so a command line can offer the names (and check them against ``--env``)
without loading gymnasium or torch; :mod:`ot_ilfo.demos` rolls the controllers out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["SCRIPTED", "Policy", "pendulum_swingup"]

Policy = Callable[[npt.NDArray[Any]], Any]
"""An observation (in the environment's units) -> an action (in the environment's units)."""


def pendulum_swingup(obs: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Scripted swing-up and balance for ``Pendulum-v1`` (torque in ``[-2, 2]``).

    Pendulum's dynamics are ``theta'' = 15 sin(theta) + 3 u`` (theta = 0 upright), so
    ``E = theta'^2 / 2 + 15 cos(theta)`` (15 when balanced at the top) changes as
    ``dE/dt = 3 u theta'``. Far from the top the controller pumps energy with
    ``u = 2 (15 - E) theta'``; once ``cos(theta) > 0.9`` a PD law ``u = -(10 theta + 2 theta')``
    balances it. Torques are clipped to ``[-2, 2]``. Mean return over seeds 0..19: about -138
    (a uniformly random policy: about -1200).

    Args:
        obs: ``(3,)`` ``(cos theta, sin theta, theta')``.

    Returns:
        ``(1,)`` float32 torque.
    """
    c, s, w = (float(v) for v in np.asarray(obs).reshape(3))
    theta = float(np.arctan2(s, c))
    if c > 0.9:
        u = -(10.0 * theta + 2.0 * w)
    else:
        energy = 0.5 * w * w + 15.0 * c
        u = 2.0 * (15.0 - energy) * w
        if abs(w) < 1e-3 and c < 0:  # at rest at the bottom, the pump has nothing to act on
            u = 2.0
    return np.array([np.clip(u, -2.0, 2.0)], dtype=np.float32)


SCRIPTED: Mapping[str, tuple[str, Policy]] = {
    "pendulum-swingup": ("Pendulum-v1", pendulum_swingup),
}
"""Scripted experts by name: ``(environment id, policy)`` with the policy in env units."""
