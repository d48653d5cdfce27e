"""Atomic, verified files: nothing written is lost, nothing corrupt is loaded silently.

Every file this workspace writes (buffers, checkpoints, datasets, run configs) goes through
:func:`atomic_write`: the bytes land in a temporary file in the destination's directory, are
flushed and fsynced, and only then renamed over the destination. A process killed at any moment
leaves either the old file or the new one, never a torn one.

:func:`save` / :func:`load` add a small header (magic, format version, payload length, SHA-256)
around a ``torch.save`` payload, so that a truncated or bit-flipped file raises
:class:`CorruptFileError` naming the file and the problem instead of an opaque unpickling error.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import struct
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["CorruptFileError", "atomic_write", "load", "save"]

_MAGIC = b"RLWK"
_FORMAT_VERSION = 1
# magic (4s) | format version (uint32) | payload length (uint64) | sha256 of payload (32s)
_HEADER = struct.Struct("<4sIQ32s")


class CorruptFileError(ValueError):
    """A file is truncated, corrupted, or not a file written by :func:`save`."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_umask() -> int:
    """The process umask (read by setting and restoring it: POSIX has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Generator[IO[Any]]:
    """Open a temporary file that replaces ``path`` atomically when the block exits cleanly.

    If the block raises, the temporary file is removed and ``path`` is untouched. The file gets
    the permissions a plain ``open`` would give it (those of the file it replaces, else
    ``0o666`` less the process umask), not the owner-only mode of a temporary file.

    Args:
        path: Destination file. Its parent directory is created if missing.
        mode: ``"wb"`` or ``"w"``.

    Yields:
        The open temporary file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            perms = stat.S_IMODE(dest.stat().st_mode)
        except FileNotFoundError:
            perms = 0o666 & ~_process_umask()
        os.chmod(tmp, perms)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Serialise ``obj`` with ``torch.save`` and write it atomically with an integrity header.

    Args:
        obj: Anything ``torch.save`` accepts (tensors, dicts of state, numpy arrays, ints).
        path: Destination file.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    header = _HEADER.pack(_MAGIC, _FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest())
    with atomic_write(path, "wb") as f:
        f.write(header)
        f.write(payload)


def load(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> Any:
    """Load a file written by :func:`save`, verifying its length and checksum first.

    Args:
        path: File written by :func:`save`.
        map_location: Passed to ``torch.load``; CPU by default so that a GPU checkpoint loads anywhere.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CorruptFileError: the file is too short, has the wrong magic or version, is truncated,
            or its checksum does not match.
    """
    p = Path(path)
    data = p.read_bytes()
    if len(data) < _HEADER.size:
        raise CorruptFileError(
            f"{p}: file is {len(data)} bytes, shorter than the {_HEADER.size}-byte header "
            "(truncated or not an rlworks file)"
        )
    magic, version, length, digest = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise CorruptFileError(
            f"{p}: bad magic {magic!r}, expected {_MAGIC!r} (not an rlworks file)"
        )
    if version != _FORMAT_VERSION:
        raise CorruptFileError(
            f"{p}: format version {version}, this library reads {_FORMAT_VERSION}"
        )
    payload = data[_HEADER.size :]
    if len(payload) != length:
        raise CorruptFileError(
            f"{p}: truncated: header promises {length} payload bytes, file holds {len(payload)}"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise CorruptFileError(f"{p}: checksum mismatch (file is corrupted)")
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)
