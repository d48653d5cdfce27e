"""Configs: JSON round trip, diffs, validation, presets and command-line parsing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rl_runtime.config import RunConfig, config_changes, from_jsonable, to_jsonable
from rl_runtime.testing import TinyQAgentConfig, TinyQConfig
from rl_train.method import UsageError
from rl_train.methods import METHODS, load_method
from rl_train.testing import METHOD


@dataclasses.dataclass(frozen=True)
class _Inner:
    kind: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (64, 64)


@dataclasses.dataclass(frozen=True)
class _Outer:
    inner: _Inner = _Inner()
    path: Path | None = None
    rate: float = 1.0
    pair: tuple[int, str] = (1, "x")


def test_round_trip_of_a_nested_config_through_json():
    cfg = _Outer(_Inner("b", (1, 2, 3)), Path("/tmp/x"), 2.5, (7, "y"))
    data = json.loads(json.dumps(to_jsonable(cfg)))
    assert data == {
        "inner": {"kind": "b", "sizes": [1, 2, 3]},
        "path": "/tmp/x",
        "rate": 2.5,
        "pair": [7, "y"],
    }
    assert from_jsonable(_Outer, data) == cfg


@given(
    seed=st.integers(0, 2**31),
    total=st.integers(1, 10**9),
    name=st.text(st.characters(blacklist_characters="/\x00"), max_size=12).filter(
        lambda s: s not in (".", "..")
    ),
    entity=st.none() | st.text(max_size=5),
    lr=st.floats(1e-6, 1.0),
    resume=st.none() | st.just(Path("runs/x")),
)
def test_round_trip_of_the_tiny_config(seed, total, name, entity, lr, resume):
    cfg = TinyQConfig(
        agent=TinyQAgentConfig(lr=lr),
        run=RunConfig(seed=seed, total_steps=total, name=name, wandb_entity=entity, resume=resume),
    )
    assert from_jsonable(TinyQConfig, json.loads(json.dumps(to_jsonable(cfg)))) == cfg


def test_missing_fields_take_defaults_and_unknown_fields_are_errors():
    assert from_jsonable(_Outer, {"rate": 3}) == _Outer(rate=3.0)
    with pytest.raises(ValueError, match=r"config\.inner: unknown field\(s\) \['size'\]"):
        from_jsonable(_Outer, {"inner": {"size": 3}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rate": "fast"}, r"config\.rate: expected a number, got 'fast'"),
        ({"inner": {"kind": "c"}}, r"config\.inner\.kind: expected one of \['a', 'b'\]"),
        ({"inner": {"sizes": [1, "2"]}}, r"config\.inner\.sizes\[1\]: expected an int"),
        ({"pair": [1]}, r"config\.pair: expected 2 items, got 1"),
        ({"path": 3}, r"config\.path: 3 fits none of"),
    ],
)
def test_bad_json_names_the_field(data, message):
    with pytest.raises(ValueError, match=message):
        from_jsonable(_Outer, data)


def test_to_jsonable_rejects_unstorable_values():
    @dataclasses.dataclass(frozen=True)
    class Bad:
        f: object = dataclasses.field(default_factory=object)

    with pytest.raises(TypeError, match=r"config\.f: cannot store a object"):
        to_jsonable(Bad())


def test_config_changes_by_dotted_key():
    old = {"agent": {"lr": 0.1, "gamma": 0.9}, "run": {"seed": 0}}
    new = {"agent": {"lr": 0.2, "gamma": 0.9}, "run": {"seed": 0, "extra": 1}}
    changes = config_changes(old, new)
    assert [(c.key, c.old, c.new) for c in changes] == [
        ("agent.lr", 0.1, 0.2),
        ("run.extra", "<missing>", 1),
    ]
    assert str(changes[0]) == "agent.lr: run has 0.1, command asks for 0.2"
    assert config_changes(old, old) == []


def test_a_field_added_since_the_run_is_no_change_at_its_default():
    old = {"agent": {"lr": 0.1}}
    defaults = {"agent": {"lr": 0.3, "new_flag": False}}
    at_default = {"agent": {"lr": 0.1, "new_flag": False}}
    assert config_changes(old, at_default, defaults=defaults) == []
    assert config_changes(old, at_default) != []  # without defaults every added field counts
    changed = {"agent": {"lr": 0.1, "new_flag": True}}
    assert [(c.key, c.old, c.new) for c in config_changes(old, changed, defaults=defaults)] == [
        ("agent.new_flag", "<missing>", True)
    ]
    # A field the run HAD is compared as before, default or not.
    assert config_changes({"agent": {"lr": 0.1}}, {"agent": {"lr": 0.3}}, defaults=defaults)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("seed", -1, "--seed must be an int >= 0, got -1"),
        ("total_steps", 0, "--total-steps must be an int >= 1, got 0"),
        ("total_steps", True, "--total-steps must be an int >= 1, got True"),
        ("keep_checkpoints", 0, "--keep-checkpoints must be an int >= 1"),
        ("checkpoint_minutes", float("nan"), "--checkpoint-minutes must be a finite number >= 0"),
        ("name", "a/b", "--name must be a single path component"),
    ],
)
def test_run_config_rejects_bad_values_by_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**{field: value})


def test_parse_applies_overrides_to_the_chosen_preset_without_mutating_it():
    preset = METHOD.presets["long-chain"]
    cfg = METHOD.parse(["--preset", "long-chain", "--seed", "3", "--agent.lr", "0.5"])
    assert cfg.env == "rltrain/LongChain-v0"
    assert cfg.run.seed == 3
    assert cfg.agent.lr == 0.5
    assert cfg.run.total_steps == preset.run.total_steps  # the preset's, not the class default
    assert preset.agent.lr == 0.01
    assert preset.run.seed == 0
    assert METHOD.parse(["--preset=chain"]) == METHOD.presets["chain"] == TinyQConfig()
    assert METHOD.parse([]) == TinyQConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.env = "x"  # type: ignore[misc]


def test_parse_reports_usage_errors():
    with pytest.raises(
        UsageError, match="unknown preset 'nope' for tiny-q; presets: chain, long-chain"
    ):
        METHOD.parse(["--preset", "nope"])
    with pytest.raises(UsageError, match="--preset needs a name"):
        METHOD.parse(["--preset"])
    with pytest.raises(SystemExit):
        METHOD.parse(["--no-such-option", "1"])


def test_registry_loads_each_method_under_its_own_name():
    import importlib.util

    for name, entry in METHODS.items():
        if all(importlib.util.find_spec(m) is not None for m in entry.needs):
            assert load_method(name).name == name
        else:  # the base install (nox -s "tests(rl-train)"): the extra is named instead
            with pytest.raises(UsageError, match=rf'pip install "rl-train\[{entry.extra}\]"'):
                load_method(name)
    with pytest.raises(UsageError, match="unknown method 'nope'"):
        load_method("nope")
