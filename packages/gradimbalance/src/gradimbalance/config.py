"""Configuration: one frozen dataclass per component.

The paper (Wu et al., arXiv 2510.19178) gives no code and few hyperparameters (no group size,
learning rate, KL coefficient or step counts); every number below that it does not state is a
choice for a small config-built model on a CPU, and the README's Deviations table says why. This
module imports nothing heavy (no torch, transformers or trl), so ``rl-train gradimbalance
--help`` starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from rl_runtime.config import (
    check,
    in_range,
    int_at_least,
    non_negative,
    one_of,
    positive,
    positive_int,
)

__all__ = [
    "ALL_TASKS",
    "Architecture",
    "GRPOSettings",
    "LossType",
    "MeasureConfig",
    "ModelConfig",
    "SFTConfig",
    "SamplingArm",
    "SamplingConfig",
    "TaskConfig",
    "TaskName",
    "parse_tasks",
]

TaskName = Literal["arithmetic", "countdown", "wordproblem", "sorting", "reversal"]
"""The procedural tasks (``gradimbalance.tasks``)."""

ALL_TASKS: tuple[str, ...] = get_args(TaskName)
"""Every task, in the order metrics and tables list them."""

Architecture = Literal["qwen2", "llama"]
"""The transformers architecture of a config-built model."""

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
"""TRL's aggregation of the clipped token-level objective (``GRPOConfig.loss_type``)."""

SamplingArm = Literal["uniform", "gradient"]
"""Task sampling: uniform, or in proportion to the measured squared gradient norm (with a
floor)."""


def parse_tasks(spec: str) -> tuple[str, ...]:
    """The task mixture named by ``--env``: task names joined by ``+``
    (``arithmetic+sorting``), each known and at most once.

    Raises:
        ValueError: an unknown or repeated name, or an empty mixture.
    """
    names = tuple(name.strip() for name in spec.split("+"))
    for name in names:
        check(
            name in ALL_TASKS,
            f"--env {spec!r}: unknown task {name!r}; tasks: {', '.join(ALL_TASKS)} "
            "(join several with '+')",
        )
    check(len(set(names)) == len(names), f"--env {spec!r}: a task is named twice")
    return names


@dataclass(frozen=True)
class TaskConfig:
    """Sizes of the procedural tasks (every problem is drawn from a seeded generator)."""

    arithmetic_max: int = 20
    """Largest operand of ``a+b`` and ``a-b``; the second operand of ``a*b`` is one digit."""
    countdown_numbers: int = 3
    """How many numbers a countdown problem gives (each used exactly once)."""
    countdown_max: int = 5
    """Largest countdown number (numbers are drawn from 1..countdown_max)."""
    word_steps: int = 2
    """Operations in a word problem after the starting amount ("gets 5", "loses 3", "doubles")."""
    word_max: int = 9
    """Largest starting amount and operand of a word problem."""
    sort_min_length: int = 3
    """Shortest digit string to sort."""
    sort_max_length: int = 5
    """Longest digit string to sort."""
    reverse_min_length: int = 3
    """Shortest letter string to reverse."""
    reverse_max_length: int = 6
    """Longest letter string to reverse."""

    def __post_init__(self) -> None:
        int_at_least("--tasks.arithmetic-max", self.arithmetic_max, 1)
        int_at_least("--tasks.countdown-numbers", self.countdown_numbers, 2)
        int_at_least("--tasks.countdown-max", self.countdown_max, 1)
        positive_int("--tasks.word-steps", self.word_steps)
        int_at_least("--tasks.word-max", self.word_max, 1)
        positive_int("--tasks.sort-min-length", self.sort_min_length)
        positive_int("--tasks.reverse-min-length", self.reverse_min_length)
        check(
            self.sort_max_length >= self.sort_min_length,
            "--tasks.sort-max-length must be >= --tasks.sort-min-length",
        )
        check(
            self.reverse_max_length >= self.reverse_min_length,
            "--tasks.reverse-max-length must be >= --tasks.reverse-min-length",
        )


@dataclass(frozen=True)
class ModelConfig:
    """The default model: a small causal transformer built from a transformers config."""

    architecture: Architecture = "qwen2"
    """``qwen2`` (Qwen2Config) or ``llama`` (LlamaConfig)."""
    hidden_size: int = 64
    """Width of the residual stream."""
    intermediate_size: int = 256
    """Width of the MLP."""
    num_layers: int = 2
    """Decoder layers."""
    num_heads: int = 4
    """Attention heads (as many key/value heads)."""
    max_positions: int = 64
    """Context length (prompt + completion)."""

    def __post_init__(self) -> None:
        one_of("--net.architecture", self.architecture, get_args(Architecture))
        for name in ("hidden_size", "intermediate_size", "num_layers", "num_heads"):
            positive_int(f"--net.{name.replace('_', '-')}", getattr(self, name))
        int_at_least("--net.max-positions", self.max_positions, 8)
        check(
            self.hidden_size % self.num_heads == 0,
            f"--net.hidden-size {self.hidden_size} must be a multiple of --net.num-heads "
            f"{self.num_heads}",
        )


@dataclass(frozen=True)
class SFTConfig:
    """Supervised warm start on the tasks' reference answers, stopped at a partial accuracy."""

    target_accuracy: float = 0.4
    """Stop once the mean sampled accuracy over the tasks reaches this (the paper starts GRPO
    from instruct models that solve part of each task; 1.0 trains for ``max_steps``)."""
    max_steps: int = 600
    """At most this many SFT steps (0 skips the warm start)."""
    eval_every: int = 50
    """Check the accuracy every this many SFT steps (and before the first)."""
    eval_prompts: int = 32
    """Prompts per task in each accuracy check (one sampled answer each)."""
    batch_size: int = 64
    """Problems per SFT step (tasks drawn uniformly)."""
    learning_rate: float = 3e-3
    """AdamW learning rate of the warm start."""

    def __post_init__(self) -> None:
        in_range("--sft.target-accuracy", self.target_accuracy, 0.0, 1.0)
        int_at_least("--sft.max-steps", self.max_steps, 0)
        positive_int("--sft.eval-every", self.eval_every)
        positive_int("--sft.eval-prompts", self.eval_prompts)
        positive_int("--sft.batch-size", self.batch_size)
        positive("--sft.learning-rate", self.learning_rate)


@dataclass(frozen=True)
class GRPOSettings:
    """GRPO through TRL's ``GRPOTrainer`` (the fields map onto ``trl.GRPOConfig``)."""

    prompts_per_step: int = 10
    """Prompts per training step (each task drawn per prompt from the sampling arm)."""
    num_generations: int = 8
    """Group size G: completions per prompt (research notes' plan)."""
    max_completion_length: int = 16
    """Longest completion in tokens (the model's positions bound prompt + completion)."""
    temperature: float = 1.0
    """Sampling temperature of the completions."""
    learning_rate: float = 3e-4
    """AdamW learning rate (TRL's default 1e-6 is for billion-parameter models; this small
    model learns visibly within a hundred steps at 3e-4)."""
    epsilon: float = 0.2
    """Clip range of the token-level importance ratio."""
    beta: float = 0.0
    """Coefficient of the KL penalty to the warm-started reference model (0: none, TRL's
    default; the reference is then not built)."""
    loss_type: LossType = "grpo"
    """TRL's loss aggregation: ``grpo`` averages each sequence's tokens, then the sequences
    (the GRPO paper's form); ``dapo`` (TRL's default) averages over all tokens of the batch."""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """Advantage scaling: ``(r - mean_G) / (std_G + 1e-4)`` with ``group`` (GRPO)."""
    max_grad_norm: float = 1.0
    """Gradient clipping of the update (TRL's default); 0 disables."""
    weight_decay: float = 0.0
    """AdamW weight decay."""

    def __post_init__(self) -> None:
        positive_int("--grpo.prompts-per-step", self.prompts_per_step)
        int_at_least("--grpo.num-generations", self.num_generations, 2)
        positive_int("--grpo.max-completion-length", self.max_completion_length)
        positive("--grpo.temperature", self.temperature)
        positive("--grpo.learning-rate", self.learning_rate)
        non_negative("--grpo.epsilon", self.epsilon)
        non_negative("--grpo.beta", self.beta)
        one_of("--grpo.loss-type", self.loss_type, get_args(LossType))
        one_of("--grpo.scale-rewards", self.scale_rewards, ("group", "batch", "none"))
        non_negative("--grpo.max-grad-norm", self.max_grad_norm)
        non_negative("--grpo.weight-decay", self.weight_decay)


@dataclass(frozen=True)
class MeasureConfig:
    """The per-task measurements (every ``every`` steps, on a batch of their own)."""

    every: int = 10
    """k: measure every this many training steps (and at step 0)."""
    microbatches: int = 4
    """m: independent micro-batch gradients per task for the cross-product estimator."""
    groups_per_microbatch: int = 2
    """Prompt groups (G completions each) in one micro-batch."""
    gain_window: int = 10
    """s: the learning gain at t is the mean training reward over steps t+1..t+s minus that
    over t-s..t-1."""

    def __post_init__(self) -> None:
        positive_int("--measure.every", self.every)
        int_at_least("--measure.microbatches", self.microbatches, 2)
        positive_int("--measure.groups-per-microbatch", self.groups_per_microbatch)
        positive_int("--measure.gain-window", self.gain_window)

    @property
    def groups_per_task(self) -> int:
        """Prompt groups generated per task for one measurement."""
        return self.microbatches * self.groups_per_microbatch


@dataclass(frozen=True)
class SamplingConfig:
    """Which task each training prompt comes from."""

    arm: SamplingArm = "uniform"
    """``uniform``, or ``gradient``: p_t proportional to the latest estimate of the squared
    gradient norm (negative estimates count as 0), mixed with the floor."""
    floor: float = 0.05
    """Least probability of any task under ``gradient`` (p = floor + (1 - T floor) g_t / sum g)."""

    def __post_init__(self) -> None:
        one_of("--sampling.arm", self.arm, get_args(SamplingArm))
        in_range("--sampling.floor", self.floor, 0.0, 1.0)
