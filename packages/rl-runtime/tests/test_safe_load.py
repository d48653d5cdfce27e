"""Checkpoints are data, never code: resume and the checkpoint readers refuse a file that asks
for anything outside rl_buffers.io's allowlist (nothing in it runs), and every piece of state the
runtime checkpoints still round-trips bit for bit, from files of today's and of main's writer."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import random
import struct
from io import BytesIO
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from rl_buffers import io
from rl_buffers.testing import assert_bitwise
from rl_runtime.checkpoint import CheckpointManager, read_latest_checkpoint
from rl_runtime.config import RunConfig
from rl_runtime.run import open_run
from rl_runtime.seeding import (
    capture_rng,
    restore_rng,
    seed_everything,
    set_space_rng_state,
    space_rng_state,
)
from rl_runtime.testing import TinyQConfig, train

LOG = logging.getLogger("test-safe-load")


def save_like_main(obj: Any, path: Path) -> None:
    """The writer of ``rl_buffers.io.save`` on main (1f13e63): a 48-byte header (magic, format
    1, payload length, SHA-256) and a ``torch.save`` payload. Anyone can write this."""
    buf = BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    header = struct.pack("<4sIQ32s", b"RLWK", 1, len(payload), hashlib.sha256(payload).digest())
    path.write_bytes(header + payload)


class RunsOnLoad:
    """Unpickling this calls ``exec(code)``: the shape of a malicious payload."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return exec, (self.code,)


def creates(marker: Path) -> RunsOnLoad:
    return RunsOnLoad(f"open({str(marker)!r}, 'w').close()")


def tiny_cfg(root: Path, **run: Any) -> TinyQConfig:
    base = RunConfig(
        total_steps=240,
        eval_every=1_000,
        eval_episodes=1,
        log_every=60,
        checkpoint_every=120,
        root=root,
        name="a",
        tensorboard=False,
        quiet=True,
    )
    cfg = TinyQConfig()
    return dataclasses.replace(
        cfg,
        loop=dataclasses.replace(cfg.loop, random_steps=50, learning_starts=50),
        run=dataclasses.replace(base, **run),
    )


@pytest.fixture
def recorded_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict[int, dict[str, Any]]]:
    """A tiny-q run with two checkpoints, and a deep copy of each state as it was handed to
    ``io.save`` (before any file existed)."""
    states: dict[int, dict[str, Any]] = {}
    real_save = io.save

    def recording_save(obj: Any, path: Any) -> None:
        states[int(obj["step"])] = copy.deepcopy(obj)
        real_save(obj, path)

    monkeypatch.setattr(io, "save", recording_save)
    run_dir = train(tiny_cfg(tmp_path))
    monkeypatch.setattr(io, "save", real_save)
    assert sorted(states) == [120, 240]
    return run_dir, states


# ----------------------------------------------------------------------------- refused


def test_resume_refuses_a_crafted_checkpoint_and_runs_nothing(
    recorded_run: tuple[Path, dict[int, dict[str, Any]]], tmp_path: Path
) -> None:
    run_dir, states = recorded_run
    marker = tmp_path / "ran"
    newest = run_dir / "checkpoints" / "ckpt-000000000240.pt"
    crafted = {**states[240], "rng": {**states[240]["rng"], "python": creates(marker)}}
    save_like_main(crafted, newest)  # valid header and checksum: it passes the integrity check
    before = sorted(p.name for p in newest.parent.iterdir())

    with pytest.raises(io.UnsafeFileError, match=r"ckpt-000000000240\.pt: refused") as err:
        open_run("tiny-q", tiny_cfg(tmp_path, resume=run_dir))
    assert err.value.requested == ("builtins.exec",)
    assert "nothing in the file was run" in str(err.value)
    assert not marker.exists()
    # Not taken for corruption: the file stays where it is (no *.corrupt, no silent fallback to
    # the older checkpoint), and the run directory is released for the next attempt.
    assert sorted(p.name for p in newest.parent.iterdir()) == before
    with pytest.raises(io.UnsafeFileError):
        open_run("tiny-q", tiny_cfg(tmp_path, resume=run_dir))


def test_checkpoint_readers_refuse_a_crafted_checkpoint(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    manager = CheckpointManager(tmp_path / "run" / "checkpoints", keep=3, log=LOG)
    manager.save(10, {"step": 10, "w": torch.ones(2)})
    save_like_main({"step": 20, "w": creates(marker)}, manager.path_for(20))

    with pytest.raises(io.UnsafeFileError, match=r"builtins\.exec"):
        manager.load_latest()
    with pytest.raises(io.UnsafeFileError, match=r"builtins\.exec"):  # --expert, driftql-data
        read_latest_checkpoint(tmp_path / "run", log=LOG)
    assert not marker.exists()
    assert manager.steps() == [10, 20]
    assert not list(manager.directory.glob("*.corrupt"))


# ----------------------------------------------------------------------------- still loads


def test_every_checkpointed_state_of_a_run_round_trips_bitwise(
    recorded_run: tuple[Path, dict[int, dict[str, Any]]], tmp_path: Path
) -> None:
    run_dir, states = recorded_run
    loaded = io.load(run_dir / "checkpoints" / "ckpt-000000000240.pt")
    assert_bitwise(states[240], loaded)
    # What the run holds: config, global RNGs (python, numpy, torch), the agent's networks,
    # optimiser and generator, the buffer's storage, sampler and generator, counters.
    assert {"config", "rng", "agent", "buffer"} <= set(loaded)
    with open_run("tiny-q", tiny_cfg(tmp_path, resume=run_dir)) as run:
        assert run.restored is not None
        assert_bitwise(states[240], run.restored)


def test_an_old_format_checkpoint_of_main_resumes(
    recorded_run: tuple[Path, dict[int, dict[str, Any]]], tmp_path: Path
) -> None:
    run_dir, states = recorded_run
    newest = run_dir / "checkpoints" / "ckpt-000000000240.pt"
    save_like_main(states[240], newest)
    manager = CheckpointManager(newest.parent, keep=2, log=LOG)
    found = manager.load_latest()
    assert found is not None
    assert found[0] == newest
    assert_bitwise(states[240], found[1])
    assert_bitwise(states[240], read_latest_checkpoint(run_dir, log=LOG).state)


def test_rng_states_round_trip_bitwise_and_continue_the_streams(tmp_path: Path) -> None:
    env = gym.make("CartPole-v1")
    seed_everything(3, env)
    random.random()
    np.random.normal(size=2)  # noqa: NPY002 - the legacy global RNG is part of the checkpoint
    torch.rand(3)
    env.action_space.sample()
    dict_space = gym.spaces.Dict({"a": gym.spaces.Discrete(4), "b": env.observation_space})
    dict_space.seed(5)
    dict_space.sample()
    state = {
        "rng": capture_rng(),
        "action_space": space_rng_state(env.action_space),
        "observation_space": space_rng_state(env.observation_space),
        "dict_space": space_rng_state(dict_space),
    }
    expected = (
        random.random(),
        np.random.normal(size=3),  # noqa: NPY002
        torch.rand(3),
        env.action_space.sample(),
        dict_space.sample()["a"],
    )

    io.save(state, tmp_path / "rng.pt")
    back = io.load(tmp_path / "rng.pt")
    assert_bitwise(state, back)
    seed_everything(99, env)  # move every stream elsewhere, then restore from the file
    dict_space.seed(99)
    restore_rng(back["rng"])
    set_space_rng_state(env.action_space, back["action_space"])
    set_space_rng_state(dict_space, back["dict_space"])
    again = (
        random.random(),
        np.random.normal(size=3),  # noqa: NPY002
        torch.rand(3),
        env.action_space.sample(),
        dict_space.sample()["a"],
    )
    assert_bitwise(expected, again)
    env.close()


def test_the_refusal_is_not_a_corruption() -> None:
    """Callers that fall back past corrupt files must not fall back past refused ones."""
    assert not issubclass(io.UnsafeFileError, io.CorruptFileError)
    assert issubclass(io.UnsafeFileError, ValueError)  # the CLIs report ValueErrors by name
