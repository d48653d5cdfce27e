"""Atomic, verified checkpoints with a ``latest`` pointer and fallback past corrupt files.

Layout of a checkpoint directory::

    ckpt-000000050000.pt    # rl_buffers.io.save: header with length + SHA-256, then torch.save
    ckpt-000000100000.pt
    latest                  # text: the file name of the newest checkpoint (for people and tools)

Every file is written with ``rl_buffers.io`` (temporary file, fsync, rename), so a process killed
at any moment leaves complete files only. Loading picks the highest-step file that passes the
integrity check; a file that fails it (truncated, bit-flipped) is renamed to ``*.corrupt`` and
the previous good checkpoint is used, with a warning in the run's log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rl_buffers import io

__all__ = ["CheckpointManager", "NoGoodCheckpointError"]

_NAME = re.compile(r"^ckpt-(\d{12})\.pt$")


class NoGoodCheckpointError(RuntimeError):
    """Checkpoint files exist but every one of them is corrupt."""


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
        if not self.directory.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

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
        """Load the newest checkpoint that passes the integrity check.

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
                state = io.load(path)
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
            if not isinstance(state, dict):
                raise TypeError(f"{path}: expected a dict checkpoint, found {type(state).__name__}")
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
