"""Atomic, verified checkpoints with a ``latest`` pointer and fallback past corrupt files.

Layout of a checkpoint directory::

    ckpt-000000050000.pt    # rl_buffers.io.save: header with length + SHA-256, then torch.save
    ckpt-000000100000.pt
    latest                  # text: the file name of the newest checkpoint (for people and tools)

Every file is written with ``rl_buffers.io`` (temporary file, fsync, rename), so a process killed
at any moment leaves complete files only. Loading picks the highest-step file that passes the
integrity check; a file that fails it (truncated, bit-flipped) is renamed to ``*.corrupt`` and
the previous good checkpoint is used, with a warning in the run's log.

That is the run's own business: only the process that holds the run (its lock) may clean up.
Anything else that reads a run (an expert's policy for demonstrations, a behaviour policy for a
dataset) uses :func:`read_latest_checkpoint`, which never writes to the run's directory, so a
run still training keeps every file it is writing.
"""

from __future__ import annotations

import logging
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from rl_buffers import io

__all__ = [
    "CHECKPOINT_DIR",
    "CheckpointManager",
    "LoadedCheckpoint",
    "NoGoodCheckpointError",
    "read_latest_checkpoint",
]

CHECKPOINT_DIR = "checkpoints"
"""The checkpoint directory inside a run directory."""

_NAME = re.compile(r"^ckpt-(\d{12})\.pt$")
_LOG = logging.getLogger("rlworks")
# How often the reader lists the directory again after a listed file vanished (the writer
# pruned it). Each retry means the writer saved a newer checkpoint in the meantime.
_RESCANS = 5


class NoGoodCheckpointError(RuntimeError):
    """Checkpoint files exist but every one of them is corrupt."""


class LoadedCheckpoint(NamedTuple):
    """A checkpoint read from disk."""

    step: int
    """The step in its file name."""
    path: Path
    """The file it was read from."""
    state: dict[str, Any]
    """Its contents (on the CPU)."""


def _steps(directory: Path) -> list[int]:
    """Steps of the checkpoint files in ``directory``, ascending (``.tmp`` files and
    ``*.corrupt`` files do not match the name pattern)."""
    if not directory.is_dir():
        return []
    found = (_NAME.match(p.name) for p in directory.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def _load_dict(path: Path) -> dict[str, Any]:
    """``io.load(path)``, which must be a dict (a checkpoint), else a TypeError naming it."""
    state = io.load(path)
    if not isinstance(state, dict):
        raise TypeError(f"{path}: expected a dict checkpoint, found {type(state).__name__}")
    return typing.cast(dict[str, Any], state)


def read_latest_checkpoint(run_dir: Path, *, log: logging.Logger | None = None) -> LoadedCheckpoint:
    """Read the newest checkpoint of another run, without writing anything to its directory.

    The newest checkpoint file that passes the integrity check wins: the one the run itself
    would resume from (it is also the one ``latest`` names, unless the run was killed between
    writing a checkpoint and its pointer, which then lags one behind). The run's directory is
    only read: no lock is taken (the run may be training), temporary files of a write in
    progress are not checkpoints and are left alone, a corrupt file is skipped with a warning
    (never renamed), and ``latest`` is not rewritten. A file that the run prunes while it is
    being looked for makes the reader list the directory again.

    Args:
        run_dir: A run directory (its checkpoints are in ``run_dir / CHECKPOINT_DIR``).
        log: Where the warnings for corrupt files go; default the ``rlworks`` logger.

    Returns:
        The step, file and contents of the newest good checkpoint.

    Raises:
        FileNotFoundError: the run has no checkpoint file (yet).
        NoGoodCheckpointError: it has checkpoint files and every one is corrupt.
        TypeError: the newest good file does not hold a dict.
    """
    log = _LOG if log is None else log
    directory = run_dir / CHECKPOINT_DIR
    for _ in range(_RESCANS):
        steps = _steps(directory)
        if not steps:
            raise FileNotFoundError(f"{run_dir}: no checkpoint under {directory}")
        vanished = False
        for step in reversed(steps):
            path = directory / f"ckpt-{step:012d}.pt"
            try:
                return LoadedCheckpoint(step, path, _load_dict(path))
            except FileNotFoundError:
                # Pruned by the run after the listing: a newer checkpoint exists, list again.
                vanished = True
                break
            except io.CorruptFileError as e:
                log.warning("skipping corrupt checkpoint of %s: %s", run_dir, e)
        if not vanished:
            raise NoGoodCheckpointError(f"{directory}: every checkpoint ({len(steps)}) is corrupt")
    raise FileNotFoundError(
        f"{directory}: checkpoints kept vanishing while being read ({_RESCANS} listings)"
    )


class CheckpointManager:
    """Writes, prunes and loads the checkpoints of one run.

    Args:
        directory: Where checkpoints live (created on first save).
        keep: How many checkpoints to keep; older ones are deleted after each save.
        log: Logger for fallbacks and pruning.
    """

    def __init__(self, directory: Path, *, keep: int, log: logging.Logger) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = directory
        self.keep = keep
        self.log = log

    def path_for(self, step: int) -> Path:
        """File name of the checkpoint at ``step``."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self.directory / f"ckpt-{step:012d}.pt"

    def steps(self) -> list[int]:
        """Steps of the checkpoint files present, ascending (integrity not checked)."""
        return _steps(self.directory)

    def save(self, step: int, state: Mapping[str, Any]) -> Path:
        """Write ``state`` as the checkpoint of ``step``, point ``latest`` at it, prune old ones.

        The order (checkpoint, then pointer, then pruning) means a kill at any point leaves at
        least one complete checkpoint that :meth:`load_latest` finds.
        """
        path = self.path_for(step)
        io.save(dict(state), path)
        with io.atomic_write(self.directory / "latest", "w") as f:
            f.write(path.name + "\n")
        for old in self.steps()[: -self.keep]:
            self.path_for(old).unlink(missing_ok=True)
        return path

    def load_latest(self) -> tuple[Path, dict[str, Any]] | None:
        """Load the newest checkpoint that passes the integrity check, cleaning up as it goes.

        For the run's own process only (it holds the run's lock): it removes temporary files,
        renames corrupt checkpoints and rewrites ``latest``. To read another run, use
        :func:`read_latest_checkpoint`.

        Returns:
            ``(path, state)``, or None when there is no checkpoint file at all.

        Raises:
            NoGoodCheckpointError: there are checkpoint files but all are corrupt.
        """
        if self.directory.is_dir():
            # Temporary files of a write that was killed before its rename.
            for tmp in self.directory.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                self.log.info("removed %s, left by an interrupted write", tmp.name)
        steps = self.steps()
        for i, step in enumerate(reversed(steps)):
            path = self.path_for(step)
            try:
                state = _load_dict(path)
            except io.CorruptFileError as e:
                bad = path.with_name(path.name + ".corrupt")
                path.replace(bad)
                older = steps[len(steps) - 2 - i] if i + 1 < len(steps) else None
                fallback = self.path_for(older).name if older is not None else "nothing"
                self.log.warning(
                    "checkpoint %s is corrupt (%s); moved it to %s and falling back to %s",
                    path.name,
                    e,
                    bad.name,
                    fallback,
                )
                continue
            if i > 0:  # keep the pointer honest after a fallback
                with io.atomic_write(self.directory / "latest", "w") as f:
                    f.write(path.name + "\n")
            return path, state
        if steps:
            raise NoGoodCheckpointError(
                f"{self.directory}: every checkpoint ({len(steps)}) is corrupt; "
                "see the *.corrupt files"
            )
        return None
