"""A policy trained on the Bisimulator's MDP treats the groups of the lending environment more
equally than one trained on the true reward, on a small budget (slow: about a minute)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rl_train.cli import main

BUDGET = [
    "--env", "lending",
    "--total-steps", "24576",
    "--loop.num-envs", "64",
    "--loop.num-steps", "32",
    "--fairness-episodes", "4",
    "--fairness-steps", "4000",
    "--eval-every", "24576",
    "--eval-episodes", "1",
    "--log-every", "4096",
    "--checkpoint-every", "24576",
    "--torch-threads", "1",
    "--device", "cpu",
    "--quiet",
    "--no-tensorboard",
]  # fmt: skip


def _fairness(root: Path, algo: str, seed: int) -> dict[str, float]:
    name = f"{algo}-{seed}"
    argv = ["fairbisim", "--root", str(root), "--name", name, "--algo", algo,
            "--seed", str(seed), *BUDGET]  # fmt: skip
    assert main(argv) == 0
    return json.loads(
        (root / "fairbisim" / "lending" / f"{seed}-{name}" / "fairness.json").read_text()
    )


@pytest.mark.slow
def test_bisimulator_narrows_the_gaps_of_ppo_on_lending(tmp_path: Path) -> None:
    seeds = (0, 1)
    ppo = [_fairness(tmp_path, "ppo", s) for s in seeds]
    bis = [_fairness(tmp_path, "bisimulator", s) for s in seeds]
    mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    # PPO on the true reward accepts by credit cluster alone, and the groups' clusters differ:
    # a clear acceptance gap. The Bisimulator's learned reward and observations close most of it.
    assert mean(ppo, "acceptance_gap") > 0.1
    assert mean(bis, "acceptance_gap") < 0.8 * mean(ppo, "acceptance_gap")
    assert mean(bis, "tpr_gap") < mean(ppo, "tpr_gap")
    # ... while the bank still profits (utility is the final cash; it starts at 10000).
    assert mean(bis, "utility") > 10_000
