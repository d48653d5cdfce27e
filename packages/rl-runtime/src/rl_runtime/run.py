"""A run directory and what a trainer does with it: config, logs, metrics, checkpoints, resume.

Layout::

    <root>/<method>/<env>/<seed>-<name>/
        config.json        # method, env, seed and the full config; written atomically
        metrics.jsonl      # one JSON object per line: {"step": ..., "train/...": ...}
        run.log            # every log line of every attempt (resumes, fallbacks, warnings)
        tb/                # TensorBoard event files (unless --no-tensorboard)
        checkpoints/       # ckpt-<step>.pt (atomic, verified), latest
        wandb/, wandb_id   # only with --wandb
        previous-<time>/   # the history of an attempt that was started over (--restart)

``open_run`` creates the directory, or finds an existing one (``--resume DIR``, or a named run
whose directory already holds a config.json) and checks that the command asks for the same
config: the run's config.json wins, and a differing option is an error that names it unless
``--allow-config-change`` is given (then the change is applied and recorded in config.json).

A run's history is never lost. A directory that has held a checkpoint but has none left to
resume from (every one corrupt) is an error (:class:`CheckpointsLostError`) until the command
asks to start over with ``--restart``; starting over, by request or because a run was stopped
before its first checkpoint, moves the earlier metrics, checkpoints and TensorBoard events to
``previous-<time>/`` instead of truncating them. A fresh run that fails before logging anything
removes its directory, so no empty run is left behind for ``plot``.

While a run is open, SIGTERM and SIGINT (Ctrl-C) only ask it to stop: the training loops check
:attr:`Run.stop_requested` at their safe points, checkpoint that state and raise
:class:`RunInterrupted`; a second signal stops at once (from the last checkpoint).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import importlib.metadata
import json
import logging
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

import torch
from rl_buffers import io
from tqdm import tqdm

from rl_runtime.checkpoint import CHECKPOINT_DIR, CheckpointManager, NoGoodCheckpointError
from rl_runtime.config import MethodConfig, RunConfig, config_changes, to_jsonable
from rl_runtime.errors import UsageError
from rl_runtime.logger import MetricLogger
from rl_runtime.schedules import crossed
from rl_runtime.seeding import capture_rng, restore_rng, seed_everything

if TYPE_CHECKING:
    import gymnasium as gym

    from rl_runtime.evaluation import EvalResult

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointsLostError",
    "ConfigMismatchError",
    "ProgressEstimate",
    "Run",
    "RunDirectoryError",
    "RunInUseError",
    "RunInterrupted",
    "console_logging",
    "env_errors",
    "make_env_checked",
    "open_run",
    "read_run_info",
    "refuse_module_env_id",
    "resolve_device",
    "run_dir_for",
]

LOG = logging.getLogger("rlworks")
CHECKPOINT_FORMAT = 1
_RESERVED = frozenset({"format", "method", "step", "config", "rng", "metrics_bytes", "elapsed"})


class ConfigMismatchError(UsageError):
    """The command asks for a config that differs from the run directory's config.json."""


class RunInUseError(UsageError):
    """Another process has the run directory open."""


class RunDirectoryError(UsageError, FileExistsError):
    """The run's directory exists but is not a run directory (files of something else)."""


class CheckpointsLostError(UsageError):
    """A run directory that has held checkpoints has none left to resume from (every one was
    corrupt). Such a run is never started over silently: ``--restart`` asks for it."""


class RunInterrupted(BaseException):
    """The run stopped on SIGTERM or SIGINT.

    A ``BaseException`` like ``KeyboardInterrupt``, so that no ``except Exception`` on the way
    up swallows it. ``rl-train`` prints the resume command and exits with ``exit_status``.

    Attributes:
        signum: The signal (``signal.SIGTERM``, ``signal.SIGINT``).
        run_dir: The run directory.
        step: The step the loop stopped at, whose state it checkpointed; None when a second
            signal stopped the run at once (the last periodic checkpoint is the resume point).
        checkpoint: The checkpoint written for the stop, or None.
    """

    def __init__(
        self,
        signum: int,
        run_dir: Path,
        *,
        step: int | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        self.signum = signum
        self.run_dir = run_dir
        self.step = step
        self.checkpoint = checkpoint
        where = f" at step {step}" if step is not None else ""
        super().__init__(f"interrupted by {self.signal_name}{where}")

    @property
    def signal_name(self) -> str:
        """``"SIGTERM"``, ``"SIGINT"``, ..."""
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process stopped by the signal: 128 + its number
        (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + self.signum


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else must name a usable device.

    Raises:
        UsageError: naming ``--device`` and what to use instead.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as e:
        raise UsageError(
            f"--device {spec}: not a torch device; use auto, cpu, cuda, cuda:N or mps"
        ) from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {spec}: CUDA is not available on this machine; use --device cpu "
                "(or auto)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UsageError(
                f"--device {spec}: this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {spec}: MPS is not available on this machine; use --device cpu")
    return device


@contextlib.contextmanager
def env_errors(env_id: str, flag: str = "--env") -> Iterator[None]:
    """Report an environment id that gymnasium cannot make as a :class:`UsageError` naming
    ``flag``, in one line.

    Covers an unknown name, namespace or version (``gymnasium.error.UnregisteredEnv`` and its
    subclasses), a deprecated version, and a ``module:Env-v0`` id whose module does not exist.
    Anything else (a bug in the environment, a missing dependency inside a module that does
    exist) propagates unchanged.

    Example:
        >>> with env_errors(cfg.expert_env, "--expert-env"):  # doctest: +SKIP
        ...     envs = make_gym_vector_env(cfg.expert_env, 4)
    """
    import gymnasium as gym  # here, so that importing the runtime stays light

    try:
        yield
    except (gym.error.UnregisteredEnv, gym.error.DeprecatedEnv) as e:
        raise UsageError(
            f"{flag} {env_id}: {e} (gymnasium.pprint_registry() lists the registered ids)"
        ) from e
    except ModuleNotFoundError as e:
        module = env_id.partition(":")[0] if ":" in env_id else None
        cause = e.__cause__ if isinstance(e.__cause__, ModuleNotFoundError) else e
        if module is None or cause.name != module:
            raise
        raise UsageError(
            f"{flag} {env_id}: no module named {module!r} to import for it (module:Env ids "
            "import the module that registers the environment)"
        ) from e


def make_env_checked(env_id: str, *, flag: str = "--env", **kwargs: Any) -> gym.Env[Any, Any]:
    """``gym.make(env_id, **kwargs)``, with an unknown id reported as a :class:`UsageError` that
    names ``flag`` (see :func:`env_errors`)."""
    import gymnasium as gym

    with env_errors(env_id, flag):
        return gym.make(env_id, **kwargs)


def refuse_module_env_id(env_id: str, source: Path) -> None:
    """Refuse an environment id of the form ``module:Env-v0`` read from the file ``source``.

    ``gym.make`` imports ``module`` for such an id, so an id taken from a run's config.json on
    resume could import any installed module. Front ends call this for ids that come from a file
    rather than from the command line.

    Raises:
        UsageError: naming the file and the way to pass the id explicitly.
    """
    if ":" in env_id:
        raise UsageError(
            f"{source}: env id {env_id!r} names a module to import (module:Env form), and an "
            "id read from a run's files may not import modules; if you started this run "
            f"yourself, resume it with --env {env_id} given on the command line"
        )


def env_slug(env_id: str) -> str:
    """An environment id as one path component (``ALE/Pong-v5`` -> ``ALE_Pong-v5``)."""
    return env_id.replace("/", "_").replace(":", "_")


def run_dir_for(method: str, cfg: MethodConfig, name: str) -> Path:
    """``<root>/<method>/<env>/<seed>-<name>`` for ``cfg``."""
    return cfg.run.root / method / env_slug(cfg.env) / f"{cfg.run.seed}-{name}"


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a run directory.

    Raises:
        FileNotFoundError: ``run_dir`` has no config.json (it is not a run directory).
        ValueError: config.json is not valid JSON or lacks the ``method``/``config`` entries.
    """
    path = run_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.json, not a run directory")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(info, dict) or "method" not in info or "config" not in info:
        raise ValueError(f"{path}: expected an object with 'method' and 'config' entries")
    return info


_FILE_ONLY = {"file_only": True}
"""``extra=`` of a log call that goes to run.log but not to the terminal (where the command
prints its own one-line report of the same event)."""


class _TqdmHandler(logging.Handler):
    """Writes log lines above the progress bar instead of through it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False) and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def console_logging(*, quiet: bool = False) -> Iterator[None]:
    """Show the ``rlworks`` logger's lines on stderr for the duration of the block."""
    handler = _TqdmHandler(logging.WARNING if quiet else logging.INFO)
    handler.setFormatter(logging.Formatter("[rl-train] %(message)s"))
    LOG.setLevel(logging.INFO)
    LOG.addHandler(handler)
    try:
        yield
    finally:
        LOG.removeHandler(handler)


class ProgressEstimate:
    """How long a run has left at the speed measured so far: the line a long run logs once it
    knows, and again if the estimate moves a lot.

    :meth:`start` begins a measurement at a step; :meth:`update`, called as the run advances,
    returns ``step N/M: about X min left at the current speed (ETA HH:MM)`` the first time the
    speed has been measured over ``min_seconds``, then again only when the predicted end has
    moved by more than ``change`` times the time that was left at the previous line (the
    speed changed), at most ``max_lines`` lines in all, and never when less than ``min_left``
    seconds are left (a run about to end needs no estimate); None otherwise. The speed is the
    average since :meth:`start`, which the loops call after the step-0 evaluation (which says
    nothing about training speed) and the off-policy loop again when updates begin (the steps
    before them take none).

    Args:
        total: The run's last step (``total_steps``).
        min_seconds: Measure at least this long before the first estimate.
        change: Relative move of the predicted end that is worth another line.
        min_left: No line when less than this many seconds are left.
        max_lines: Lines at most.
        clock: Monotonic seconds (default ``time.perf_counter``).
        now: The local wall-clock time, for the ETA (default ``datetime.now``).
    """

    def __init__(
        self,
        total: int,
        *,
        min_seconds: float = 10.0,
        change: float = 0.5,
        min_left: float = 60.0,
        max_lines: int = 4,
        clock: Callable[[], float] | None = None,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.total = total
        self.min_seconds = min_seconds
        self.change = change
        self.min_left = min_left
        self.max_lines = max_lines
        self._clock = time.perf_counter if clock is None else clock
        self._now = dt.datetime.now if now is None else now
        self._origin: tuple[float, int] | None = None  # (clock, step) the speed is measured from
        self._last: tuple[float, float] | None = None  # (clock, predicted end) of the last line
        self.lines = 0
        """Lines returned so far."""

    def start(self, step: int) -> None:
        """Measure the speed from ``step``, now (an earlier measurement is dropped)."""
        self._origin = (self._clock(), step)

    def update(self, step: int) -> str | None:
        """The line to log at ``step``, or None (see the class doc). Cheap enough for every
        step: a clock read and a few comparisons. Starts the measurement if none is running."""
        if self._origin is None:
            self.start(step)
            return None
        if self.lines >= self.max_lines or step >= self.total:
            return None
        t = self._clock()
        t0, step0 = self._origin
        if t - t0 < self.min_seconds or step <= step0:
            return None
        left = (self.total - step) * (t - t0) / (step - step0)
        if left < self.min_left:
            return None
        end = t + left
        if self._last is not None:
            shown_at, shown_end = self._last
            if abs(end - shown_end) <= self.change * (shown_end - shown_at):
                return None
        self._last = (t, end)
        self.lines += 1
        now = self._now()
        eta = _clock_time(now + dt.timedelta(seconds=left), now)
        about = _duration(left)
        return f"step {step}/{self.total}: about {about} left at the current speed (ETA {eta})"


def _duration(seconds: float) -> str:
    """``1.5 min``, ``8.2 min``, ``20 min``, ``7.5 h``."""
    minutes = seconds / 60.0
    if minutes >= 120:
        return f"{minutes / 60:.1f} h"
    return f"{minutes:.1f} min" if minutes < 10 else f"{minutes:.0f} min"


def _clock_time(when: dt.datetime, now: dt.datetime) -> str:
    """``HH:MM`` on ``now``'s day, ``Tue 03:10`` within the week after it, else the date too."""
    days = (when.date() - now.date()).days
    if days == 0:
        return when.strftime("%H:%M")
    if 0 < days < 7:
        return when.strftime("%a %H:%M")
    return when.strftime("%Y-%m-%d %H:%M")


class Run:
    """An open run directory. Use :func:`open_run` to get one, as a context manager.

    Attributes:
        method: Subcommand name of the method.
        cfg: The method's config (frozen).
        dir: The run directory.
        device: Torch device for the trainer's networks and buffers.
        logger: Metric sinks (``run.logger.log(step, {...})``).
        checkpoints: The run's checkpoint files.
        restored: The checkpoint this attempt resumes from, or None for a fresh start. Trainers
            load their own entries from it; :meth:`restore_rng` restores the global RNGs.
        log: The ``rlworks`` logger (lines go to the terminal and to ``run.log``).

    While it is open (from the main thread), SIGTERM and SIGINT set :attr:`stop_requested`
    instead of stopping the process; the previous handlers are back after :meth:`close`.
    """

    def __init__(
        self,
        *,
        method: str,
        cfg: MethodConfig,
        run_dir: Path,
        device: torch.device,
        logger: MetricLogger,
        checkpoints: CheckpointManager,
        restored: dict[str, Any] | None,
        handlers: list[logging.Handler],
        lock: IO[Any],
        created: bool = False,
    ) -> None:
        self.method = method
        self.cfg = cfg
        self.dir = run_dir
        self.device = device
        self.logger = logger
        self.checkpoints = checkpoints
        self.restored = restored
        self.log = LOG
        self._handlers = handlers
        self._lock = lock
        self._elapsed_before = float(restored["elapsed"]) if restored else 0.0
        self._t0 = time.perf_counter()
        self._last_checkpoint = self._t0
        self._last_path: Path | None = None
        self._closed = False
        self._created = created
        self._stop_signal: int | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._progress_estimate = ProgressEstimate(cfg.run.total_steps)
        self._install_signal_handlers()

    @property
    def run_cfg(self) -> RunConfig:
        """The runtime options (``cfg.run``)."""
        return self.cfg.run

    @property
    def start_step(self) -> int:
        """The step this attempt starts from (the restored checkpoint's, else 0)."""
        return int(self.restored["step"]) if self.restored else 0

    def elapsed(self) -> float:
        """Wall-clock seconds spent in this run, over every attempt."""
        return self._elapsed_before + time.perf_counter() - self._t0

    def checkpoint_due(self, step: int, *, last: bool, previous: int | None = None) -> bool:
        """Whether the loop should checkpoint after ``step``: at the last step, every
        ``checkpoint_every`` steps, and once ``checkpoint_minutes`` of wall time have passed
        since the last checkpoint (or the start of this attempt).

        A loop that advances several steps at a time (the on-policy loop) passes the step it
        advanced from as ``previous``: a multiple of ``checkpoint_every`` in
        ``(previous, step]`` is then due."""
        rc = self.run_cfg
        every = rc.checkpoint_every
        if previous is None:
            previous = step - 1
        if last or crossed(step, previous, every):
            return True
        minutes = rc.checkpoint_minutes
        return minutes > 0 and time.perf_counter() - self._last_checkpoint >= 60.0 * minutes

    def save_checkpoint(self, step: int, state: Mapping[str, Any]) -> Path:
        """Write a checkpoint at ``step``.

        Args:
            step: The step counter the state corresponds to.
            state: The trainer's entries (agent, buffer, counters, ...). The run adds the step,
                the config, every global RNG state, the elapsed time and the length of
                ``metrics.jsonl`` (so a resume cuts off entries logged after this point).

        Returns:
            The checkpoint file.
        """
        clash = _RESERVED & set(state)
        if clash:
            raise ValueError(f"checkpoint entries {sorted(clash)} are reserved by the runtime")
        full = {
            "format": CHECKPOINT_FORMAT,
            "method": self.method,
            "step": step,
            "config": _recorded(self.cfg),
            "rng": capture_rng(),
            "metrics_bytes": self.logger.jsonl_bytes(),
            "elapsed": self.elapsed(),
            **state,
        }
        self.logger.flush()
        path = self.checkpoints.save(step, full)
        self._last_checkpoint = time.perf_counter()
        self._last_path = path
        self.log.debug("checkpoint %s", path)
        return path

    @property
    def stop_requested(self) -> bool:
        """Whether SIGTERM or SIGINT asked the run to stop. The loops check it at their safe
        points (after a step's log/evaluate/checkpoint block), checkpoint that state and raise
        :meth:`interrupted`::

            stop = run.stop_requested and not last
            if stop or run.checkpoint_due(step, last=last):
                run.save_checkpoint(step, state)
            if stop:
                raise run.interrupted(step)
        """
        return self._stop_signal is not None

    def interrupted(self, step: int) -> RunInterrupted:
        """The exception that stops the run at ``step``, whose state the loop has just
        checkpointed (see :attr:`stop_requested`)."""
        signum = signal.SIGINT if self._stop_signal is None else self._stop_signal
        stop = RunInterrupted(signum, self.dir, step=step, checkpoint=self._last_path)
        self.log.info(
            "%s; checkpoint %s; resume with --resume %s",
            stop,
            self._last_path.name if self._last_path else "none",
            self.dir,
            extra=_FILE_ONLY,
        )
        return stop

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:  # e.g. SIGINT of a background job: leave it ignored
                continue
            self._previous_handlers[signum] = previous
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes: only set the flag, the loop acts on it.
        if self._stop_signal is None:
            self._stop_signal = signum
            return
        # A second signal: stop now, from the last periodic checkpoint.
        raise RunInterrupted(signum, self.dir)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous_handlers = {}

    def log_evaluation(self, step: int, result: EvalResult, bar: Any) -> EvalResult:
        """Record an evaluation at ``step``: its ``eval/`` metrics, the progress bar's postfix
        and one log line. Returns ``result``."""
        self.logger.log(step, result.metrics())
        bar.set_postfix(eval_return=f"{result.mean_return:.4g}", refresh=False)
        self.log.info(
            "step %d: eval/return %.4g ± %.3g over %d episodes",
            step,
            result.mean_return,
            result.std_return,
            len(result.returns),
        )
        return result

    def restore_rng(self) -> None:
        """Restore the global RNG states of the restored checkpoint (no-op on a fresh run).

        Call it after building everything that draws random numbers at construction (network
        initialisation), so that the stream continues exactly where the checkpoint left it.
        """
        if self.restored is not None:
            restore_rng(self.restored["rng"])

    def progress(self, *, total: int | None = None) -> tqdm[Any]:
        """A progress bar from :attr:`start_step` to ``total`` (``total_steps`` by default);
        disabled with ``--quiet`` or when stderr is not a terminal."""
        rc = self.run_cfg
        return tqdm(
            total=rc.total_steps if total is None else total,
            initial=self.start_step,
            disable=rc.quiet or not sys.stderr.isatty(),
            unit="step",
            dynamic_ncols=True,
            desc=f"{self.method} {self.cfg.env} seed {rc.seed}",
        )

    def start_progress(self, step: int) -> None:
        """Measure the training speed from ``step`` on (see :meth:`report_progress`). The loops
        call it before their first step, after the step-0 evaluation, and the off-policy loop
        again when its updates begin."""
        self._progress_estimate.start(step)

    def report_progress(self, step: int) -> None:
        """Log how long the run has left, once the speed is known (:class:`ProgressEstimate`):
        one INFO line, ``step N/M: about X min left at the current speed (ETA HH:MM)``, after
        about ten seconds of training, and again only if the estimate moves by more than half
        (at most four lines; none when less than a minute is left). ``--quiet`` keeps it in
        run.log, off the terminal. The loops call it after every step (it costs a clock read),
        so a long run says how long it takes within seconds, not at its first log entry."""
        line = self._progress_estimate.update(step)
        if line is not None:
            self.log.info(line)

    def close(self) -> None:
        """Flush and close the metric sinks, detach this run's log handlers, put the previous
        signal handlers back and release the directory."""
        self._close(discard=False)

    def _close(self, *, discard: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._restore_signal_handlers()
        self.logger.close()
        if discard:
            self.log.info("removing %s: the run stopped before logging anything", self.dir)
        for h in self._handlers:
            LOG.removeHandler(h)
            h.close()
        try:
            if discard:  # still holding the lock: nobody else can have opened it meanwhile
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            self._lock.close()  # releases the directory

    def _holds_nothing(self) -> bool:
        """No checkpoint and no metric entry: nothing of this run is worth keeping."""
        return not self.checkpoints.steps() and self.logger.jsonl_bytes() == 0

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, RunInterrupted):
            if exc.step is None:  # a second signal: the loop did not checkpoint
                self.log.info(
                    "%s; resume from the last checkpoint with --resume %s",
                    exc,
                    self.dir,
                    extra=_FILE_ONLY,
                )
        elif isinstance(exc, KeyboardInterrupt):
            self.log.warning(
                "interrupted; resume from the last checkpoint with --resume %s", self.dir
            )
        elif exc is not None:
            # The command reports the error itself; run.log keeps it with the attempt.
            self.log.error("run failed: %s: %s", exc_type.__name__, exc, extra=_FILE_ONLY)
        # A fresh run that failed before logging anything leaves no directory behind (a later
        # `plot` or resume would only trip over it).
        discard = exc is not None and self._created and self._holds_nothing()
        self._close(discard=discard)


def _new_run_dir(method: str, cfg: MethodConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    first = run_dir_for(method, cfg, stamp)
    first.parent.mkdir(parents=True, exist_ok=True)
    for suffix in range(1000):  # runs started in the same second get -1, -2, ...
        path = first if suffix == 0 else first.with_name(f"{first.name}-{suffix}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"could not create a fresh run directory next to {first}")


def _locate(method: str, cfg: MethodConfig) -> tuple[Path, bool]:
    rc = cfg.run
    if rc.resume is not None:
        read_run_info(rc.resume)  # a clear error if it is not a run directory
        return rc.resume, True
    if not rc.name:
        return _new_run_dir(method, cfg), False
    run_dir = run_dir_for(method, cfg, rc.name)
    if (run_dir / "config.json").is_file():
        return run_dir, True
    if run_dir.exists() and any(p.name != ".lock" for p in run_dir.iterdir()):
        raise RunDirectoryError(
            f"{run_dir} exists, is not empty and has no config.json (it is not a run "
            "directory): choose another --name or --root, or move its files away"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, False


def _lock(run_dir: Path) -> IO[Any]:
    """Hold an exclusive lock on the run directory while it is open. The kernel releases it
    when the process ends, however it ends (SIGKILL included), so a stale lock is impossible."""
    handle = (run_dir / ".lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RunInUseError(f"{run_dir} is in use by another rl-train process") from None
    return handle


def _attach_handlers(run_dir: Path, quiet: bool) -> list[logging.Handler]:
    file_handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    file_handler.setLevel(logging.INFO)
    console = _TqdmHandler(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(logging.Formatter("[rl-train] %(message)s"))
    LOG.setLevel(logging.INFO)
    LOG.addHandler(file_handler)
    LOG.addHandler(console)
    return [file_handler, console]


def _versions() -> dict[str, str]:
    """Versions of the rlworks packages installed in this environment (rl-runtime at least)."""
    found = {}
    for dist in ("rl-runtime", "rl-buffers", "rl-nets", "rl-train"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _recorded(cfg: MethodConfig) -> Any:
    """``cfg`` as config.json and checkpoints record it. ``restart`` is a request of one
    command, never part of the run: recorded, ``--resume DIR`` would start it over each time."""
    config = to_jsonable(cfg)
    if isinstance(config, dict) and isinstance(config.get("run"), dict):
        config["run"]["restart"] = False
    return config


def _run_info(method: str, cfg: MethodConfig) -> dict[str, Any]:
    return {
        "method": method,
        "env": cfg.env,
        "seed": cfg.run.seed,
        "versions": _versions(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": _recorded(cfg),
    }


def _reconcile(run_dir: Path, method: str, cfg: MethodConfig) -> None:
    info = read_run_info(run_dir)
    if info["method"] != method:
        raise ConfigMismatchError(f"{run_dir} holds a {info['method']!r} run, not {method!r}")
    may_change = {f"run.{name}" for name in RunConfig.RESUME_MAY_CHANGE}
    # Fields added to the code after the run started are no change at their defaults.
    try:
        defaults: dict[str, Any] | None = to_jsonable(type(cfg)())
    except TypeError:  # a config type that needs arguments: every added field counts
        defaults = None
    changes = [
        c
        for c in config_changes(info["config"], to_jsonable(cfg), defaults=defaults)
        if c.key not in may_change
    ]
    if not changes:
        return
    listing = "\n  ".join(str(c) for c in changes)
    if not cfg.run.allow_config_change:
        raise ConfigMismatchError(
            f"{run_dir} was started with a different config:\n  {listing}\n"
            f"Resume it as it was with `--resume {run_dir}` (no other options), or pass "
            "--allow-config-change to apply the new values."
        )
    LOG.warning("resuming with a changed config (recorded in config.json):\n  %s", listing)
    info.setdefault("changes", []).append(
        {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "fields": {c.key: [c.old, c.new] for c in changes},
        }
    )
    info["config"] = _recorded(cfg)
    with io.atomic_write(run_dir / "config.json", "w") as f:
        json.dump(info, f, indent=2)


_HISTORY = ("metrics.jsonl", "tb", CHECKPOINT_DIR, "wandb", "wandb_id")
"""What an attempt of a run leaves behind, moved aside when the run starts over (run.log stays:
it is the log of every attempt)."""


def _history(run_dir: Path) -> list[Path]:
    """The non-empty history entries of ``run_dir``."""
    found = []
    for name in _HISTORY:
        path = run_dir / name
        if path.is_dir():
            if any(path.iterdir()):
                found.append(path)
        elif path.is_file() and path.stat().st_size > 0:
            found.append(path)
    return found


def _move_history_aside(run_dir: Path) -> Path | None:
    """Move the run's history to ``previous-<time>/`` with a copy of its config.json; returns
    that folder, or None when there was nothing to keep."""
    history = _history(run_dir)
    if not history:
        return None
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for suffix in range(1000):
        aside = run_dir / (f"previous-{stamp}" if suffix == 0 else f"previous-{stamp}-{suffix}")
        try:
            aside.mkdir()
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"could not create a previous-{stamp} folder in {run_dir}")
    shutil.copy2(run_dir / "config.json", aside / "config.json")
    for path in history:
        path.rename(aside / path.name)
    return aside


def _has_held_checkpoints(run_dir: Path) -> bool:
    """Whether the checkpoint directory holds anything (``*.corrupt`` files, ``latest``) after
    :meth:`CheckpointManager.load_latest` removed the temporary files of interrupted writes."""
    directory = run_dir / CHECKPOINT_DIR
    return directory.is_dir() and any(directory.iterdir())


def _restart_hint(run_dir: Path) -> str:
    return (
        "pass --restart to start the run over from step 0 (its metrics, checkpoints and "
        f"TensorBoard events are moved to {run_dir}/previous-<time>/, nothing is deleted)"
    )


def _resume_point(
    run_dir: Path, checkpoints: CheckpointManager, restart: bool
) -> dict[str, Any] | None:
    """The checkpoint a reopened run resumes from, or None when it starts over (its earlier
    history moved aside). See :func:`open_run`."""
    if restart:
        aside = _move_history_aside(run_dir)
        LOG.warning(
            "starting the run over from step 0 (--restart)%s",
            f"; its earlier history is in {aside.name}/" if aside else "",
        )
        return None
    try:
        found = checkpoints.load_latest()
    except NoGoodCheckpointError as e:
        raise CheckpointsLostError(
            f"{run_dir}: every checkpoint is corrupt (kept as checkpoints/*.corrupt), so there "
            f"is nothing to resume from; {_restart_hint(run_dir)}"
        ) from e
    if found is None:
        if _has_held_checkpoints(run_dir):
            left = ", ".join(sorted(p.name for p in (run_dir / CHECKPOINT_DIR).iterdir()))
            raise CheckpointsLostError(
                f"{run_dir} has held checkpoints but none is left to resume from "
                f"(checkpoints/ holds {left}); {_restart_hint(run_dir)}"
            )
        # Stopped before its first checkpoint: it may start over, but keeps what it logged.
        aside = _move_history_aside(run_dir)
        if aside is None:
            LOG.info("no checkpoint yet: starting the run over")
        else:
            LOG.warning(
                "no checkpoint yet: starting the run over from step 0; the metrics the earlier "
                "attempt logged are kept in %s/",
                aside.name,
            )
        return None
    path, restored = found
    if restored.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: checkpoint format {restored.get('format')}, "
            f"this version reads {CHECKPOINT_FORMAT}"
        )
    LOG.info("resuming from %s (step %d)", path.name, restored["step"])
    return restored


def open_run(method: str, cfg: MethodConfig) -> Run:
    """Create or reopen the run directory of ``cfg``, set up logging, seed, load a checkpoint.

    A fresh run gets ``<root>/<method>/<env>/<seed>-<name or start time>``. An existing run is
    reopened when ``cfg.run.resume`` names it or when ``cfg.run.name`` leads to a directory with
    a config.json; then the newest good checkpoint is loaded into :attr:`Run.restored` (falling
    back past corrupt files), ``metrics.jsonl`` is cut back to the checkpoint and TensorBoard
    hides the later events.

    A reopened run starts over from step 0 when ``cfg.run.restart`` asks for it, or when it
    never wrote a checkpoint (stopped before its first one); either way its earlier metrics,
    checkpoints and TensorBoard events are moved to ``previous-<time>/`` in the run directory,
    never truncated. A run that has held checkpoints and has none left (every one corrupt) is
    not started over unless asked: :class:`CheckpointsLostError`.

    Every global RNG is seeded from ``cfg.run.seed`` before returning, so the trainer's
    construction of networks is deterministic; on resume, :meth:`Run.restore_rng` afterwards
    puts the checkpoint's RNG states back.

    Raises:
        ConfigMismatchError: the run directory's config differs from ``cfg`` (see the module doc).
        CheckpointsLostError: the run has held checkpoints, none is usable, no ``restart``.
        RunDirectoryError: a named run's directory holds files but no config.json.
        RunInUseError: another process has the run open.
        UsageError: ``cfg.run.device`` is not usable here.
        FileNotFoundError: ``--resume`` names a directory without config.json.
        rl_buffers.io.UnsafeFileError: the newest checkpoint asks for code to run (refused).
    """
    rc = cfg.run
    device = resolve_device(rc.device)
    if rc.torch_threads:
        torch.set_num_threads(rc.torch_threads)
    if rc.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    run_dir, resuming = _locate(method, cfg)
    lock = _lock(run_dir)
    if not resuming and (run_dir / "config.json").is_file():
        resuming = True  # another process made it a run between _locate and the lock
    if not resuming:  # first, so that the directory is a run directory from here on
        try:
            with io.atomic_write(run_dir / "config.json", "w") as f:
                json.dump(_run_info(method, cfg), f, indent=2)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            lock.close()
            raise
    handlers = _attach_handlers(run_dir, rc.quiet)
    try:
        if resuming:
            _reconcile(run_dir, method, cfg)
        LOG.info("%s run in %s", "resuming" if resuming else "new", run_dir)
        seed_everything(rc.seed)
        checkpoints = CheckpointManager(run_dir / CHECKPOINT_DIR, keep=rc.keep_checkpoints, log=LOG)
        restored = _resume_point(run_dir, checkpoints, rc.restart) if resuming else None
        wandb = None
        if rc.wandb:
            wandb = {
                "project": rc.wandb_project,
                "entity": rc.wandb_entity,
                "config": to_jsonable(cfg),
            }
        logger = MetricLogger(
            run_dir,
            log=LOG,
            truncate_to=restored["metrics_bytes"] if restored else None,
            tensorboard=rc.tensorboard,
            purge_step=restored["step"] + 1 if restored else None,
            wandb=wandb,
        )
    except BaseException:
        for h in handlers:
            LOG.removeHandler(h)
            h.close()
        if not resuming:  # a fresh run that could not even start leaves nothing behind
            shutil.rmtree(run_dir, ignore_errors=True)
        lock.close()
        raise
    return Run(
        method=method,
        cfg=cfg,
        run_dir=run_dir,
        device=device,
        logger=logger,
        checkpoints=checkpoints,
        restored=restored,
        handlers=handlers,
        lock=lock,
        created=not resuming,
    )
