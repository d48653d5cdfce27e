"""Assertions for tests of code that saves and restores state (``numpy.testing`` style).

A checkpoint or ``state_dict`` is a nest of dicts, lists and tuples holding tensors, arrays and
plain values; resume tests need "bitwise the same", with the path of the first difference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["assert_bitwise", "assert_same_state"]


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    """Assert that two nested states are bitwise equal.

    Tensors must agree in dtype, shape and every element (``torch.equal``: NaNs differ), arrays
    element for element, dicts in keys and values, lists and tuples in length and items, anything
    else by ``==``.

    Args:
        a: One state.
        b: The other.
        where: Name of the root in the failure message (``state.buffer.obs[2]``).

    Raises:
        AssertionError: Naming the path of the first difference.
    """
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), f"{where}: tensor vs {type(b).__name__}"
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {tuple(a.shape)} != {tuple(b.shape)}"
        assert torch.equal(a, b), f"{where}: values differ"
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{where}: array vs {type(b).__name__}"
        assert np.array_equal(a, b), f"{where}: values differ"  # pyright: ignore[reportUnknownArgumentType]
    elif isinstance(a, dict):
        assert isinstance(b, dict), f"{where}: dict vs {type(b).__name__}"
        ka: set[Any] = set(a.keys())  # pyright: ignore[reportUnknownArgumentType]
        kb: set[Any] = set(b.keys())  # pyright: ignore[reportUnknownArgumentType]
        assert ka == kb, f"{where}: keys differ: {sorted(map(str, ka ^ kb))}"
        for k in a:  # pyright: ignore[reportUnknownVariableType]
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple), f"{where}: sequence vs {type(b).__name__}"
        la: list[Any] = list(a)  # pyright: ignore[reportUnknownArgumentType]
        lb: list[Any] = list(b)  # pyright: ignore[reportUnknownArgumentType]
        assert len(la) == len(lb), f"{where}: length {len(la)} != {len(lb)}"
        for i, (x, y) in enumerate(zip(la, lb, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_bitwise(a: Any, b: Any, where: str = "state") -> None:
    """Assert that two nested states have the same types all the way down and the same bits in
    every tensor, array and float (stricter than :func:`assert_same_state`: ``1 == 1.0`` and an
    int32 array equal to an int64 one both fail; NaNs with the same bits pass).

    Args:
        a: One state.
        b: The other.
        where: Name of the root in the failure message.

    Raises:
        AssertionError: Naming the path of the first difference.
    """
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        t: torch.Tensor = b
        assert (a.dtype, a.shape, a.device) == (t.dtype, t.shape, t.device), where
        same = torch.equal(a.reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8))
        assert same, f"{where}: bits differ"
    elif isinstance(a, np.ndarray | np.generic):
        # a 0-d array for a numpy scalar: same dtype and bytes
        xa: np.ndarray[Any, np.dtype[Any]] = np.asarray(a)  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
        xb: np.ndarray[Any, np.dtype[Any]] = np.asarray(b)
        assert xa.dtype == xb.dtype, f"{where}: dtype {xa.dtype} != {xb.dtype}"
        assert xa.shape == xb.shape, f"{where}: shape {xa.shape} != {xb.shape}"
        assert xa.tobytes() == xb.tobytes(), f"{where}: bits differ"
    elif isinstance(a, float):
        assert a.hex() == float(b).hex(), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, dict):
        da: dict[Any, Any] = a  # pyright: ignore[reportUnknownVariableType]
        db: dict[Any, Any] = b
        assert list(da) == list(db), f"{where}: keys {list(da)} != {list(db)}"
        for k in da:
            assert_bitwise(da[k], db[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        sa: list[Any] = list(a)  # pyright: ignore[reportUnknownArgumentType]
        sb: list[Any] = list(b)
        assert len(sa) == len(sb), f"{where}: length {len(sa)} != {len(sb)}"
        for i, (u, v) in enumerate(zip(sa, sb, strict=True)):
            assert_bitwise(u, v, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
