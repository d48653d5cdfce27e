"""Checkpoint files: atomic writes, pruning, the latest pointer, fallback past corrupt files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from rl_buffers import io
from rl_runtime.checkpoint import CheckpointManager, NoGoodCheckpointError

LOG = logging.getLogger("test-checkpoint")


def _latest(m: CheckpointManager) -> tuple[Path, dict]:
    found = m.load_latest()
    assert found is not None
    return found


def _manager(tmp_path, keep=3):
    return CheckpointManager(tmp_path / "ckpt", keep=keep, log=LOG)


def test_save_points_latest_at_the_newest_and_keeps_k(tmp_path):
    m = _manager(tmp_path, keep=2)
    assert m.load_latest() is None
    for step in (10, 20, 30):
        m.save(step, {"w": torch.full((2,), float(step))})
    assert m.steps() == [20, 30]
    assert (m.directory / "latest").read_text() == "ckpt-000000000030.pt\n"
    path, state = _latest(m)
    assert path.name == "ckpt-000000000030.pt"
    assert torch.equal(state["w"], torch.full((2,), 30.0))
    assert not list(m.directory.glob("*.tmp"))


def test_truncated_newest_falls_back_to_the_previous_good_one(tmp_path, caplog):
    m = _manager(tmp_path)
    for step in (10, 20, 30):
        m.save(step, {"step": step, "w": torch.arange(1000)})
    newest = m.path_for(30)
    newest.write_bytes(newest.read_bytes()[:-100])
    with pytest.raises(io.CorruptFileError, match="truncated"):
        io.load(newest)

    with caplog.at_level(logging.WARNING, logger="test-checkpoint"):
        path, state = _latest(m)
    assert path == m.path_for(20)
    assert state["step"] == 20
    assert "checkpoint ckpt-000000000030.pt is corrupt" in caplog.text
    assert "falling back to ckpt-000000000020.pt" in caplog.text
    assert (m.directory / "ckpt-000000000030.pt.corrupt").exists()
    assert m.steps() == [10, 20]
    assert (m.directory / "latest").read_text() == "ckpt-000000000020.pt\n"


def test_every_checkpoint_corrupt_is_an_error_not_a_silent_restart(tmp_path):
    m = _manager(tmp_path)
    m.save(10, {"x": 1})
    m.path_for(10).write_bytes(b"RLWK garbage")
    with pytest.raises(NoGoodCheckpointError, match="every checkpoint"):
        m.load_latest()


def test_leftover_temporary_files_are_removed_and_ignored(tmp_path):
    m = _manager(tmp_path)
    m.save(10, {"x": 1})
    (m.directory / ".ckpt-000000000020.pt.abc.tmp").write_bytes(b"partial")
    path, _ = _latest(m)
    assert path == m.path_for(10)
    assert not list(m.directory.glob("*.tmp"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="keep must be >= 1"):
        CheckpointManager(Path("x"), keep=0, log=LOG)
