"""GRPO steps through TRL, per-task measurements, task sampling arms, resumable state.

:class:`GradImbalanceRunner` drives a :class:`~gradimbalance.trainer.MeasuredGRPOTrainer` one
optimizer step at a time: it draws the step's prompts from the sampling arm, hands them to TRL's
``training_step`` (generation, checker rewards, group-normalised advantages, the clipped
token-level loss and its backward pass are TRL's), clips and applies the update with the
optimizer TRL built, and records each task's training reward. Every ``measure.every`` steps
:meth:`measure` generates a batch of its own (the same number of groups for every task, so a
task the arm rarely draws is still measured), estimates each task's squared gradient norm by
the cross-product estimator and, under the ``gradient`` arm, sets the task probabilities from
it. Its state (model, optimizer, scheduler, sampler, probabilities, reward history) is one
checkpoint-safe dict.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch

from gradimbalance.config import GRPOSettings, MeasureConfig, SamplingConfig
from gradimbalance.measures import gradient_proportional_probs, learning_gain
from gradimbalance.sampler import TaskSampler, rows_of
from gradimbalance.trainer import MeasuredGRPOTrainer, task_batch_stats

__all__ = ["GradImbalanceRunner", "RunnerSettings"]

_TRL_METRICS = {
    "entropy": "train/entropy",
    "kl": "train/kl",
    "clip_ratio/region_mean": "train/clip_fraction",
    "frac_reward_zero_std": "train/zero_std_fraction",
}
"""TRL's per-step metrics worth keeping -> their names in metrics.jsonl."""


@dataclass(frozen=True)
class RunnerSettings:
    """What the runner reads from the method's config."""

    grpo: GRPOSettings
    measure: MeasureConfig
    sampling: SamplingConfig


class GradImbalanceRunner:
    """One GRPO step at a time with the task arm and the measurements (see the module doc).

    Args:
        trainer: TRL's trainer with the measurement hooks; its optimizer and scheduler are
            created here if absent.
        sampler: Draws the problems (its generator is part of the state).
        cfg: GRPO, measurement and sampling settings.
        total_steps: The run's length (TRL's scheduler is built for it).
    """

    def __init__(
        self,
        trainer: MeasuredGRPOTrainer,
        sampler: TaskSampler,
        cfg: RunnerSettings,
        *,
        total_steps: int,
    ) -> None:
        self.trainer = trainer
        self.sampler = sampler
        self.cfg = cfg
        self.names = trainer.task_names
        if tuple(sampler.names) != self.names:
            raise ValueError(f"sampler tasks {sampler.names} differ from trainer's {self.names}")
        if trainer.optimizer is None:
            trainer.create_optimizer_and_scheduler(num_training_steps=total_steps)
        n = len(self.names)
        self.probs: list[float] = [1.0 / n] * n
        self.estimates: list[float] = [math.nan] * n
        self.reward_history: list[list[float]] = []

    @property
    def model(self) -> torch.nn.Module:
        """The policy being trained."""
        return self.trainer.policy

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer TRL built."""
        return cast(torch.optim.Optimizer, self.trainer.optimizer)

    @property
    def lr_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        """The scheduler TRL built."""
        return cast(torch.optim.lr_scheduler.LRScheduler, self.trainer.lr_scheduler)

    @property
    def params(self) -> list[torch.Tensor]:
        """The trainable parameters."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def train_step(self, step: int) -> dict[str, float]:
        """One optimizer step on a fresh batch drawn from the arm; returns its metrics.

        Args:
            step: Updates done so far (TRL sees it as ``state.global_step``).
        """
        g = self.cfg.grpo
        trainer = self.trainer
        rows = rows_of(self.sampler.problems(g.prompts_per_step, self.probs), g.num_generations)
        trainer.state.global_step = step
        trainer._metrics["train"].clear()  # TRL's per-step metrics of this step only
        start = time.perf_counter()
        loss = trainer.training_step(self.model, cast(Any, rows), None)
        norm = torch.nn.utils.clip_grad_norm_(
            self.params, g.max_grad_norm if g.max_grad_norm > 0 else math.inf
        )
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        assert trainer.last_inputs is not None
        stats = task_batch_stats(trainer.last_inputs, self.names)
        self.reward_history.append(
            [stats[n]["reward"] if n in stats else math.nan for n in self.names]
        )
        rewards = trainer.last_inputs["rewards"]
        metrics = {
            "train/loss": float(loss),
            "train/grad_norm": float(norm),
            "train/reward": float(rewards.to(torch.float64).mean()),
            "time/step_seconds": seconds,
        }
        for key, name in _TRL_METRICS.items():
            values = trainer._metrics["train"].get(key)
            if values:
                metrics[name] = float(sum(values) / len(values))
        for name, s in stats.items():
            for key in (
                "reward",
                "abs_advantage",
                "zero_adv_groups",
                "response_length",
                "malformed",
            ):
                metrics[f"train/{key}/{name}"] = s[key]
        for name, p in zip(self.names, self.probs, strict=True):
            metrics[f"train/task_prob/{name}"] = p
        return metrics

    def measure(self) -> dict[str, float]:
        """Measure every task on a batch of its own (``measure.groups_per_task`` prompts each)
        and, under the ``gradient`` arm, set the task probabilities from the estimates. The
        model, its gradients and the optimizer are untouched. Returns the ``eval/`` metrics
        (measured on a batch that is not trained on)."""
        m = self.cfg.measure
        start = time.perf_counter()
        rows = rows_of(self.sampler.per_task(m.groups_per_task), self.cfg.grpo.num_generations)
        inputs = self.trainer.score(rows)
        grads = self.trainer.task_gradients(inputs, m.microbatches)
        stats = task_batch_stats(inputs, self.names)
        self.estimates = [grads[n].sq_norm if n in grads else math.nan for n in self.names]
        if self.cfg.sampling.arm == "gradient":
            self.probs = gradient_proportional_probs(self.estimates, self.cfg.sampling.floor)
        out: dict[str, float] = {"time/measure_seconds": time.perf_counter() - start}
        for name in self.names:
            if name in grads:
                out[f"eval/grad_sq_norm/{name}"] = grads[name].sq_norm
                out[f"eval/grad_sq_norm_plain/{name}"] = grads[name].plain_sq_norm
                out[f"eval/grad_mean_sq_norm/{name}"] = grads[name].mean_sq_norm
            for key, value in stats.get(name, {}).items():
                if key != "completions":
                    out[f"eval/{key}/{name}"] = value
        for name, p in zip(self.names, self.probs, strict=True):
            out[f"eval/task_prob/{name}"] = p
        return out

    def gains(self, center: int) -> dict[str, float]:
        """``train/gain/<task>``: the learning gain centred on step ``center`` (NaN-free entries
        only; empty until steps ``center - s .. center + s`` are recorded)."""
        s = self.cfg.measure.gain_window
        out: dict[str, float] = {}
        for i, name in enumerate(self.names):
            series = [row[i] for row in self.reward_history]
            gain = learning_gain(series, center, s)
            if not math.isnan(gain):
                out[f"train/gain/{name}"] = gain
        return out

    # --- checkpoint ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer, scheduler, sampler, probabilities, estimates and rewards."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "probs": torch.tensor(self.probs, dtype=torch.float64),
            # NaN (a task not drawn, not measured) is stored as a mask: NaN != NaN would make
            # two equal states compare unequal.
            **_masked("estimates", torch.tensor(self.estimates, dtype=torch.float64)),
            **_masked(
                "rewards",
                torch.tensor(self.reward_history, dtype=torch.float64).reshape(-1, len(self.names)),
            ),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.probs = [float(x) for x in state["probs"].tolist()]
        self.estimates = _unmasked(state, "estimates").tolist()
        self.reward_history = _unmasked(state, "rewards").tolist()


def _masked(name: str, values: torch.Tensor) -> dict[str, torch.Tensor]:
    present = ~values.isnan()
    return {name: values.nan_to_num(0.0), f"{name}_present": present}


def _unmasked(state: Mapping[str, Any], name: str) -> torch.Tensor:
    values = state[name].clone()
    values[~state[f"{name}_present"]] = math.nan
    return values
