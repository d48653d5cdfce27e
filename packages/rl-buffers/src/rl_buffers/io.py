"""Atomic, verified files that hold data, never code.

Every file this workspace writes (buffers, checkpoints, datasets, run configs) goes through
:func:`atomic_write`: the bytes land in a temporary file in the destination's directory, are
flushed and fsynced, and only then renamed over the destination. A process killed at any moment
leaves either the old file or the new one, never a torn one.

:func:`save` / :func:`load` add a small header (magic, format version, payload length, SHA-256)
around a ``torch.save`` payload, so that a truncated or bit-flipped file raises
:class:`CorruptFileError` naming the file and the problem instead of an opaque unpickling error.

The checksum proves a file is intact, not that it is harmless: anyone can write a valid header.
So :func:`load` unpickles with ``torch.load(weights_only=True)`` and an explicit allowlist of the
data types this workspace stores (:data:`ALLOWED_GLOBALS`: numpy arrays, numpy scalars and
their numeric dtypes, on top of torch's tensors, dtypes and plain Python containers and
scalars). A file that asks for any other Python type or function is refused with
:class:`UnsafeFileError` before anything in it runs. A trusted file written by an older rlworks
with other types is converted once with ``python -m rl_buffers convert --trust FILE``
(:func:`convert_trusted`).
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import dataclasses
import enum
import hashlib
import importlib
import io
import os
import pickle
import pickletools
import re
import shlex
import shutil
import stat
import struct
import tempfile
import threading
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Callable, Generator, Mapping
from pathlib import Path, PurePath
from types import ModuleType
from typing import IO, Any, cast

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "ALLOWED_GLOBALS",
    "CONVERT_COMMAND",
    "ConversionError",
    "CorruptFileError",
    "UnsafeFileError",
    "atomic_write",
    "convert_trusted",
    "load",
    "save",
]

_MAGIC = b"RLWK"
_FORMAT_VERSION = 1
# magic (4s) | format version (uint32) | payload length (uint64) | sha256 of payload (32s)
_HEADER = struct.Struct("<4sIQ32s")

CONVERT_COMMAND = "python -m rl_buffers convert --trust"
"""The command (followed by the file) that rewrites a trusted file with allowed types only."""


class CorruptFileError(ValueError):
    """A file is truncated, corrupted, or not a file written by :func:`save`."""


class UnsafeFileError(ValueError):
    """A file asks for a Python type or function outside :data:`ALLOWED_GLOBALS`.

    It is raised before the unpickler calls anything the file names, so nothing in the file ran.

    Attributes:
        path: The file.
        requested: Dotted names of what it asked for that is not allowed (``"posix.system"``),
            or a short description when the unpickler refused something other than a name.
    """

    def __init__(self, path: Path, requested: tuple[str, ...]) -> None:
        self.path = path
        self.requested = requested
        asked = ", ".join(requested)
        super().__init__(
            f"{path}: refused: the file asks for {asked}, outside the allowlist of data types "
            "(tensors, numpy arrays and scalars of bool/int/uint/float dtypes, Python numbers, "
            "strings, bytes, lists, tuples, dicts); nothing in the file was run. Only if you "
            "wrote this file yourself with an older rlworks and trust it, convert it once with: "
            f"{CONVERT_COMMAND} {shlex.quote(str(path))}"
        )


class ConversionError(ValueError):
    """:func:`convert_trusted` found a value it cannot express with allowed types."""


# ----------------------------------------------------------------------------- allowlist


def _numpy_multiarray() -> ModuleType:
    """numpy's ``multiarray`` module: ``numpy._core`` since numpy 2, ``numpy.core`` before."""
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


_MULTIARRAY = _numpy_multiarray()
_RECONSTRUCT: Callable[..., Any] = _MULTIARRAY._reconstruct
_SCALAR: Callable[..., Any] = _MULTIARRAY.scalar

# Numeric and bool dtypes only: no object, string, void (structured) or datetime dtypes.
_NUMPY_DTYPES: tuple[type[np.dtype[Any]], ...] = (
    np.dtypes.BoolDType,
    np.dtypes.Int8DType,
    np.dtypes.Int16DType,
    np.dtypes.Int32DType,
    np.dtypes.Int64DType,
    np.dtypes.UInt8DType,
    np.dtypes.UInt16DType,
    np.dtypes.UInt32DType,
    np.dtypes.UInt64DType,
    np.dtypes.Float16DType,
    np.dtypes.Float32DType,
    np.dtypes.Float64DType,
)

ALLOWED_GLOBALS: tuple[tuple[Callable[..., Any], str], ...] = (
    # numpy arrays: ndarray.__reduce__ is _reconstruct(ndarray, (0,), b"b") + __setstate__
    # (shape, dtype, fortran flag, raw bytes). A file written under numpy 1.x names
    # numpy.core, under numpy 2 numpy._core: both names map to the same function.
    (_RECONSTRUCT, "numpy._core.multiarray._reconstruct"),
    (_RECONSTRUCT, "numpy.core.multiarray._reconstruct"),
    (np.ndarray, "numpy.ndarray"),
    # numpy scalars (np.int64(3), np.float32(0.5)): scalar(dtype, raw bytes).
    (_SCALAR, "numpy._core.multiarray.scalar"),
    (_SCALAR, "numpy.core.multiarray.scalar"),
    # dtypes: dtype("f4", False, True) + __setstate__, which the unpickler allows only on
    # instances of the classes below.
    (np.dtype, "numpy.dtype"),
    *((cls, f"numpy.dtypes.{cls.__name__}") for cls in _NUMPY_DTYPES),
    # Pickle protocol 2 writes b"" (the data of an empty array) as bytes().
    (bytes, "builtins.bytes"),
)
"""What :func:`load` allows on top of torch's ``weights_only`` defaults (tensors, torch dtypes
and devices, ``OrderedDict``, and Python's plain scalars and containers). Each entry is
``(object, the dotted name a pickle uses for it)``."""

# torch's allowlist is one process-wide set that safe_globals() adds to and removes from, so two
# threads loading at once could remove each other's entries mid-load.
_LOAD_LOCK = threading.Lock()

# How torch's weights_only unpickler words a refusal that the static scan cannot name.
_REFUSALS = (
    re.compile(r"GLOBAL (\S+) was not an allowed global"),
    re.compile(r"unsupported GLOBAL (\S+) whose module"),
    re.compile(r"reduce for unrecognized function (.+?)(?: which belongs to|$)", re.MULTILINE),
    re.compile(r"Can only build .* but got <class '([^']+)'>"),
    re.compile(r"Can only create new object .* but got (.+)$", re.MULTILINE),
    re.compile(r"Unsupported operand (\d+)"),
    re.compile(
        r"(persistent_load id must be .+|Only persistent_load of storage .+)$", re.MULTILINE
    ),
)
_OPCODE_NAMES = {ord(op.code): op.name for op in pickletools.opcodes}
_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING"}
)


def _python3_name(module: str, name: str) -> str:
    """The dotted name a full unpickler resolves ``module``/``name`` to: protocol 2 pickles
    write Python 2 names (``commands.call`` for ``subprocess.call``), mapped back on load."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _pickle_globals(pkl: bytes) -> set[str]:
    """Every global a pickle names, by disassembly (nothing is run): ``GLOBAL`` (protocol 2)
    and ``STACK_GLOBAL`` (protocol 4+, whose two names are the strings pushed just before)."""
    found: set[str] = set()
    pushed: list[str | None] = []  # recent pushes: strings, None for anything else
    memo: dict[int, str | None] = {}
    with contextlib.suppress(Exception):  # a malformed tail: keep what was found before it
        for op, arg, _ in pickletools.genops(pkl):
            if op.name in ("GLOBAL", "INST"):
                found.add(_python3_name(*str(arg).split(" ", 1)))
            elif op.name == "STACK_GLOBAL":
                module, name = pushed[-2:] if len(pushed) >= 2 else (None, None)
                if module is not None and name is not None:
                    found.add(_python3_name(module, name))
            elif op.name in _STRING_OPS:
                pushed.append(str(arg))
            elif op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                key = len(memo) if op.name == "MEMOIZE" else cast(int, arg)
                memo[key] = pushed[-1] if pushed else None
            elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                pushed.append(memo.get(cast(int, arg)))
            elif op.name != "FRAME":
                pushed.append(None)
    return found


def _allowed_names() -> set[str]:
    """Dotted names the safe unpickler accepts now: torch's defaults, then everything added
    with ``safe_globals`` / ``add_safe_globals`` (ours while :func:`load` runs)."""
    names: set[str] = set()
    with contextlib.suppress(Exception):  # torch's default list has no public getter
        unpickler = importlib.import_module("torch._weights_only_unpickler")
        names.update(cast(dict[str, Any], unpickler._get_allowed_globals()))
    added = cast(list[object], torch.serialization.get_safe_globals())  # pyright: ignore[reportUnknownMemberType]
    for entry in added:
        if isinstance(entry, tuple):
            names.add(str(cast(tuple[object, str], entry)[1]))
        else:
            names.add(f"{getattr(entry, '__module__', '')}.{getattr(entry, '__qualname__', '')}")
    return names


def _refused(message: str, payload: bytes) -> tuple[str, ...]:
    """Names of what ``payload`` asks for outside the allowlist, for the error message.

    A disassembly of the pickle (nothing is run) lists every global it names that is not
    allowed; when there is none (a refused build, an unknown opcode, a legacy-format payload),
    the unpickler's own message says what it refused.
    """
    found: set[str] = set()
    with contextlib.suppress(Exception), zipfile.ZipFile(io.BytesIO(payload)) as archive:
        pkl = next(n for n in archive.namelist() if n.rpartition("/")[2] == "data.pkl")
        found = _pickle_globals(archive.read(pkl)) - _allowed_names()
    if not found:
        for pattern in _REFUSALS:
            m = pattern.search(message)
            if m:
                name = m.group(1).strip().rstrip(".")
                if name.isdigit():  # an opcode torch does not implement
                    found.add(f"pickle opcode {_OPCODE_NAMES.get(int(name), name)}")
                elif " " in name:  # a description: "<built-in function f>", "... got <class>"
                    found.add(name)
                elif "." in name:
                    found.add(_python3_name(*name.rsplit(".", 1)))
                else:  # torch prints builtins without their module ("eval")
                    found.add(f"builtins.{name}")
                break
    if not found:
        found.add("content the safe unpickler does not accept")
    return tuple(sorted(found))


# ----------------------------------------------------------------------------- writing


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
        obj: Data that :func:`load` accepts back: tensors, numpy arrays and scalars of bool, int,
            uint and float dtypes, Python numbers, strings, bytes, and lists, tuples, dicts and
            sets of those. Anything else saves but :func:`load` refuses it (UnsafeFileError).
        path: Destination file.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    header = _HEADER.pack(_MAGIC, _FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest())
    with atomic_write(path, "wb") as f:
        f.write(header)
        f.write(payload)


# ----------------------------------------------------------------------------- reading


def _verified_payload(p: Path) -> bytes:
    """The payload of a :func:`save` file after checking magic, version, length and checksum."""
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
    return payload


def load(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> Any:
    """Load a file written by :func:`save`: checked for integrity first, then unpickled with
    only the allowed data types (:data:`ALLOWED_GLOBALS`), so a file can never run code.

    Args:
        path: File written by :func:`save`.
        map_location: Passed to ``torch.load``; CPU by default so that a GPU checkpoint loads anywhere.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CorruptFileError: the file is too short, has the wrong magic or version, is truncated,
            or its checksum does not match.
        UnsafeFileError: the file asks for a type or function outside the allowlist (nothing in
            it was run); the message names what it asked for and the conversion command.
    """
    p = Path(path)
    payload = _verified_payload(p)
    with _LOAD_LOCK, torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
        try:
            return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            raise UnsafeFileError(p, _refused(str(e), payload)) from None
        except RuntimeError as e:
            # torch refuses TorchScript archives (code) and legacy .tar files under weights_only.
            if "weights_only" not in str(e):
                raise
            kind = "TorchScript code" if "TorchScript" in str(e) else "a legacy torch .tar payload"
            raise UnsafeFileError(p, (kind,)) from None


# ----------------------------------------------------------------------------- conversion


def _allowed_dtype(dtype: np.dtype[Any]) -> bool:
    # By the canonical dtype a pickle rebuilds ("<i8"), not the spelling (np.longlong is "q").
    return type(np.dtype(dtype.str)) in _NUMPY_DTYPES


def _plain(value: Any, where: str) -> Any:
    """``value`` rebuilt from allowed types only (see :func:`convert_trusted`)."""
    if value is None or type(value) in (bool, int, float, complex, str, bytes):
        return value
    if isinstance(value, enum.Enum):  # before int/str: IntEnum and StrEnum are both
        return _plain(value.value, where)
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        scalar = cast("np.generic[Any]", value)
        if not _allowed_dtype(scalar.dtype):
            raise ConversionError(f"{where}: numpy scalar of dtype {scalar.dtype} is not allowed")
        return scalar
    # Subclasses of builtin scalars become the builtin (bool cannot be subclassed).
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, complex):
        return complex(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, torch.Tensor):
        if type(value) not in (torch.Tensor, torch.nn.Parameter):
            return value.as_subclass(torch.Tensor)
        return value
    if isinstance(value, torch.dtype | torch.device | torch.Size):
        return value
    if isinstance(value, np.ndarray):
        arr = cast(npt.NDArray[Any], value)
        if type(arr) is not np.ndarray:  # memmap, matrix and other subclasses
            arr = np.array(arr)
        if not _allowed_dtype(arr.dtype):
            raise ConversionError(f"{where}: numpy array of dtype {arr.dtype} is not allowed")
        return arr
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        items = cast(Mapping[Any, Any], value).items()
        pairs = [(_plain(k, f"{where}[{k!r}]"), _plain(v, f"{where}.{k}")) for k, v in items]
        if isinstance(value, Counter):
            return Counter(dict(pairs))
        if isinstance(value, OrderedDict):
            return OrderedDict(pairs)
        return dict(pairs)
    if isinstance(value, list | tuple):  # a NamedTuple becomes a plain tuple
        seq = [_plain(v, f"{where}[{i}]") for i, v in enumerate(cast(list[Any], value))]
        return seq if isinstance(value, list) else tuple(seq)
    if isinstance(value, set | frozenset):
        return {_plain(v, f"{where}{{}}") for v in cast(set[Any], value)}
    raise ConversionError(
        f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be stored as "
        "data (allowed: tensors, numpy arrays/scalars of bool/int/uint/float dtypes, Python "
        "numbers, strings, bytes, lists, tuples, dicts, sets, dataclasses, enums, paths)"
    )


def convert_trusted(
    path: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None
) -> Path:
    """Rewrite a file you trust so that :func:`load` accepts it.

    **This unpickles ``path`` with full pickle (``weights_only=False``): it runs any code the file
    holds.** Use it only on files you wrote yourself with an older rlworks. The integrity header
    is checked first. Values are rebuilt from allowed types: dataclasses become dicts of their
    fields, NamedTuples plain tuples, enums their values, paths strings, dict subclasses dicts,
    frozensets sets, subclasses of builtin scalars the builtin; anything else is an error naming
    where it is. The result is written with :func:`save` and checked to load with :func:`load`.

    Args:
        path: The trusted file (written by :func:`save`).
        out: Where to write the converted file. Default: ``path`` itself, replaced atomically,
            with the original kept next to it as ``<name>.orig``.

    Returns:
        The converted file.

    Raises:
        CorruptFileError: ``path`` fails the integrity check.
        ConversionError: it holds a value that cannot be expressed with allowed types.
    """
    src = Path(path)
    payload = _verified_payload(src)
    trusted = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    converted = _plain(trusted, "file")
    dest = src if out is None else Path(out)
    if dest.resolve() == src.resolve():
        backup = src.with_name(src.name + ".orig")
        shutil.copy2(src, backup)
    tmp = dest.with_name(f".{dest.name}.converted")
    try:
        save(converted, tmp)
        load(tmp)  # proves the result loads safely before it replaces anything
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
