"""The registry of method subcommands.

Adding a method: write ``rl_train/methods/<name>.py`` defining ``METHOD = Method(...)`` (a
config dataclass with presets and a ``train(cfg)`` entry point that reads top to bottom), add one
line to :data:`METHODS` naming the install extra that brings its package, and declare that extra
in ``pyproject.toml``. Method modules import packages, never each other; two subcommands that
share code live in one module, registered twice under different attributes (``ot-ilfo`` and
``ot-ilfo-demos``). Modules are imported only when their subcommand runs, so
``rl-train --help``, ``plot`` and the other methods do not pay for (or break on) a method's
dependencies; a method whose extra is not installed stops with one line naming it. What method
modules share about the command line (settings derived from other options, nested fields that
are no option, subcommands that are not training runs) is in ``_support``, which is not a
method.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from typing import Any

from rl_train.method import Method, UsageError

__all__ = ["METHODS", "MethodEntry", "load_method"]


@dataclasses.dataclass(frozen=True)
class MethodEntry:
    """Where a subcommand's ``METHOD`` lives."""

    module: str
    """Module that defines the subcommand's :class:`Method`."""
    summary: str
    """One line for ``rl-train --help``."""
    extra: str | None = None
    """The install extra that brings the method (``pip install "rl-train[<extra>]"``)."""
    needs: tuple[str, ...] = ()
    """Top-level modules the extra installs; any missing one means the extra is not installed."""
    hidden: bool = False
    """Left out of ``rl-train --help`` (developer subcommands)."""
    attribute: str = "METHOD"
    """The module attribute that holds the :class:`Method`."""


METHODS: dict[str, MethodEntry] = {
    "mrq-drq": MethodEntry(
        "rl_train.methods.mrq_drq",
        "MR.Q and DR.Q (continuous or discrete)",
        extra="mrq-drq",
        needs=("mrq_drq",),
    ),
    "driftql": MethodEntry(
        "rl_train.methods.driftql",
        "DriftQL, FQL and BC offline on OGBench / Minari data",
        extra="driftql",
        needs=("driftql",),
    ),
    "driftql-data": MethodEntry(
        "rl_train.methods.driftql_data",
        "generate OGBench / Minari datasets for driftql",
        extra="driftql",
        needs=("driftql",),
    ),
    "ot-ilfo": MethodEntry(
        "rl_train.methods.ot_ilfo",
        "imitation from observation with OT rewards (TD3 or MR.Q)",
        extra="ot-ilfo",
        needs=("ot_ilfo", "mrq_drq"),
    ),
    "ot-ilfo-demos": MethodEntry(
        "rl_train.methods.ot_ilfo",
        "state-only expert demonstrations as a Minari dataset",
        extra="ot-ilfo",
        needs=("ot_ilfo", "mrq_drq"),
        attribute="DEMOS_METHOD",
    ),
    "leo": MethodEntry(
        "rl_train.methods.leo",
        "LEO all-goals Q-learning, goal-conditioned PQN/HER/PPO and Dual LEO on Craftax",
        extra="leo",
        needs=("leo",),
    ),
    "leo-goals": MethodEntry(
        "rl_train.methods.leo",
        "list a Craftax goal set (index name, one a line)",
        extra="leo",
        needs=("leo",),
        attribute="GOALS_METHOD",
    ),
    "hbs": MethodEntry(
        "rl_train.methods.hbs",
        "Hierarchical Behaviour Spaces, SOL-style options and flat PPO on NetHack",
        extra="hbs",
        needs=("hbs", "nle"),
    ),
    "mbsearch": MethodEntry(
        "rl_train.methods.mbsearch",
        "MRS.Q: MPPI search on MR.Q (arms mrsq, mpc, mrq)",
        extra="mbsearch",
        needs=("mbsearch", "mrq_drq"),
    ),
    "mbsearch-chain": MethodEntry(
        "rl_train.methods.mbsearch",
        "the N-chain study: random shooting, CEM and MPPI with a perfect model",
        extra="mbsearch",
        needs=("mbsearch", "mrq_drq"),
        attribute="CHAIN_METHOD",
    ),
    "fairbisim": MethodEntry(
        "rl_train.methods.fairbisim",
        "the Bisimulator and fairness baselines on lending and college admission",
        extra="fairbisim",
        needs=("fairbisim",),
    ),
    "marl-lowrank": MethodEntry(
        "rl_train.methods.marl_lowrank",
        "offline multi-agent RL with low-interaction-rank critics (TD3+BC, DR-AC)",
        extra="marl-lowrank",
        needs=("marl_lowrank",),
    ),
    "marl-lowrank-data": MethodEntry(
        "rl_train.methods.marl_lowrank",
        "offline multi-agent datasets for marl-lowrank (game, simple-spread)",
        extra="marl-lowrank",
        needs=("marl_lowrank",),
        attribute="DATA_METHOD",
    ),
    "gradimbalance": MethodEntry(
        "rl_train.methods.gradimbalance",
        "GRPO on a causal LM with per-task gradient-imbalance measurements",
        extra="gradimbalance",
        needs=("gradimbalance",),
    ),
    # Developer subcommand: the runtime's test agent (linear Q-learning), see rl_train.testing.
    "tiny-q": MethodEntry("rl_train.testing", "linear Q-learning on a small chain", hidden=True),
}
"""Subcommand name -> entry. One line per method."""


def load_method(name: str) -> Method[Any]:
    """Import the module of subcommand ``name`` and return its ``METHOD`` (or the entry's
    ``attribute``).

    Raises:
        UsageError: ``name`` is not a registered method, or its install extra is missing.
        TypeError: the attribute is missing, not a Method, or has another name.
    """
    entry = METHODS.get(name)
    if entry is None:
        raise UsageError(f"unknown method {name!r}; methods: {', '.join(sorted(METHODS))}")
    missing = [module for module in entry.needs if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(
            f"rl-train {name} needs the {entry.extra!r} extra ({', '.join(missing)} is not "
            f'installed): pip install "rl-train[{entry.extra}]"'
        )
    module = importlib.import_module(entry.module)
    where = f"{entry.module}.{entry.attribute}"
    method = getattr(module, entry.attribute, None)
    if not isinstance(method, Method):
        raise TypeError(f"{where} must be a rl_train.method.Method")
    if method.name != name:
        raise TypeError(f"{where} is named {method.name!r}, registered as {name!r}")
    return method
