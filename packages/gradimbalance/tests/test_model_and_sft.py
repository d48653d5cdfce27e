"""The character tokenizer, the config-built model, loading a saved one, and the warm start."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from gradimbalance.config import ALL_TASKS, ModelConfig, SFTConfig
from gradimbalance.networks import build_model, load_pretrained
from gradimbalance.sampler import TaskSampler
from gradimbalance.sft import encode_sft_batch, supervised_warm_start
from gradimbalance.tasks import Problem, make_tasks
from gradimbalance.tokenizer import ALPHABET, SPECIAL_TOKENS, char_tokenizer
from rl_runtime.errors import UsageError

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
NET = ModelConfig(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, max_positions=32)


def test_tokenizer_is_one_token_per_character_and_round_trips() -> None:
    tok = char_tokenizer()
    assert len(tok) == len(SPECIAL_TOKENS) + len(ALPHABET)
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1)
    tasks = make_tasks(ALL_TASKS)
    rng = random.Random(0)
    for task in tasks.values():
        p = task.sample(rng)
        for text in (p.prompt, p.answer):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert len(ids) == len(text)
            assert tok.unk_token_id not in ids
            assert tok.decode(ids) == text
    padded = tok(["ab", "abcd"], padding=True)["input_ids"]
    assert padded[0][:2] == [0, 0]  # left padding, for generation


def test_sft_batch_labels_only_the_answer_and_eos() -> None:
    tok = char_tokenizer()
    p = Problem("reversal", "R:ab=", "ba")
    ids, mask, labels = encode_sft_batch(
        tok, [p, Problem("sorting", "S:21=", "12")], torch.device("cpu")
    )
    assert ids.shape == (2, 8)
    assert tok.decode(ids[0, :5].tolist()) == "R:ab="
    expected = [-100] * 5 + [*tok("ba", add_special_tokens=False)["input_ids"], tok.eos_token_id]
    assert labels[0].tolist() == expected
    assert mask[0].tolist() == [1] * 8


def test_built_model_saves_and_loads_as_a_user_model(tmp_path: Path) -> None:
    tok = char_tokenizer()
    torch.manual_seed(0)
    model = build_model(NET, tok)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, loaded_tok = load_pretrained(tmp_path / "m")
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert loaded_tok("S:21=")["input_ids"] == tok("S:21=")["input_ids"]
    assert build_model(ModelConfig(architecture="llama", **{k: getattr(NET, k) for k in (
        "hidden_size", "intermediate_size", "num_layers", "num_heads", "max_positions")}),
        tok).config.model_type == "llama"  # fmt: skip


def test_load_pretrained_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^--model .*: no such directory"):
        load_pretrained(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        load_pretrained(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no config\.json"):
        load_pretrained(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(UsageError, match="cannot load"):
        load_pretrained(tmp_path / "bad")


@pytest.mark.slow
def test_warm_start_teaches_reversal_beyond_chance() -> None:
    """A random policy almost never reverses 3-4 letters (26^-3); the warm start gets there."""
    tok = char_tokenizer()
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=64, intermediate_size=256, max_positions=32), tok)
    tasks = make_tasks(["reversal"], None)
    sampler = TaskSampler(tasks, 0)
    cfg = SFTConfig(target_accuracy=0.5, max_steps=800, eval_every=100, eval_prompts=32)
    result = supervised_warm_start(
        model, tok, tasks, sampler, cfg, temperature=1.0, max_new_tokens=8
    )
    assert result.history[0][1]["reversal"] == 0.0
    assert result.accuracy["reversal"] >= 0.5
    assert result.steps < 800
