"""The runtime's expected errors are UsageErrors that name the flag and the fix; a fresh run that
fails before logging anything leaves no directory; a lost history is an error, not a restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from rl_runtime.config import RunConfig
from rl_runtime.errors import UsageError
from rl_runtime.run import (
    CheckpointsLostError,
    env_errors,
    make_env_checked,
    open_run,
    refuse_module_env_id,
    resolve_device,
)
from rl_runtime.testing import CHAIN_ID, TinyQConfig, train


def test_unknown_env_ids_name_the_callers_flag() -> None:
    with pytest.raises(UsageError, match=r"^--expert-env Nope-v0: Environment `Nope` doesn't"):
        make_env_checked("Nope-v0", flag="--expert-env")
    with pytest.raises(UsageError, match=r"^--env nowhere/X-v0: Namespace nowhere not found"):
        make_env_checked("nowhere/X-v0")
    with pytest.raises(UsageError, match=r"^--env CartPole-v9: Environment version `v9`"):
        make_env_checked("CartPole-v9")
    with pytest.raises(
        UsageError, match=r"^--env no_such_module_x:X-v0: no module named 'no_such_module_x'"
    ):
        make_env_checked("no_such_module_x:X-v0")
    with make_env_checked(CHAIN_ID) as env:
        assert isinstance(env.action_space, gym.spaces.Discrete)


def test_env_errors_lets_other_errors_through() -> None:
    with pytest.raises(ZeroDivisionError), env_errors("X-v0"):
        raise ZeroDivisionError
    # A module that exists but fails on a missing dependency of its own is not "no such module".
    with pytest.raises(ModuleNotFoundError), env_errors("pkg:X-v0"):
        raise ModuleNotFoundError("No module named 'dep'", name="dep")


def test_device_errors_name_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match=r"^--device cuda:0: CUDA is not available .*--device cpu"):
        resolve_device("cuda:0")
    with pytest.raises(UsageError, match=r"^--device tpu: not a torch device"):
        resolve_device("tpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_module_env_ids_from_a_file_are_refused(tmp_path: Path) -> None:
    refuse_module_env_id("rltrain/Chain-v0", tmp_path / "config.json")  # no module: fine
    with pytest.raises(UsageError, match=r"config\.json: env id 'os:X-v0' names a module"):
        refuse_module_env_id("os:X-v0", tmp_path / "config.json")


def _cfg(root: Path, **run: object) -> TinyQConfig:
    base = RunConfig(
        total_steps=100, eval_every=100, eval_episodes=1, log_every=50, checkpoint_every=50,
        root=root, name="a", tensorboard=False, quiet=True, device="cpu",
    )  # fmt: skip
    cfg = TinyQConfig()
    return dataclasses.replace(
        cfg,
        loop=dataclasses.replace(cfg.loop, random_steps=20, learning_starts=20),
        run=dataclasses.replace(base, **run),  # type: ignore[arg-type]
    )


def _failing_run(cfg: TinyQConfig, *, log: bool) -> None:
    """Open the run, log an entry if asked, then fail with the run directory as the message."""
    with open_run("tiny-q", cfg) as run:
        assert (run.dir / "config.json").is_file()
        if log:
            run.logger.log(0, {"eval/return": 1.0})
        raise RuntimeError(str(run.dir))


def test_a_fresh_run_that_fails_before_logging_leaves_no_directory(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with pytest.raises(RuntimeError) as failed:
        _failing_run(cfg, log=False)
    run_dir = Path(str(failed.value))
    assert not run_dir.exists()
    # A run that logged something keeps its directory, whatever stops it afterwards.
    with pytest.raises(RuntimeError):
        _failing_run(cfg, log=True)
    assert (run_dir / "metrics.jsonl").read_text().startswith('{"step": 0')
    # And a reopened run is never removed, even if it fails before logging anything.
    (run_dir / "metrics.jsonl").write_text("")
    with pytest.raises(RuntimeError):
        _failing_run(cfg, log=False)
    assert (run_dir / "config.json").is_file()
    assert "run failed: RuntimeError" in (run_dir / "run.log").read_text()


def test_lost_checkpoints_stop_the_library_call_too(tmp_path: Path) -> None:
    run_dir = train(_cfg(tmp_path))
    for ckpt in (run_dir / "checkpoints").glob("ckpt-*.pt"):
        ckpt.write_bytes(b"garbage")
    for _ in range(2):
        with pytest.raises(CheckpointsLostError, match="--restart"):
            open_run("tiny-q", _cfg(tmp_path))
    assert not list(run_dir.glob("previous-*"))
    with open_run("tiny-q", _cfg(tmp_path, restart=True)) as run:
        assert run.restored is None
        (aside,) = run_dir.glob("previous-*")
        assert sorted(p.name for p in (aside / "checkpoints").iterdir()) == [
            "ckpt-000000000050.pt.corrupt",
            "ckpt-000000000100.pt.corrupt",
            "latest",
        ]
        assert not (run_dir / "checkpoints").exists()
        assert (run_dir / "metrics.jsonl").read_text() == ""
