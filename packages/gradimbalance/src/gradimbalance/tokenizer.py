"""A character-level tokenizer built locally (nothing is downloaded).

One token per character of :data:`ALPHABET` (every character the tasks' prompts and answers
use), plus ``<pad>``, ``<eos>`` and ``<unk>``: a ``tokenizers`` WordLevel model behind a
pre-tokenizer that isolates every character and a ``Fuse`` decoder, wrapped in transformers'
``PreTrainedTokenizerFast`` with left padding (what generation needs). ``save_pretrained`` /
``AutoTokenizer.from_pretrained`` round-trip it like any Hugging Face tokenizer, so a run's
saved model directory is a normal ``--model PATH``.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["ALPHABET", "SPECIAL_TOKENS", "char_tokenizer"]

ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase + "+-*=,:?>() "
"""The characters of the tasks' text, one token each."""

SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
"""Padding (id 0), end of sequence (id 1) and unknown (id 2)."""


def char_tokenizer() -> PreTrainedTokenizerFast:
    """The character-level tokenizer (vocabulary: the special tokens, then :data:`ALPHABET`)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *ALPHABET))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # One token per character: split before every character, keep it (spaces included).
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side="left",
        model_max_length=1024,
    )
