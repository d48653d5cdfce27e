"""Checkpoint files: atomic writes, pruning, the latest pointer, fallback past corrupt files, and
the read-only reader of another run."""

from __future__ import annotations

import fcntl
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rl_buffers import io
from rl_runtime.checkpoint import (
    CHECKPOINT_DIR,
    CheckpointManager,
    NoGoodCheckpointError,
    read_latest_checkpoint,
)

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


# ----------------------------------------------------------------------------- reading another run

# A real run (open_run: config.json, run.log, metrics.jsonl, its lock held) in another process
# that writes checkpoints 100 and 200, a corrupt 300 (bytes flipped on disk), and then stops in
# the middle of writing 400: half its bytes are in the temporary file. It resumes on a line on
# stdin, finishes 400 and its `latest` pointer, and keeps the run open until stdin closes.
_WRITER = r"""
import io as bytes_io, os, sys
from pathlib import Path
import torch
from rl_buffers import io
from rl_runtime.config import RunConfig
from rl_runtime.run import open_run
from rl_runtime.testing import TinyQConfig

root = Path(sys.argv[1])
cfg = TinyQConfig(run=RunConfig(root=root, name="writer", tensorboard=False, quiet=True, device="cpu", keep_checkpoints=10))
with open_run("tiny-q", cfg) as run:
    for step in (100, 200, 300):
        run.save_checkpoint(step, {"agent": {"w": torch.full((1000,), float(step))}})
    bad = run.checkpoints.path_for(300)
    data = bytearray(bad.read_bytes())
    data[-10] ^= 0xFF  # a bit flip after the checksum was written
    bad.write_bytes(bytes(data))

    # Checkpoint 400 the way CheckpointManager.save writes it, paused half way.
    scratch = root / "scratch.pt"
    io.save({"format": 1, "step": 400, "agent": {"w": torch.full((1000,), 400.0)}}, scratch)
    payload = scratch.read_bytes()
    with io.atomic_write(run.checkpoints.path_for(400), "wb") as f:
        f.write(payload[: len(payload) // 2])
        f.flush()
        os.fsync(f.fileno())
        print(run.dir, flush=True)  # mid-write: the reader's turn
        sys.stdin.readline()
        f.write(payload[len(payload) // 2 :])
    with io.atomic_write(run.checkpoints.directory / "latest", "w") as f:
        f.write(run.checkpoints.path_for(400).name + "\n")
    print("written", flush=True)
    sys.stdin.readline()
"""


def _snapshot(directory: Path) -> dict[str, tuple[bool, int, int]]:
    """Every entry under ``directory`` (itself included): is-dir, size and mtime."""
    paths = [directory, *sorted(directory.rglob("*"))]
    out = {}
    for p in paths:
        st = p.stat()
        out[str(p.relative_to(directory))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def _run_is_locked(run_dir: Path) -> bool:
    with (run_dir / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_reading_a_run_that_is_writing_a_checkpoint_changes_nothing(tmp_path, caplog):
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None
    assert writer.stdout is not None
    try:
        line = writer.stdout.readline()
        assert line, f"the writer failed:\n{writer.stderr.read() if writer.stderr else ''}"
        run_dir = Path(line.strip())
        ckpt = run_dir / CHECKPOINT_DIR
        names = {p.name for p in ckpt.iterdir()}
        # The scene: two good checkpoints, a corrupt newer one, a write in progress, the pointer.
        (tmp,) = [n for n in names if n.startswith(".ckpt-000000000400.pt.") and n.endswith(".tmp")]
        assert names == {tmp, "latest", *(f"ckpt-{s:012d}.pt" for s in (100, 200, 300))}
        assert _run_is_locked(run_dir)

        before = _snapshot(run_dir)
        with caplog.at_level(logging.WARNING, logger="test-checkpoint"):
            found = read_latest_checkpoint(run_dir, log=LOG)
        after = _snapshot(run_dir)

        # Nothing in the run's directory was created, deleted, renamed, resized or touched.
        assert after == before
        assert _run_is_locked(run_dir)  # still the writer's
        # The newest good checkpoint: 300 is corrupt (skipped, named), 400 is not written yet.
        assert (found.step, found.path) == (200, ckpt / "ckpt-000000000200.pt")
        assert found.state["step"] == 200
        assert torch.equal(found.state["agent"]["w"], torch.full((1000,), 200.0))
        assert "skipping corrupt checkpoint" in caplog.text
        assert "ckpt-000000000300.pt" in caplog.text

        # The writer finishes the checkpoint it was writing, and the reader then gets it.
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "written"
        before = _snapshot(run_dir)
        again = read_latest_checkpoint(run_dir, log=LOG)
        assert _snapshot(run_dir) == before
        assert again.step == 400
        assert torch.equal(again.state["agent"]["w"], torch.full((1000,), 400.0))
    finally:
        writer.stdin.close()
        assert writer.wait(timeout=60) == 0, writer.stderr.read() if writer.stderr else ""


def test_reader_takes_the_newest_good_file_even_if_latest_lags(tmp_path):
    m = CheckpointManager(tmp_path / "run" / CHECKPOINT_DIR, keep=5, log=LOG)
    m.save(100, {"step": 100})
    m.save(200, {"step": 200})
    # Killed between the checkpoint's rename and the pointer's: `latest` still names 100.
    (m.directory / "latest").write_text("ckpt-000000000100.pt\n")
    found = read_latest_checkpoint(tmp_path / "run", log=LOG)
    assert (found.step, found.state) == (200, {"step": 200})


def test_reader_lists_again_when_the_run_prunes_what_it_listed(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    m = CheckpointManager(run_dir / CHECKPOINT_DIR, keep=1, log=LOG)
    m.save(100, {"step": 100})
    real_load = io.load
    calls = []

    def load_while_the_run_saves(path):
        calls.append(Path(path).name)
        if len(calls) == 1:  # the run saves 200 and prunes 100 right after the listing
            m.save(200, {"step": 200})
        return real_load(path)

    monkeypatch.setattr("rl_runtime.checkpoint.io.load", load_while_the_run_saves)
    found = read_latest_checkpoint(run_dir, log=LOG)
    assert calls == ["ckpt-000000000100.pt", "ckpt-000000000200.pt"]
    assert found.step == 200


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        read_latest_checkpoint(tmp_path, log=LOG)
    m = CheckpointManager(tmp_path / CHECKPOINT_DIR, keep=3, log=LOG)
    m.save(10, {"x": 1})
    m.path_for(10).write_bytes(b"RLWK garbage")
    with pytest.raises(NoGoodCheckpointError, match="every checkpoint"):
        read_latest_checkpoint(tmp_path, log=LOG)
    assert m.path_for(10).exists()  # skipped, not renamed
    io.save([1, 2], m.path_for(20))
    with pytest.raises(TypeError, match="expected a dict checkpoint"):
        read_latest_checkpoint(tmp_path, log=LOG)
