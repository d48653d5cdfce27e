"""Which problems a batch holds: task probabilities in, TRL rows out, seeded and resumable.

A :class:`TaskSampler` owns one ``random.Random``: each training prompt's task is drawn from the
arm's probabilities (uniform, or gradient-proportional with a floor), then the problem from
that task; each prompt becomes ``num_generations`` consecutive rows (the group TRL normalises).
Its state (the generator's) is part of a run's checkpoint.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from gradimbalance.tasks import Problem, Task

__all__ = ["TaskSampler", "rows_of"]


def rows_of(problems: Sequence[Problem], num_generations: int) -> list[dict[str, Any]]:
    """TRL rows: ``num_generations`` consecutive copies of each problem's
    ``{"prompt", "task", "problem"}``."""
    rows: list[dict[str, Any]] = []
    for p in problems:
        row = {"prompt": p.prompt, "task": p.task, "problem": p.to_json()}
        rows.extend(dict(row) for _ in range(num_generations))
    return rows


class TaskSampler:
    """Draws problems of the tasks from one seeded generator.

    Args:
        tasks: Task name -> task, in the order probabilities are given.
        seed: Seed of the generator.
    """

    def __init__(self, tasks: Mapping[str, Task], seed: int) -> None:
        self.tasks = dict(tasks)
        self.names = tuple(tasks)
        self.rng = random.Random(seed)

    def problems(self, count: int, probs: Sequence[float]) -> list[Problem]:
        """``count`` problems, each of a task drawn from ``probs``."""
        if len(probs) != len(self.names):
            raise ValueError(f"{len(probs)} probabilities for {len(self.names)} tasks")
        names = self.rng.choices(self.names, weights=list(probs), k=count)
        return [self.tasks[name].sample(self.rng) for name in names]

    def per_task(self, count: int) -> list[Problem]:
        """``count`` problems of every task, task by task (a measurement batch)."""
        return [self.tasks[name].sample(self.rng) for name in self.names for _ in range(count)]

    def state_dict(self) -> dict[str, Any]:
        """The generator's state as tensors (checkpoint-safe)."""
        version, internal, gauss = self.rng.getstate()
        return {
            "version": version,
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        internal = tuple(int(x) for x in state["internal"].tolist())
        self.rng.setstate((int(state["version"]), internal, state["gauss"]))
