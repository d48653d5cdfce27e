"""The top-level command line."""

from __future__ import annotations

import pytest
from rl_train.cli import main


def test_help_lists_commands_but_not_developer_methods(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "plot" in out
    assert "sweep" in out
    assert "tiny-q" not in out
    assert main([]) == 2


def test_unknown_method_and_preset_exit_with_status_2(capsys):
    assert main(["nope"]) == 2
    assert "rl-train: unknown method 'nope'" in capsys.readouterr().err
    assert main(["tiny-q", "--preset", "nope"]) == 2
    assert "unknown preset 'nope' for tiny-q; presets: chain, long-chain" in capsys.readouterr().err


def test_method_help_shows_presets_and_the_chosen_presets_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tiny-q", "--preset", "long-chain", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "chain, long-chain" in out
    assert "rltrain/LongChain-v0" in out  # the preset's default env, not the class default
    for flag in ("--seed", "--resume", "--wandb", "--quiet", "--agent.lr", "--loop.batch-size"):
        assert flag in out


def test_a_method_without_its_extra_names_the_extra_to_install(capsys, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "mrq_drq" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["mrq-drq", "--total-steps", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "rl-train: rl-train mrq-drq needs the 'mrq-drq' extra (mrq_drq is not installed): "
        'pip install "rl-train[mrq-drq]"'
    ]
    assert main(["ot-ilfo"]) == 2  # ot-ilfo's extra brings MR.Q too
    assert 'pip install "rl-train[ot-ilfo]"' in capsys.readouterr().err
