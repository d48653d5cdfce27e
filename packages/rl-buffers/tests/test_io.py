"""Atomic writes, integrity-checked loads, and loads that never run code from a file."""

from __future__ import annotations

import argparse
import hashlib
import http
import os
import random
import shlex
import stat
import struct
import subprocess
import sys
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rl_buffers import (
    FadedLAPSampler,
    LAPSampler,
    ReplayBuffer,
    RolloutStorage,
    TransitionSpec,
    UniformSampler,
)
from rl_buffers import io as rio
from rl_buffers.__main__ import main as cli
from rl_buffers.testing import assert_bitwise

# ----------------------------------------------------------------------------- helpers

ALLOWED_DTYPES = ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")


def save_like_main(
    obj: Any, path: Path, *, pickle_protocol: int = 2, zip_format: bool = True
) -> None:
    """The writer of ``rl_buffers.io.save`` on main (1f13e63): the 48-byte header (magic, format
    1, payload length, SHA-256) and a ``torch.save`` payload. Anyone can write this."""
    buf = BytesIO()
    torch.save(obj, buf, pickle_protocol=pickle_protocol, _use_new_zipfile_serialization=zip_format)
    payload = buf.getvalue()
    header = struct.pack("<4sIQ32s", b"RLWK", 1, len(payload), hashlib.sha256(payload).digest())
    path.write_bytes(header + payload)


def full_pickle_load(path: Path) -> Any:
    """What ``rl_buffers.io.load`` did on main after the checksum: full pickle."""
    return torch.load(BytesIO(path.read_bytes()[48:]), weights_only=False)


class RunsOnLoad:
    """Unpickling this calls ``func(*args)``: the shape of a malicious payload."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


def touch_command(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


# (payload that creates `marker` when unpickled, what the error must name)
ATTACKS: dict[str, tuple[Callable[[Path], RunsOnLoad], str]] = {
    "os.system": (lambda m: RunsOnLoad(os.system, f"touch {shlex.quote(str(m))}"), "posix.system"),
    "subprocess": (
        lambda m: RunsOnLoad(subprocess.call, [sys.executable, "-c", touch_command(m)]),
        "subprocess.call",
    ),
    "exec": (lambda m: RunsOnLoad(exec, touch_command(m)), "builtins.exec"),
    "eval": (
        lambda m: RunsOnLoad(eval, f"__import__('os').system('touch {m}')"),
        "builtins.eval",
    ),
}


def filled_buffer(sampler: Any, *, pixels: bool = False, n: int = 70) -> ReplayBuffer:
    """A buffer past one wrap-around, with terminals, truncations and updated priorities."""
    rng = np.random.default_rng(0)
    if pixels:  # uint8 frames, 2-frame stacks
        spec = TransitionSpec.discrete((4, 4), 3, obs_dtype=torch.uint8, history=2)

        def frame(t: int) -> np.ndarray:
            return np.full((1, 4, 4), t % 250, np.uint8)

        def first(t: int) -> np.ndarray:
            return np.concatenate([frame(t), frame(t)])

        def after(obs: np.ndarray, t: int) -> np.ndarray:
            return np.concatenate([obs[1:], frame(t)])

    else:
        spec = TransitionSpec.continuous((3,), 2)

        def first(t: int) -> np.ndarray:
            return np.array([t, -t, 0.5 * t], np.float32)

        def after(obs: np.ndarray, t: int) -> np.ndarray:
            return first(t)

    buf = ReplayBuffer(spec=spec, capacity=50, horizon=3, sampler=sampler)
    obs = first(0)
    for t in range(n):
        nxt = after(obs, t + 1)
        action: Any = int(rng.integers(3)) if pixels else rng.normal(size=2).astype(np.float32)
        terminated, truncated = t % 11 == 10, t % 17 == 16
        buf.add(obs, action, float(rng.normal()), nxt, terminated, truncated)
        obs = first(1000 + t) if terminated or truncated else nxt
        if t % 6 == 5 and buf.num_sampleable:
            b = buf.sample(8, torch.Generator().manual_seed(t))
            buf.update_priority(b.indices, torch.from_numpy(rng.normal(0, 3, 8)))
    return buf


def rollout_state() -> dict[str, Any]:
    """A RolloutStorage's state mid-rollout (3 of 4 steps written)."""
    s = RolloutStorage(4, 2, (3,), (), action_dtype=torch.int64, device="cpu")
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        s.add(
            torch.randn(2, 3, generator=g),
            torch.randint(0, 4, (2,), generator=g),
            torch.randn(2, generator=g),
            torch.randn(2, generator=g),
            torch.randn(2, generator=g),
            torch.tensor([False, True]),
            torch.tensor([True, False]),
            torch.randn(2, generator=g),
        )
    return s.state_dict()


def stateful_payload() -> dict[str, Any]:
    """One of every kind of state this workspace checkpoints."""
    random.seed(1)
    random.random()
    np.random.seed(2)  # noqa: NPY002 - the legacy global RNG is part of every checkpoint
    np.random.normal(size=3)  # noqa: NPY002
    torch.manual_seed(3)
    torch.rand(4)
    gen = torch.Generator().manual_seed(4)
    torch.rand(5, generator=gen)
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32, seed=5)
    box.sample()
    nested = gym.spaces.Dict({"a": gym.spaces.Discrete(3, seed=6), "b": box})
    nested.seed(7)
    nested.sample()
    return {
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),  # noqa: NPY002
            "torch": torch.get_rng_state(),
            "generator": gen.get_state(),
            "spaces": [
                box.np_random.bit_generator.state,
                {k: s.np_random.bit_generator.state for k, s in nested.spaces.items()},
                np.random.default_rng(8).bit_generator.state,
            ],
        },
        "buffers": {
            "uniform": filled_buffer(UniformSampler(50)).state_dict(),
            "lap": filled_buffer(LAPSampler(50)).state_dict(),
            "faded": filled_buffer(FadedLAPSampler(50, fade=0.9)).state_dict(),
            "lap_scan": filled_buffer(LAPSampler(50, backend="scan")).state_dict(),
            "pixels": filled_buffer(LAPSampler(50), pixels=True).state_dict(),
        },
        "rollout": rollout_state(),
        "counters": {
            "step": np.int64(123_456),
            "episode": 17,
            "best_return": np.float32(1.5),
            "done": np.bool_(True),
            "returns": np.array([1.0, -2.5, np.nan], np.float64),
            "lengths": np.array([1000, 87], np.int32),
            "nan": float("nan"),
            "neg_zero": -0.0,
            "big": 2**70,
        },
        "obs": {
            "float32": np.random.default_rng(0).normal(size=(4, 17)).astype(np.float32),
            "float64": np.random.default_rng(1).normal(size=(2, 3)),
            "uint8": np.arange(2 * 84 * 84, dtype=np.uint8).reshape(2, 84, 84),
            "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
            "strided": np.arange(10, dtype=np.float32)[::3],
            "zero_d": np.array(3.5, np.float32),
            "empty": np.zeros((0, 17), np.float32),
        },
        "scalars": [np.dtype(t).type(1) for t in ALLOWED_DTYPES],
        "arrays": [np.arange(3).astype(t) for t in ALLOWED_DTYPES],
        "plain": OrderedDict(
            a=(1, "ü", b"\x00\xff", b"", None, True, 1 + 2j),
            s={1, 2},
            size=torch.Size([2, 3]),
            dtype=torch.bfloat16,
            device=torch.device("cpu"),
            bf16=torch.ones(3, dtype=torch.bfloat16),
            param=torch.nn.Parameter(torch.zeros(2)),
        ),
    }


# ----------------------------------------------------------------------------- writes


def test_round_trip_preserves_tensors_and_python_objects(tmp_path: Path) -> None:
    obj = {"w": torch.arange(6.0).reshape(2, 3), "step": 7, "name": "x"}
    rio.save(obj, tmp_path / "a.pt")
    back = rio.load(tmp_path / "a.pt")
    assert torch.equal(back["w"], obj["w"])
    assert back["step"] == 7
    assert back["name"] == "x"


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    rio.save({"v": 1}, path)

    class BoomError(RuntimeError):
        pass

    def write_then_fail() -> None:
        with rio.atomic_write(path) as f:
            f.write(b"partial bytes")
            raise BoomError

    with pytest.raises(BoomError):
        write_then_fail()
    assert rio.load(path) == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]


@pytest.mark.parametrize("keep", [0, 10, 60, -1])
def test_truncated_file_is_rejected_with_named_error(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "t.pt"
    rio.save({"w": torch.ones(100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(rio.CorruptFileError, match=r"t\.pt.*(truncated|shorter)"):
        rio.load(path)


def test_flipped_byte_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    rio.save({"w": torch.ones(100)}, path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(rio.CorruptFileError, match="checksum"):
        rio.load(path)


def test_foreign_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save({"w": 1}, path)
    with pytest.raises(rio.CorruptFileError, match="magic"):
        rio.load(path)


def test_text_mode_and_bad_mode(tmp_path: Path) -> None:
    with rio.atomic_write(tmp_path / "sub" / "c.json", "w") as f:
        f.write("{}")
    assert (tmp_path / "sub" / "c.json").read_text() == "{}"
    with pytest.raises(ValueError, match="mode"), rio.atomic_write(tmp_path / "x", "a"):
        pass


def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path):
    old = os.umask(0o027)
    try:
        with rio.atomic_write(tmp_path / "new.bin") as f:
            f.write(b"x")
        assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o640
        os.chmod(tmp_path / "new.bin", 0o604)
        with rio.atomic_write(tmp_path / "new.bin") as f:  # a replaced file keeps its mode
            f.write(b"y")
        assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o604
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------- files are data


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")
@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize(
    ("protocol", "zip_format"), [(2, True), (4, True), (2, False)], ids=["zip", "proto4", "legacy"]
)
def test_a_crafted_file_with_a_valid_checksum_is_refused_and_runs_nothing(
    tmp_path: Path, attack: str, protocol: int, zip_format: bool
) -> None:
    make, name = ATTACKS[attack]
    marker = tmp_path / "ran"
    path = tmp_path / "ckpt-000000000100.pt"
    state = {"format": 1, "step": 100, "agent": {"w": torch.ones(3)}, "rng": make(marker)}
    save_like_main(state, path, pickle_protocol=protocol, zip_format=zip_format)

    with pytest.raises(rio.UnsafeFileError) as err:
        rio.load(path)
    assert not marker.exists()
    msg = str(err.value)
    assert str(path) in msg
    assert "nothing in the file was run" in msg
    assert f"{rio.CONVERT_COMMAND} {path}" in msg
    assert err.value.requested == (name,)
    assert err.value.path == path

    # Control: the file is live. Main's loader (checksum OK, then full pickle) ran the command.
    full_pickle_load(path)
    assert marker.exists()


def test_replay_buffer_load_refuses_a_crafted_buffer(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    state = filled_buffer(LAPSampler(50)).state_dict()
    state["sampler"]["priority"] = RunsOnLoad(exec, touch_command(marker))
    path = tmp_path / "buffer.rlwk"
    save_like_main(state, path)
    with pytest.raises(rio.UnsafeFileError, match=r"buffer\.rlwk: refused.*builtins\.exec"):
        ReplayBuffer.load(path)
    assert not marker.exists()


def test_torchscript_payload_is_refused(tmp_path: Path) -> None:
    buf = BytesIO()
    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    payload = buf.getvalue()
    path = tmp_path / "script.pt"
    header = struct.pack("<4sIQ32s", b"RLWK", 1, len(payload), hashlib.sha256(payload).digest())
    path.write_bytes(header + payload)
    with (
        pytest.raises(rio.UnsafeFileError, match="TorchScript code"),
        pytest.warns(UserWarning, match="TorchScript archive"),
    ):
        rio.load(path)


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.pt"
    rio.save({"a": np.array([1, "x"], dtype=object)}, path)
    with pytest.raises(rio.UnsafeFileError) as err:
        rio.load(path)
    assert err.value.requested == ("numpy.dtypes.ObjectDType",)


def test_every_stateful_object_round_trips_bitwise(tmp_path: Path) -> None:
    state = stateful_payload()
    rio.save(state, tmp_path / "all.pt")
    assert_bitwise(state, rio.load(tmp_path / "all.pt"))


def test_an_old_format_file_of_main_loads_bitwise(tmp_path: Path) -> None:
    state = stateful_payload()
    save_like_main(state, tmp_path / "old.pt")
    assert_bitwise(state, rio.load(tmp_path / "old.pt"))


def test_a_file_written_under_numpy_1_names_numpy_core(tmp_path: Path) -> None:
    """numpy 1.x pickles arrays and scalars as numpy.core.multiarray.*, numpy 2 as numpy._core."""
    value = {"a": np.arange(4, dtype=np.float32), "s": np.int64(3)}
    buf = BytesIO()
    torch.save(value, buf)
    src = zipfile.ZipFile(BytesIO(buf.getvalue()))
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:  # the archive as numpy 1 writes it
        for info in src.infolist():
            blob = src.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray\n" in blob
                blob = blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
            dst.writestr(info, blob)
    payload = out.getvalue()
    header = struct.pack("<4sIQ32s", b"RLWK", 1, len(payload), hashlib.sha256(payload).digest())
    (tmp_path / "np1.pt").write_bytes(header + payload)
    assert_bitwise(rio.load(tmp_path / "np1.pt"), value)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True)
        | st.text(max_size=5)
        | st.binary(max_size=5)
        | hnp.arrays(st.sampled_from(ALLOWED_DTYPES), hnp.array_shapes(min_dims=0, max_side=3))
        | st.sampled_from(ALLOWED_DTYPES).map(lambda t: np.dtype(t).type(7)),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.tuples(inner, inner)
            | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_any_nest_of_allowed_types_round_trips_bitwise(tmp_path: Path, value: Any) -> None:
    rio.save(value, tmp_path / "v.pt")
    assert_bitwise(value, rio.load(tmp_path / "v.pt"))


def test_load_leaves_torchs_global_allowlist_as_it_was(tmp_path: Path) -> None:
    before = set(torch.serialization.get_safe_globals())
    rio.save({"a": np.zeros(3)}, tmp_path / "ok.pt")
    rio.load(tmp_path / "ok.pt")
    save_like_main({"x": RunsOnLoad(exec, "pass")}, tmp_path / "bad.pt")
    with pytest.raises(rio.UnsafeFileError):
        rio.load(tmp_path / "bad.pt")
    assert set(torch.serialization.get_safe_globals()) == before
    # numpy stays outside torch's own allowlist: a plain weights_only load still refuses it.
    with pytest.raises(Exception, match="numpy"):
        torch.load(BytesIO((tmp_path / "ok.pt").read_bytes()[48:]), weights_only=True)


def test_concurrent_loads_do_not_remove_each_others_allowlist(tmp_path: Path) -> None:
    # torch's allowlist is process-wide: without the lock in load, a thread leaving its
    # safe_globals block removes numpy from under another thread's unpickling (this fails).
    path = tmp_path / "np.pt"
    rio.save([np.arange(3.0) for _ in range(2000)], path)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                rio.load(path)
        except BaseException as e:  # collected and checked in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ----------------------------------------------------------------------------- conversion


def old_run_state() -> dict[str, Any]:
    """What an older writer could have stored: objects rather than plain data."""
    return {
        "spec": TransitionSpec.continuous((3,), 2),  # a dataclass object, not spec.to_dict()
        "run_dir": PurePosixPath("runs/mrq/seed0"),
        "status": http.HTTPStatus.OK,  # an IntEnum
        "tags": frozenset({"a"}),
        "w": torch.arange(3.0),
        "obs": np.ones((2, 3), np.float32),
    }


def test_an_old_file_with_other_types_names_the_command_that_converts_it(tmp_path: Path) -> None:
    path = tmp_path / "ckpt-000000000100.pt"
    save_like_main(old_run_state(), path)
    original = path.read_bytes()
    with pytest.raises(rio.UnsafeFileError) as err:
        rio.load(path)
    assert set(err.value.requested) == {
        "builtins.frozenset",
        "http.HTTPStatus",
        "pathlib.PurePosixPath",
        "rl_buffers.spec.TransitionSpec",
    }
    command = str(err.value).split("convert it once with: ")[1]
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-m"]
    done = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, check=True)
    assert "converted" in done.stdout

    back = rio.load(path)
    spec = TransitionSpec.continuous((3,), 2)
    assert back["spec"] == {f: getattr(spec, f) for f in back["spec"]}
    assert back["run_dir"] == "runs/mrq/seed0"
    assert back["status"] == 200
    assert type(back["status"]) is int
    assert back["tags"] == {"a"}
    assert_bitwise(back["w"], torch.arange(3.0))
    assert_bitwise(back["obs"], np.ones((2, 3), np.float32))
    assert (tmp_path / "ckpt-000000000100.pt.orig").read_bytes() == original


def test_convert_needs_trust_and_names_what_it_cannot_convert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.pt"
    save_like_main(old_run_state(), path)
    before = path.read_bytes()
    assert cli(["convert", str(path)]) == 2
    assert "--trust" in capsys.readouterr().err
    assert path.read_bytes() == before

    out = tmp_path / "new.pt"
    assert cli(["convert", "--trust", str(path), "--out", str(out)]) == 0
    assert path.read_bytes() == before
    assert rio.load(out)["run_dir"] == "runs/mrq/seed0"

    save_like_main({"args": argparse.Namespace(lr=0.1)}, path)
    assert cli(["convert", "--trust", str(path)]) == 1
    assert "file.args: a argparse.Namespace cannot be stored" in capsys.readouterr().err
    with pytest.raises(rio.ConversionError, match=r"argparse\.Namespace"):
        rio.convert_trusted(path)
