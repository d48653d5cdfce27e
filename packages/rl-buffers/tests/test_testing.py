"""rl_buffers.testing.assert_same_state: passes on equal nests, names the first difference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rl_buffers.testing import assert_same_state


def _state() -> dict:
    return {
        "buffer": {"obs": torch.arange(6.0).reshape(3, 2), "ptr": 2},
        "rng": np.arange(4, dtype=np.uint32),
        "history": [1, (2.5, "x")],
    }


def test_equal_nests_pass() -> None:
    assert_same_state(_state(), _state())


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda s: s["buffer"]["obs"].__setitem__((2, 1), 9.0), r"state\.buffer\.obs: values"),
        (lambda s: s["buffer"].__setitem__("obs", s["buffer"]["obs"].double()), "dtype"),
        (lambda s: s["buffer"].__setitem__("obs", s["buffer"]["obs"][:2]), "shape"),
        (lambda s: s["buffer"].__setitem__("ptr", 3), r"state\.buffer\.ptr: 2 != 3"),
        (lambda s: s["rng"].__setitem__(0, 7), r"state\.rng: values"),
        (lambda s: s.__setitem__("extra", 1), r"state: keys differ: \['extra'\]"),
        (lambda s: s["history"].append(3), r"state\.history: length 2 != 3"),
        (lambda s: s["history"].__setitem__(1, (2.5, "y")), r"state\.history\[1\]\[1\]"),
        (lambda s: s["buffer"].__setitem__("obs", s["buffer"]["obs"].numpy()), "tensor vs"),
    ],
)
def test_a_difference_is_named_by_its_path(change, path: str) -> None:
    a, b = _state(), _state()
    change(b)
    with pytest.raises(AssertionError, match=path):
        assert_same_state(a, b)


def test_nan_tensors_differ() -> None:
    nan = torch.tensor([float("nan")])
    with pytest.raises(AssertionError, match="values differ"):
        assert_same_state(nan, nan.clone())


def test_assert_bitwise_checks_types_dtypes_and_bits() -> None:
    from rl_buffers.testing import assert_bitwise

    state = {"a": [torch.arange(3), np.float32(0.5)], "b": (1, float("nan"))}
    assert_bitwise(state, {"a": [torch.arange(3), np.float32(0.5)], "b": (1, float("nan"))})
    with pytest.raises(AssertionError, match=r"state.b\[0\]: int != float"):
        assert_bitwise(state, {"a": [torch.arange(3), np.float32(0.5)], "b": (1.0, 0.0)})
    with pytest.raises(AssertionError, match="dtype int32 != int64"):
        assert_bitwise(np.zeros(2, np.int32), np.zeros(2, np.int64))
    with pytest.raises(AssertionError, match=r"x\[1\]: bits differ"):
        assert_bitwise([torch.zeros(2), torch.tensor([0.0, -0.0])], [torch.zeros(2)] * 2, "x")
