"""Atomic writes and integrity-checked loads."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from rl_buffers import io as rio


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
