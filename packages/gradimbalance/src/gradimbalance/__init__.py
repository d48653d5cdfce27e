"""Per-task gradient imbalance in GRPO post-training of causal LMs (Wu, Samanta, Jain, Fujimoto,
Kwon, Kretzu, Yu, Hassani, Vidolov, Efroni; Findings of EACL 2026, arXiv 2510.19178).

* :mod:`gradimbalance.tasks`: five procedural tasks with exact checkers (pure Python).
* :mod:`gradimbalance.tokenizer`, :mod:`gradimbalance.networks`: a local character tokenizer, a
  Qwen2/Llama model built from a config, or any local transformers causal LM.
* :mod:`gradimbalance.sft`: the supervised warm start to a partial accuracy.
* :mod:`gradimbalance.measures`: the cross-product estimator, the learning gain, GRPO advantages,
  gradient-proportional task probabilities.
* :mod:`gradimbalance.trainer`: ``trl.GRPOTrainer`` with the checkers as reward and per-task
  gradients taken inside its batch.
* :mod:`gradimbalance.agent`: the step-by-step runner (task arms, measurements, state).
* :mod:`gradimbalance.plots`: figures of a run's measurements.

Names are imported from their module on first use (``rl_runtime.lazy``), so
``gradimbalance.config`` imports without torch, transformers or trl.
"""

from typing import TYPE_CHECKING

from rl_runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from gradimbalance.agent import GradImbalanceRunner, RunnerSettings
    from gradimbalance.config import (
        ALL_TASKS,
        GRPOSettings,
        MeasureConfig,
        ModelConfig,
        SamplingConfig,
        SFTConfig,
        TaskConfig,
        parse_tasks,
    )
    from gradimbalance.measures import (
        CrossProductAccumulator,
        cross_product_sq_norm,
        gradient_proportional_probs,
        group_advantages,
        learning_gain,
        plain_sq_norm,
    )
    from gradimbalance.networks import build_model, load_pretrained
    from gradimbalance.sampler import TaskSampler, rows_of
    from gradimbalance.sft import SFTResult, sampled_accuracy, supervised_warm_start
    from gradimbalance.tasks import Problem, Task, Verdict, make_tasks
    from gradimbalance.tokenizer import char_tokenizer
    from gradimbalance.trainer import MeasuredGRPOTrainer, TaskGradient, grpo_args

__version__ = "0.1.0"

__all__ = [
    "ALL_TASKS",
    "CrossProductAccumulator",
    "GRPOSettings",
    "GradImbalanceRunner",
    "MeasureConfig",
    "MeasuredGRPOTrainer",
    "ModelConfig",
    "Problem",
    "RunnerSettings",
    "SFTConfig",
    "SFTResult",
    "SamplingConfig",
    "Task",
    "TaskConfig",
    "TaskGradient",
    "TaskSampler",
    "Verdict",
    "build_model",
    "char_tokenizer",
    "cross_product_sq_norm",
    "gradient_proportional_probs",
    "group_advantages",
    "grpo_args",
    "learning_gain",
    "load_pretrained",
    "make_tasks",
    "parse_tasks",
    "plain_sq_norm",
    "rows_of",
    "sampled_accuracy",
    "supervised_warm_start",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "gradimbalance.agent": ("GradImbalanceRunner", "RunnerSettings"),
        "gradimbalance.config": (
            "ALL_TASKS", "GRPOSettings", "MeasureConfig", "ModelConfig", "SamplingConfig",
            "SFTConfig", "TaskConfig", "parse_tasks",
        ),
        "gradimbalance.measures": (
            "CrossProductAccumulator", "cross_product_sq_norm", "gradient_proportional_probs",
            "group_advantages", "learning_gain", "plain_sq_norm",
        ),
        "gradimbalance.networks": ("build_model", "load_pretrained"),
        "gradimbalance.sampler": ("TaskSampler", "rows_of"),
        "gradimbalance.sft": ("SFTResult", "sampled_accuracy", "supervised_warm_start"),
        "gradimbalance.tasks": ("Problem", "Task", "Verdict", "make_tasks"),
        "gradimbalance.tokenizer": ("char_tokenizer",),
        "gradimbalance.trainer": ("MeasuredGRPOTrainer", "TaskGradient", "grpo_args"),
    },
)  # fmt: skip
