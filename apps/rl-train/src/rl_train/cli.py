"""``rl-train``: a subcommand per method, plus ``plot`` and ``sweep``.

::

    rl-train METHOD [--preset NAME] [options]      train (or resume) one run
    rl-train plot RUN... [--metric eval/return]    learning curves across seeds (PNG)
    rl-train sweep METHOD --seeds 0 1 2 -- [method options]   one run per seed, in parallel
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence

import tyro

from rl_train.method import UsageError
from rl_train.methods import METHODS, load_method

__all__ = ["main"]


def _usage() -> str:
    visible = {name: e for name, e in sorted(METHODS.items()) if not e.hidden}
    width = max([len(n) for n in visible] + [5])
    lines = [
        "usage: rl-train COMMAND [OPTIONS]",
        "",
        "Train, resume, plot and sweep rlworks methods.",
        "",
        "methods:",
        *([f"  {n:<{width}}  {e.summary}" for n, e in visible.items()] or ["  (none yet)"]),
        "",
        "commands:",
        f"  {'plot':<{width}}  learning curves (mean and 95% band across seeds) as a PNG",
        f"  {'sweep':<{width}}  one run per seed, in local processes or on a Ray cluster",
        "",
        "`rl-train COMMAND --help` lists a command's options.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"rl-train {importlib.metadata.version('rl-train')}")
        return 0
    command, rest = args[0], args[1:]
    try:
        if command in ("plot", "sweep"):
            from rl_runtime.run import console_logging  # imports torch

            with console_logging():
                if command == "plot":
                    from rl_train.plot import PlotConfig, run_plot

                    run_plot(tyro.cli(PlotConfig, args=rest, prog="rl-train plot"))
                    return 0
                from rl_train.sweep import main as sweep_main

                return sweep_main(rest)
        method = load_method(command)
        method.train(method.parse(rest))
        return 0
    except UsageError as e:
        print(f"rl-train: {e}", file=sys.stderr)
        return 2
