"""A run directory and what a trainer does with it: config, logs, metrics, checkpoints, resume.

Layout::

    <root>/<method>/<env>/<seed>-<name>/
        config.json        # method, env, seed and the full config; written atomically
        metrics.jsonl      # one JSON object per line: {"step": ..., "train/...": ...}
        run.log            # every log line of every attempt (resumes, fallbacks, warnings)
        tb/                # TensorBoard event files (unless --no-tensorboard)
        checkpoints/       # ckpt-<step>.pt (atomic, verified), latest
        wandb/, wandb_id   # only with --wandb

``open_run`` creates the directory, or finds an existing one (``--resume DIR``, or a named run
whose directory already holds a config.json) and checks that the command asks for the same
config: the run's config.json wins, and a differing option is an error that names it unless
``--allow-config-change`` is given (then the change is applied and recorded in config.json).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import importlib.metadata
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from rl_buffers import io
from tqdm import tqdm

from rl_runtime.checkpoint import CheckpointManager
from rl_runtime.config import MethodConfig, RunConfig, config_changes, to_jsonable
from rl_runtime.errors import UsageError
from rl_runtime.logger import MetricLogger
from rl_runtime.seeding import capture_rng, restore_rng, seed_everything

__all__ = [
    "CHECKPOINT_FORMAT",
    "ConfigMismatchError",
    "Run",
    "RunInUseError",
    "console_logging",
    "open_run",
    "read_run_info",
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


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else must name a usable device."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as e:
        raise ValueError(f"--device: {e}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available on this machine")
    return device


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


class _TqdmHandler(logging.Handler):
    """Writes log lines above the progress bar instead of through it."""

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
        self._closed = False

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
        if last or step // every > previous // every:
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
            "config": to_jsonable(self.cfg),
            "rng": capture_rng(),
            "metrics_bytes": self.logger.jsonl_bytes(),
            "elapsed": self.elapsed(),
            **state,
        }
        self.logger.flush()
        path = self.checkpoints.save(step, full)
        self._last_checkpoint = time.perf_counter()
        self.log.debug("checkpoint %s", path)
        return path

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

    def close(self) -> None:
        """Flush and close the metric sinks and detach this run's log handlers."""
        if self._closed:
            return
        self._closed = True
        self.logger.close()
        for h in self._handlers:
            LOG.removeHandler(h)
            h.close()
        self._lock.close()  # releases the directory

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt):
            self.log.error("run failed: %s: %s", exc_type.__name__, exc)
        elif exc_type is not None:
            self.log.warning(
                "interrupted; resume from the last checkpoint with --resume %s", self.dir
            )
        self.close()


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
        raise FileExistsError(f"{run_dir} exists, is not empty and has no config.json")
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


def _run_info(method: str, cfg: MethodConfig) -> dict[str, Any]:
    return {
        "method": method,
        "env": cfg.env,
        "seed": cfg.run.seed,
        "versions": _versions(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": to_jsonable(cfg),
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
    info["config"] = to_jsonable(cfg)
    with io.atomic_write(run_dir / "config.json", "w") as f:
        json.dump(info, f, indent=2)


def open_run(method: str, cfg: MethodConfig) -> Run:
    """Create or reopen the run directory of ``cfg``, set up logging, seed, load a checkpoint.

    A fresh run gets ``<root>/<method>/<env>/<seed>-<name or start time>``. An existing run is
    reopened when ``cfg.run.resume`` names it or when ``cfg.run.name`` leads to a directory with
    a config.json; then the newest good checkpoint is loaded into :attr:`Run.restored` (falling
    back past corrupt files), ``metrics.jsonl`` is cut back to the checkpoint and TensorBoard
    hides the later events. A run reopened before its first checkpoint starts over.

    Every global RNG is seeded from ``cfg.run.seed`` before returning, so the trainer's
    construction of networks is deterministic; on resume, :meth:`Run.restore_rng` afterwards
    puts the checkpoint's RNG states back.

    Raises:
        ConfigMismatchError: the run directory's config differs from ``cfg`` (see the module doc).
        FileNotFoundError: ``--resume`` names a directory without config.json.
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
    if not resuming:  # first, so that the directory is a run directory from here on
        try:
            with io.atomic_write(run_dir / "config.json", "w") as f:
                json.dump(_run_info(method, cfg), f, indent=2)
        except BaseException:
            lock.close()
            raise
    handlers = _attach_handlers(run_dir, rc.quiet)
    try:
        if resuming:
            _reconcile(run_dir, method, cfg)
        LOG.info("%s run in %s", "resuming" if resuming else "new", run_dir)
        seed_everything(rc.seed)
        checkpoints = CheckpointManager(run_dir / "checkpoints", keep=rc.keep_checkpoints, log=LOG)
        restored = None
        if resuming:
            found = checkpoints.load_latest()
            if found is None:
                LOG.info("no checkpoint yet: starting the run over")
            else:
                path, restored = found
                if restored.get("format") != CHECKPOINT_FORMAT:
                    raise ValueError(
                        f"{path}: checkpoint format {restored.get('format')}, "
                        f"this version reads {CHECKPOINT_FORMAT}"
                    )
                LOG.info("resuming from %s (step %d)", path.name, restored["step"])
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
            truncate_to=(restored["metrics_bytes"] if restored else 0) if resuming else None,
            tensorboard=rc.tensorboard,
            purge_step=(restored["step"] + 1 if restored else 0) if resuming else None,
            wandb=wandb,
        )
    except BaseException:
        for h in handlers:
            LOG.removeHandler(h)
            h.close()
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
    )
