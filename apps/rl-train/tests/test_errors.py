"""Every expected error is one line on stderr naming the option (the flag) and the fix, with
exit status 2, and no traceback; unexpected ones still raise. Files a run reads are data, never
code: a crafted checkpoint or an env id from config.json runs and imports nothing."""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import torch
from rl_buffers import io
from rl_train.cli import main


def _one_line(args: list[str], capsys) -> str:
    """Run a command that must fail with status 2 and exactly one line on stderr."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("rl-train: ")
    return err.removeprefix("rl-train: ").rstrip("\n")


def test_an_unknown_env_id_names_env(tiny_args, tmp_path, capsys):
    err = _one_line(tiny_args("a", "--env", "NoSuchEnv-v0"), capsys)
    assert err.startswith("--env NoSuchEnv-v0: Environment `NoSuchEnv` doesn't exist.")
    err = _one_line(tiny_args("a", "--env", "nowhere/Chain-v0"), capsys)
    assert err == (
        "--env nowhere/Chain-v0: Namespace nowhere not found. Have you installed the proper "
        "package for nowhere? (gymnasium.pprint_registry() lists the registered ids)"
    )
    err = _one_line(tiny_args("a", "--env", "rltrain/Chain-v7"), capsys)
    assert err.startswith("--env rltrain/Chain-v7: Environment version `v7` for environment")
    assert not list(tmp_path.glob("tiny-q/*/0-a"))  # none left a run directory behind


def test_device_errors_name_device_and_what_to_use(tiny_args, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _one_line(tiny_args("a", "--device", "cuda"), capsys) == (
        "--device cuda: CUDA is not available on this machine; use --device cpu (or auto)"
    )
    assert _one_line(tiny_args("a", "--device", "gpu"), capsys) == (
        "--device gpu: not a torch device; use auto, cpu, cuda, cuda:N or mps"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _one_line(tiny_args("a", "--device", "cuda:2"), capsys) == (
        "--device cuda:2: this machine has 2 CUDA device(s), cuda:0 to cuda:1"
    )
    assert not (tmp_path / "tiny-q").exists()  # refused before any directory was made


def test_a_bug_is_still_a_traceback(tiny_args, monkeypatch):
    from rl_runtime.testing import TinyQAgent

    def broken(self, batch):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(TinyQAgent, "update", broken)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        main(tiny_args("a"))


class _RunsOnLoad:
    """Unpickling this calls ``exec(code)``: the shape of a malicious payload."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return exec, (self.code,)


def _save_unchecked(obj: Any, path: Path) -> None:
    """What anyone can write: rl_buffers.io's header (magic, format 1, payload length, SHA-256)
    over a ``torch.save`` payload, so the file passes the integrity check."""
    buf = BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    header = struct.pack("<4sIQ32s", b"RLWK", 1, len(payload), hashlib.sha256(payload).digest())
    path.write_bytes(header + payload)


def test_resuming_a_crafted_checkpoint_runs_nothing_and_says_so_in_one_line(
    tiny_args, run_dir, tmp_path, capsys
):
    assert main(tiny_args("a", "--total-steps", "100")) == 0
    run = run_dir("a")
    ckpt = run / "checkpoints" / "ckpt-000000000100.pt"
    state = io.load(ckpt)
    marker = tmp_path / "it-ran"
    crafted = {
        **state,
        "rng": {**state["rng"], "python": _RunsOnLoad(f"open({str(marker)!r}, 'w')")},
    }
    _save_unchecked(crafted, ckpt)

    err = _one_line(["tiny-q", "--resume", str(run), "--quiet"], capsys)
    assert err == str(io.UnsafeFileError(ckpt, ("builtins.exec",)))
    assert err.startswith(f"{ckpt}: refused: the file asks for builtins.exec")
    assert not marker.exists()
    assert ckpt.is_file()  # refused, not taken for corruption: nothing renamed, no fallback
    assert not list(run.glob("checkpoints/*.corrupt"))


def test_an_env_id_from_config_json_may_not_import_a_module(
    tiny_args, run_dir, tmp_path, monkeypatch, capsys
):
    assert main(tiny_args("a", "--total-steps", "100")) == 0
    run = run_dir("a")
    marker = tmp_path / "imported"
    (tmp_path / "sneaky_envs.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sneaky_envs", raising=False)
    info = json.loads((run / "config.json").read_text())
    info["env"] = info["config"]["env"] = "sneaky_envs:Chain-v0"
    (run / "config.json").write_text(json.dumps(info))

    err = _one_line(["tiny-q", "--resume", str(run), "--quiet"], capsys)
    assert err == (
        f"{run / 'config.json'}: env id 'sneaky_envs:Chain-v0' names a module to import "
        "(module:Env form), and an id read from a run's files may not import modules; if you "
        "started this run yourself, resume it with --env sneaky_envs:Chain-v0 given on the "
        "command line"
    )
    assert not marker.exists()
    assert "sneaky_envs" not in sys.modules
    # Given on the command line, the id is the user's own: the module is imported (it
    # registers no Chain-v0, which is then one line naming --env).
    err = _one_line(["tiny-q", "--resume", str(run), "--env", "sneaky_envs:Chain-v0"], capsys)
    assert err.startswith("--env sneaky_envs:Chain-v0: Environment `Chain` doesn't exist.")
    assert marker.exists()
    sys.modules.pop("sneaky_envs", None)
