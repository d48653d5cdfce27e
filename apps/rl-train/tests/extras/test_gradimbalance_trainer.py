"""`rl-train gradimbalance`: a short run writes the measurements and plots, presets parse, bad
input is one line, and a killed run resumes exactly."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from rl_buffers import io
from rl_train.cli import main
from rl_train.method import UsageError
from rl_train.methods.gradimbalance import METHOD, GradImbalanceTrainConfig

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

TASKS = "arithmetic+sorting+reversal"
# Test-sized: a 1-layer model, a 6-step warm start, 3 prompts x 4 completions per step, a
# measurement every 3 steps with m = 2, gains over 2 steps, checkpoints every 3 steps.
SHORT = [
    "--env", TASKS,
    "--net.hidden-size", "32", "--net.intermediate-size", "64", "--net.num-layers", "1",
    "--net.num-heads", "2", "--net.max-positions", "32",
    "--sft.max-steps", "6", "--sft.eval-every", "3", "--sft.eval-prompts", "2",
    "--sft.batch-size", "16",
    "--grpo.prompts-per-step", "3", "--grpo.num-generations", "4",
    "--grpo.max-completion-length", "6",
    "--measure.every", "3", "--measure.microbatches", "2", "--measure.groups-per-microbatch", "1",
    "--measure.gain-window", "2",
    "--checkpoint-every", "3", "--keep-checkpoints", "10", "--log-every", "1",
    "--torch-threads", "1", "--device", "cpu", "--quiet", "--no-tensorboard",
]  # fmt: skip


def _args(tmp: Path, name: str, steps: int, *extra: str) -> list[str]:
    return [
        "--root",
        str(tmp / "runs"),
        "--name",
        name,
        "--total-steps",
        str(steps),
        *SHORT,
        *extra,
    ]


def _train(tmp: Path, name: str, steps: int, *extra: str) -> Path:
    return METHOD.train(METHOD.parse(_args(tmp, name, steps, *extra)))


def _lines(run: Path) -> list[dict[str, float]]:
    entries = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in e.items() if not k.startswith("time/")} for e in entries]


def test_short_run_writes_measurements_gains_and_plots(tmp_path: Path) -> None:
    run = _train(tmp_path, "short", 9)
    lines = _lines(run)
    assert "train/sft_mean_accuracy" in lines[0]
    assert lines[0]["step"] == 0
    measured = [e["step"] for e in lines if "eval/task_prob/sorting" in e]
    assert measured == [0, 3, 6]
    for task in TASKS.split("+"):
        entry = next(e for e in lines if "eval/task_prob/sorting" in e)
        for key in ("grad_sq_norm", "grad_sq_norm_plain", "abs_advantage", "zero_adv_groups",
                    "response_length", "reward"):  # fmt: skip
            assert f"eval/{key}/{task}" in entry, (key, task)
    trained = [e["step"] for e in lines if "train/loss" in e]
    assert trained == list(range(9))
    # Gains centred on measured steps 3 and 6 (>= s = 2), logged s steps later.
    gains = [
        (e["step"], e["train/gain_center_step"]) for e in lines if "train/gain_center_step" in e
    ]
    assert gains == [(5, 3.0), (8, 6.0)]
    assert (run / "plots" / "measurements.png").stat().st_size > 10_000
    assert (run / "warmstart" / "config.json").is_file()
    state = io.load(run / "checkpoints" / "ckpt-000000000009.pt")
    assert state["runner"]["rewards"].shape == (9, 3)
    # The warm-started model is a --model for another run, through the same code.
    other = _train(
        tmp_path, "user-model", 3, "--model", str(run / "warmstart"), "--sft.max-steps", "0"
    )
    assert [e["step"] for e in _lines(other) if "train/loss" in e] == [0, 1, 2]


def test_presets_parse_and_bad_options_are_one_line(tmp_path: Path, capsys) -> None:
    for name in METHOD.presets:
        assert isinstance(METHOD.parse(["--preset", name]), GradImbalanceTrainConfig)
    assert METHOD.parse(["--sampling.arm", "gradient"]).sampling.arm == "gradient"
    # A path that cannot be a saved model: one line, exit 2, before any run directory exists.
    cases = [
        (["--model", str(tmp_path / "nope")], "--model .*nope: no such directory"),
        (["--model", str(Path(__file__))], "not a directory"),
        (["--model", str(tmp_path)], "no config.json"),
    ]
    for argv, message in cases:
        code = main(["gradimbalance", "--root", str(tmp_path / "runs"), *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2, argv
        assert len(err.splitlines()) == 1, err
        assert err.startswith("rl-train: "), err
        assert re.search(message, err), (message, err)
    # Values the config refuses: exit 2 with the flag named (tyro's error box, as every method).
    for argv, message in [
        (["--env", "sorting+chess"], "unknown task 'chess'"),
        (["--sampling.floor", "0.5"], "impossible for 5 tasks"),
        (["--measure.microbatches", "1"], "--measure.microbatches"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["gradimbalance", "--root", str(tmp_path / "runs"), *argv])
        assert exit_info.value.code == 2
        assert message in " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert not (tmp_path / "runs").exists()  # nothing left behind
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "qwen2"')
    with pytest.raises(UsageError, match=r"--model .*: cannot load"):
        _train(tmp_path, "bad", 3, "--model", str(tmp_path / "bad"))


def test_resume_mid_run_equals_an_uninterrupted_run(tmp_path: Path, same_state) -> None:
    straight = _train(tmp_path, "straight", 8)
    part = _train(tmp_path, "part", 5)
    resumed = _train(tmp_path, "part", 8, "--allow-config-change")
    assert resumed == part
    a = io.load(straight / "checkpoints" / "ckpt-000000000008.pt")
    b = io.load(part / "checkpoints" / "ckpt-000000000008.pt")
    same_state(a["runner"], b["runner"], "runner")
    same_state(a["rng"], b["rng"], "rng")
    assert _lines(straight) == _lines(part)


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, same_state, kill_at_checkpoint
) -> None:
    args = ["gradimbalance", *_args(tmp_path, "killed", 6)]
    run = tmp_path / "runs" / "gradimbalance" / TASKS / "0-killed"
    kill_at_checkpoint([sys.executable, "-m", "rl_train", *args], run / "checkpoints" / "latest",
                       tmp_path / "child.log")  # fmt: skip
    assert not (run / "checkpoints" / "ckpt-000000000006.pt").exists(), "killed after it finished"
    assert main(["gradimbalance", "--resume", str(run), "--quiet"]) == 0
    reference = _train(tmp_path, "reference", 6)
    a = io.load(run / "checkpoints" / "ckpt-000000000006.pt")
    b = io.load(reference / "checkpoints" / "ckpt-000000000006.pt")
    same_state(a["runner"], b["runner"], "runner")
    assert _lines(run) == _lines(reference)
    assert "resuming from ckpt-" in (run / "run.log").read_text()
