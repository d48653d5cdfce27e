"""``rl-train``: a subcommand per method, plus ``plot`` and ``sweep``.

::

    rl-train METHOD [--preset NAME] [options]      train (or resume) one run
    rl-train plot RUN... [--metric eval/return]    learning curves across seeds (PNG)
    rl-train sweep METHOD --seeds 0 1 2 -- [method options]   one run per seed, in parallel
"""

from __future__ import annotations

import importlib.metadata
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import tyro

from rl_train.method import UsageError
from rl_train.methods import METHODS, load_method

if TYPE_CHECKING:
    from rl_runtime.run import RunInterrupted

__all__ = ["main"]

_SIGINT_STATUS = 130
"""Exit status of a command stopped by Ctrl-C (128 + SIGINT), the shell's convention."""


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
    cfg: Any = None
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
        cfg = method.parse(rest)
        if getattr(getattr(cfg, "run", None), "resume", None) is not None and not _given(
            rest, "--env", "--preset"
        ):
            from rl_runtime.run import refuse_module_env_id

            # The env id came from the run's config.json: it may not name a module to import.
            refuse_module_env_id(cfg.env, cfg.run.resume / "config.json")
        method.train(cfg)
        return 0
    except UsageError as e:
        return _report(str(e), 2)
    except BaseException as e:
        reported = _expected(e, command, cfg)
        if reported is None:
            raise  # a bug: the traceback is what helps
        return _report(*reported)


def _report(message: str, status: int) -> int:
    print(f"rl-train: {message}", file=sys.stderr)
    return status


def _given(args: Sequence[str], *flags: str) -> bool:
    """Whether any of ``flags`` is on the command line (``--flag value`` or ``--flag=value``)."""
    return any(a == f or a.startswith(f"{f}=") for a in args for f in flags)


def _expected(e: BaseException, command: str, cfg: Any) -> tuple[str, int] | None:
    """The one-line report and exit status of an error the user can fix (or an interruption);
    None for anything else. Modules are looked up only if already imported: an exception of
    theirs cannot exist otherwise, and ``rl-train --help`` stays fast."""
    if "rl_runtime.run" in sys.modules:
        from rl_runtime.run import RunInterrupted

        if isinstance(e, RunInterrupted):
            return _interrupted(e, command), e.exit_status
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", _SIGINT_STATUS
    if "rl_buffers.io" in sys.modules:
        from rl_buffers import io

        if isinstance(e, io.UnsafeFileError | io.CorruptFileError):
            return str(e), 2  # the message names the file (and, if refused, the way out)
    if "gymnasium.error" in sys.modules:
        from gymnasium import error

        if isinstance(e, error.UnregisteredEnv | error.DeprecatedEnv):
            # Last resort for trainers that call gym.make directly (rl_runtime.run.env_errors
            # names the right option): the method's environment is its --env.
            env = f" {cfg.env}" if cfg is not None else ""
            return f"--env{env}: {e} (gymnasium.pprint_registry() lists the registered ids)", 2
        if isinstance(e, error.DependencyNotInstalled):
            return str(e), 2  # gymnasium's message names the package to install
    return None


def _interrupted(e: RunInterrupted, command: str) -> str:
    """``interrupted by SIGTERM at step N; resume with: rl-train METHOD --resume DIR``."""
    if not e.run_dir.is_dir():  # stopped before logging anything: nothing was kept
        return f"{e}, before the run's first step (nothing to resume)"
    resume = f"rl-train {command} --resume {shlex.quote(str(e.run_dir))}"
    if e.step is None:
        return f"{e}; resume from the last checkpoint with: {resume}"
    return f"{e}; resume with: {resume}"
