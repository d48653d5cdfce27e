"""The config codec (dataclass <-> JSON dict) and the field validators every method config uses."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rl_runtime.config import (
    DictCodec,
    check,
    dataclass_from_dict,
    dataclass_to_dict,
    in_range,
    int_at_least,
    is_number,
    layer_sizes,
    non_negative,
    one_of,
    positive,
    positive_int,
    probability,
)

# ------------------------------------------------------------------------------- validators


@pytest.mark.parametrize(
    "check_field",
    [
        lambda v: positive_int("n", v),
        lambda v: int_at_least("n", v, 0),
        lambda v: positive("n", v),
        lambda v: non_negative("n", v),
        lambda v: probability("n", v),
        lambda v: in_range("n", v, 0, 2),
    ],
)
def test_a_bool_is_never_a_number(check_field) -> None:
    with pytest.raises(ValueError, match=r"^n must be .* got True$"):
        check_field(True)
    with pytest.raises(ValueError, match=r"^n must be .* got False$"):
        check_field(False)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1", None, 1 + 0j])
def test_floats_must_be_finite_reals(bad: object) -> None:
    for check_field in (positive, non_negative, probability):
        with pytest.raises(ValueError, match=r"^lr must be a finite number"):
            check_field("lr", bad)  # type: ignore[arg-type]
    assert not is_number(bad)


def test_validators_accept_good_values_and_name_the_field_and_bound() -> None:
    positive("encoder.lr", 3e-4)
    positive("encoder.lr", np.float32(3e-4))  # numpy scalars are real numbers
    non_negative("w", 0)
    positive_int("dim", 512)
    int_at_least("pad", 0, 0)
    probability("p", 1.0)
    one_of("kernel", "laplace", ("laplace", "gaussian"))
    layer_sizes("hidden", (64, 32))
    check(True, "never raised")
    with pytest.raises(ValueError, match=r"^encoder\.lr must be a finite number > 0, got 0\.0$"):
        positive("encoder.lr", 0.0)
    with pytest.raises(ValueError, match=r"^w must be a finite number >= 0, got -1$"):
        non_negative("w", -1)
    with pytest.raises(ValueError, match=r"^dim must be an int >= 1, got 2\.0$"):
        positive_int("dim", 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^steps must be an int >= 2, got 1$"):
        int_at_least("steps", 1, 2)
    with pytest.raises(ValueError, match=r"^kernel must be one of \['laplace', 'gaussian'\]"):
        one_of("kernel", "rbf", ("laplace", "gaussian"))
    with pytest.raises(ValueError, match=r"^hidden must be a non-empty tuple of ints, got \(\)$"):
        layer_sizes("hidden", ())
    with pytest.raises(ValueError, match=r"^hidden\[1\] must be an int >= 1, got 0$"):
        layer_sizes("hidden", (4, 0))
    with pytest.raises(ValueError, match=r"^custom message$"):
        check(False, "custom message")


def test_in_range_ends() -> None:
    in_range("discount", 0.0, 0, 1, high_open=True)
    in_range("tau", 1.0, 0, 1, low_open=True)
    with pytest.raises(
        ValueError, match=r"^discount must be a finite number in \[0, 1\), got 1\.0$"
    ):
        in_range("discount", 1.0, 0, 1, high_open=True)
    with pytest.raises(ValueError, match=r"^tau must be a finite number in \(0, 1\], got 0$"):
        in_range("tau", 0, 0, 1, low_open=True)
    with pytest.raises(ValueError, match=r"in \[0, 1\], got 1\.5"):
        probability("p", 1.5)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_probability_accepts_exactly_the_unit_interval(x: float) -> None:
    inside = math.isfinite(x) and 0.0 <= x <= 1.0
    try:
        probability("p", x)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == inside


# ------------------------------------------------------------------------------- codec


@dataclasses.dataclass(frozen=True)
class _Inner:
    sizes: tuple[int, ...] = (4, 4)
    lr: float = 1e-3
    clip: float | None = None

    def __post_init__(self) -> None:
        positive("inner.lr", self.lr)


@dataclasses.dataclass(frozen=True)
class _Outer(DictCodec):
    name: Literal["a", "b"] = "a"
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    path: Path = Path("runs")
    steps: int = 10


def test_nested_frozen_dataclass_round_trips_through_json() -> None:
    cfg = _Outer(name="b", inner=_Inner(sizes=(8, 16, 2), lr=0.5, clip=2.0), steps=3)
    data = dataclass_to_dict(cfg)
    assert data == {
        "name": "b",
        "inner": {"sizes": [8, 16, 2], "lr": 0.5, "clip": 2.0},
        "path": "runs",
        "steps": 3,
    }
    back = dataclass_from_dict(_Outer, json.loads(json.dumps(data)))
    assert back == cfg
    assert isinstance(back.inner.sizes, tuple)
    # A dict written before a field existed loads with the field's default.
    assert dataclass_from_dict(_Outer, {"inner": {"lr": 0.25}}) == _Outer(inner=_Inner(lr=0.25))


def test_unknown_keys_and_wrong_types_are_rejected_by_path() -> None:
    with pytest.raises(ValueError, match=r"^_Outer: unknown field\(s\) \['gamma'\] for _Outer$"):
        dataclass_from_dict(_Outer, {"gamma": 0.9})
    with pytest.raises(ValueError, match=r"^_Outer\.inner: unknown field\(s\) \['size'\]"):
        dataclass_from_dict(_Outer, {"inner": {"size": [2]}})
    with pytest.raises(ValueError, match=r"_Outer\.steps: expected an int, got True"):
        dataclass_from_dict(_Outer, {"steps": True})
    with pytest.raises(ValueError, match=r"_Outer\.name: expected one of \['a', 'b'\]"):
        dataclass_from_dict(_Outer, {"name": "c"})
    # The dataclass's own checks run on the rebuilt value.
    with pytest.raises(ValueError, match=r"inner\.lr must be a finite number > 0"):
        dataclass_from_dict(_Outer, {"inner": {"lr": -1.0}})
    with pytest.raises(TypeError, match="dataclass instance"):
        dataclass_to_dict(_Outer)
    with pytest.raises(TypeError, match="dataclass type"):
        dataclass_from_dict(dict, {})  # type: ignore[arg-type]


def test_dict_codec_mixin_is_the_codec() -> None:
    cfg = _Outer(inner=_Inner(sizes=(3,)))
    assert cfg.to_dict() == dataclass_to_dict(cfg)
    assert _Outer.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"_Outer: unknown field\(s\) \['bogus'\]"):
        _Outer.from_dict({"bogus": 1})
