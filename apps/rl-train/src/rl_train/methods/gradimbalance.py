"""GRPO on a causal LM with per-task gradient-imbalance measurements (``rl-train gradimbalance``).

Wu et al. (arXiv 2510.19178) post-train LLMs with GRPO on a mixture of tasks and measure, per
task, the squared norm of the policy gradient (an unbiased cross-product estimator) beside the
learning gain. This trainer does the same on five procedural tasks with exact checkers: a model
(a small Qwen2/Llama built from a config with a local character tokenizer, or ``--model PATH``,
any local transformers causal LM) is warm-started by supervised fine-tuning to a partial
accuracy, then trained by TRL's GRPO (``gradimbalance.trainer``), one optimizer step at a time
(``gradimbalance.agent``), measuring every task every ``--measure.every`` steps.

``--env`` names the task mixture (``arithmetic+countdown+wordproblem+sorting+reversal``, or any
subset joined by ``+``); ``--sampling.arm gradient`` samples tasks in proportion to their
measured squared gradient norm (with ``--sampling.floor``). The run directory holds the
warm-started model (``warmstart/``, a ``save_pretrained`` folder that ``--model`` accepts),
``metrics.jsonl`` (``eval/`` for the measurements, ``train/`` for the steps, the gains and the warm start: the package README lists
them) and ``plots/measurements.png``; a killed run resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradimbalance.config import (
    GRPOSettings,
    MeasureConfig,
    ModelConfig,
    SamplingConfig,
    SFTConfig,
    TaskConfig,
    parse_tasks,
)
from rl_runtime.config import RunConfig, RunOptions, check

from rl_train.method import Method, UsageError

if TYPE_CHECKING:
    from gradimbalance.sft import SFTResult

__all__ = ["METHOD", "GradImbalanceTrainConfig", "train"]

LOG = logging.getLogger("rlworks")


@dataclasses.dataclass(frozen=True)
class GradImbalanceTrainConfig:
    """rl-train gradimbalance: GRPO with per-task gradient-norm and learning-gain measurements."""

    env: str = "arithmetic+countdown+wordproblem+sorting+reversal"
    """The task mixture: task names joined by '+' (arithmetic, countdown, wordproblem, sorting,
    reversal)."""
    model: Path | None = None
    """A local transformers causal LM (a save_pretrained folder with its tokenizer) to train
    instead of the config-built model (--net.* then do not apply)."""
    net: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    """The config-built model (without --model)."""
    tasks: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    """Sizes of the procedural tasks."""
    sft: SFTConfig = dataclasses.field(default_factory=SFTConfig)
    """The supervised warm start (before GRPO; --sft.max-steps 0 skips it)."""
    grpo: GRPOSettings = dataclasses.field(default_factory=GRPOSettings)
    """GRPO through TRL's GRPOTrainer."""
    measure: MeasureConfig = dataclasses.field(default_factory=MeasureConfig)
    """The per-task measurements."""
    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)
    """Task sampling arm."""
    run: RunOptions = dataclasses.field(default_factory=RunConfig)
    """Seed, length (--total-steps: GRPO steps), logging and checkpoint options."""

    def __post_init__(self) -> None:
        names = parse_tasks(self.env)
        check(
            len(names) * self.sampling.floor <= 1.0,
            f"--sampling.floor {self.sampling.floor} is impossible for {len(names)} tasks "
            "(need tasks x floor <= 1)",
        )


def _save_warm_start(model: Any, tokenizer: Any, folder: Path) -> None:
    """``save_pretrained`` into ``folder`` atomically (a sibling temporary folder, renamed)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if folder.exists():  # an attempt killed after saving, before its first checkpoint
        shutil.rmtree(folder)
    tmp.rename(folder)


def _sft_metrics(result: SFTResult, params: int) -> dict[str, float]:
    out = {
        "train/sft_steps": float(result.steps),
        "train/sft_mean_accuracy": result.mean_accuracy,
        "train/sft_loss": result.loss,
        "train/parameters": float(params),
    }
    out.update({f"train/sft_accuracy/{task}": acc for task, acc in result.accuracy.items()})
    return {k: v for k, v in out.items() if v == v}  # NaN loss without steps: left out


def train(cfg: GradImbalanceTrainConfig) -> Path:
    """Warm-start, then GRPO with the measurements, as ``cfg`` says; returns the run directory."""
    from gradimbalance.networks import check_model_dir  # light: transformers loads on use

    if cfg.model is not None:  # before anything starts: one line, no run directory
        check_model_dir(cfg.model)
    # Imported here, not at the top: the command line (``--help``) needs only the configs.
    from gradimbalance.agent import GradImbalanceRunner, RunnerSettings
    from gradimbalance.networks import build_model, load_pretrained, parameter_count
    from gradimbalance.plots import plot_measurements
    from gradimbalance.sampler import TaskSampler
    from gradimbalance.sft import supervised_warm_start
    from gradimbalance.tasks import make_tasks
    from gradimbalance.tokenizer import char_tokenizer
    from gradimbalance.trainer import MeasuredGRPOTrainer, grpo_args
    from rl_runtime.run import open_run
    from rl_runtime.seeding import derive_seed

    names = parse_tasks(cfg.env)
    rc = cfg.run
    with open_run(METHOD.name, cfg) as run:
        tasks = make_tasks(names, cfg.tasks)
        sampler = TaskSampler(tasks, derive_seed(rc.seed, "tasks"))
        warm = run.dir / "warmstart"
        sft_metrics: dict[str, float] = {}
        if run.restored is None:
            # 1. The policy: a user's model, or one built from the config (seeded by open_run).
            if cfg.model is not None:
                model, tokenizer = load_pretrained(cfg.model)
            else:
                tokenizer = char_tokenizer()
                model = build_model(cfg.net, tokenizer)
            model.to(run.device)  # pyright: ignore[reportArgumentType]  (transformers types `to` oddly)
            # 2. Supervised warm start to a partial accuracy; the result is GRPO's start and
            # (with --grpo.beta > 0) its KL reference.
            result = supervised_warm_start(
                model, tokenizer, tasks, sampler, cfg.sft,
                temperature=cfg.grpo.temperature,
                max_new_tokens=cfg.grpo.max_completion_length,
                log=LOG.info,
            )  # fmt: skip
            sft_metrics = _sft_metrics(result, parameter_count(model))
            _save_warm_start(model, tokenizer, warm)
            del model
        elif not (warm / "config.json").is_file():
            raise UsageError(f"{run.dir}: warmstart/ is missing; start over with --restart")
        # 3. TRL's GRPO trainer on the warm-started model (read back from disk, so that a
        # resumed run builds exactly the same trainer).
        model, tokenizer = load_pretrained(warm)
        args = grpo_args(
            cfg.grpo,
            output_dir=run.dir / "trl",
            seed=derive_seed(rc.seed, "trl"),
            use_cpu=run.device.type == "cpu",
            max_steps=rc.total_steps,
        )
        trainer = MeasuredGRPOTrainer(model, tasks=tasks, args=args, processing_class=tokenizer)
        settings = RunnerSettings(cfg.grpo, cfg.measure, cfg.sampling)
        runner = GradImbalanceRunner(trainer, sampler, settings, total_steps=rc.total_steps)
        if run.restored is not None:
            runner.load_state_dict(run.restored["runner"])
            run.restore_rng()  # after TRL's constructor, which seeds the global RNGs
        else:
            run.logger.log(0, sft_metrics)
            run.save_checkpoint(0, {"runner": runner.state_dict()})
        # 4. GRPO steps; measurements every k steps (before that step's update).
        every, window = cfg.measure.every, cfg.measure.gain_window
        step = run.start_step
        bar = run.progress()
        run.start_progress(step)
        with bar:
            while step < rc.total_steps:
                metrics: dict[str, float] = {}
                measured = step % every == 0
                if measured:
                    metrics |= runner.measure()
                metrics |= runner.train_step(step)
                centre = step - window  # the gain at a measured step needs s later steps
                gains = centre >= window and centre % every == 0
                if gains:
                    metrics |= runner.gains(centre)
                    metrics["train/gain_center_step"] = float(centre)
                if measured or gains or step % rc.log_every == 0:
                    run.logger.log(step, metrics)
                step += 1
                bar.update(1)
                run.report_progress(step)
                last = step == rc.total_steps
                stop = run.stop_requested and not last
                if stop or run.checkpoint_due(step, last=last):
                    run.save_checkpoint(step, {"runner": runner.state_dict()})
                if stop:
                    raise run.interrupted(step)
        run.logger.flush()
        entries = [
            json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()
        ]
        plot_measurements(
            entries, names, run.dir / "plots" / "measurements.png", window=window,
            title=f"gradimbalance {cfg.sampling.arm} seed {rc.seed}",
        )  # fmt: skip
        LOG.info("finished %d GRPO steps in %s", rc.total_steps, run.dir)
        return run.dir


def _preset(**changes: Any) -> GradImbalanceTrainConfig:
    return dataclasses.replace(GradImbalanceTrainConfig(), **changes)


_TINY = _preset(
    sft=SFTConfig(max_steps=20, eval_every=10, eval_prompts=4, batch_size=32),
    grpo=GRPOSettings(prompts_per_step=5, num_generations=4, max_completion_length=10),
    measure=MeasureConfig(every=5, microbatches=2, groups_per_microbatch=1, gain_window=3),
    run=RunConfig(
        total_steps=20, eval_every=20, eval_episodes=0, log_every=1, checkpoint_every=10,
        torch_threads=1, device="cpu",
    ),
)  # fmt: skip
"""Seconds on a CPU: every phase (warm start, steps, measurements, gains, checkpoints)."""

_SMALL = _preset(
    run=RunConfig(
        total_steps=200, eval_every=200, eval_episodes=0, log_every=1, checkpoint_every=50,
        torch_threads=1, device="cpu",
    ),
)  # fmt: skip
"""The benchmark's scale on a CPU: the defaults (warm start to 40% mean accuracy, 10 prompts x
8 completions per step, measured every 10 steps with m = 4) for 200 steps."""

_GPU = _preset(
    net=ModelConfig(hidden_size=512, intermediate_size=2048, num_layers=8, num_heads=8),
    sft=SFTConfig(max_steps=2000, eval_every=100, batch_size=256, learning_rate=1e-3),
    grpo=GRPOSettings(prompts_per_step=32, num_generations=8, learning_rate=3e-5),
    measure=MeasureConfig(every=10, microbatches=4, groups_per_microbatch=4, gain_window=10),
    run=RunConfig(
        total_steps=300, eval_every=300, eval_episodes=0, log_every=1, checkpoint_every=100,
        device="cuda",
    ),
)  # fmt: skip
"""A larger config-built model (25M parameters) for a GPU."""

METHOD = Method(
    name="gradimbalance",
    config_type=GradImbalanceTrainConfig,
    presets={"tiny": _TINY, "small": _SMALL, "gpu": _GPU},
    train=train,
    description=(__doc__ or "").split("\n\n")[0],
)
