"""The policy: a small causal LM built from a transformers config, or a user's checkpoint.

:func:`build_model` makes a Qwen2 or Llama network from :class:`~gradimbalance.config.ModelConfig`
sized for the character tokenizer (no weights are downloaded); :func:`load_pretrained` reads any
transformers causal LM and its tokenizer from a local directory (``--model PATH``). Both return a
``transformers.PreTrainedModel`` that the same SFT and GRPO code trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rl_runtime.errors import UsageError

from gradimbalance.config import ModelConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["build_model", "check_model_dir", "load_pretrained", "parameter_count"]


def build_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A freshly initialised causal LM of ``cfg``'s architecture and size for ``tokenizer``
    (initialised from torch's global RNG: seed it first)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads,
        "max_position_embeddings": cfg.max_positions,
        "tie_word_embeddings": True,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.eos_token_id,
    }
    config = Qwen2Config(**common) if cfg.architecture == "qwen2" else LlamaConfig(**common)
    return AutoModelForCausalLM.from_config(config)


def check_model_dir(path: Path) -> None:
    """Refuse a ``--model`` that cannot be a ``save_pretrained`` folder (no transformers
    import: a command checks this before it starts anything).

    Raises:
        UsageError: ``path`` is missing, not a directory, or has no ``config.json``.
    """
    if not path.exists():
        raise UsageError(f"--model {path}: no such directory (give a save_pretrained folder)")
    if not path.is_dir():
        raise UsageError(f"--model {path}: not a directory (give a save_pretrained folder)")
    if not (path / "config.json").is_file():
        raise UsageError(f"--model {path}: no config.json (give a save_pretrained folder)")


def load_pretrained(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The causal LM and tokenizer saved in the directory ``path`` (``save_pretrained``
    layout), read locally: nothing is downloaded, no remote code runs.

    Raises:
        UsageError: ``path`` is missing, not a directory, or holds no loadable causal LM
            (the message names ``--model``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_dir(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, trust_remote_code=False, dtype="float32"
        )
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"--model {path}: cannot load a causal LM and tokenizer: {first}") from e
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # GRPO pads groups of completions
    if tokenizer.eos_token_id is None:
        raise UsageError(f"--model {path}: the tokenizer has no end-of-sequence token")
    tokenizer.padding_side = "left"
    return model, tokenizer


def parameter_count(model: PreTrainedModel) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
