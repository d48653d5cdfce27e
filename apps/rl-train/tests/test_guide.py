"""The README's "Adding a method" example runs as written: parsed, trained, logged, resumed."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _example_source() -> str:
    text = README.read_text(encoding="utf-8")
    marker = text.index("<!-- example: adding-a-method -->")
    block = re.search(r"```python\n(.*?)```", text[marker:], re.DOTALL)
    assert block is not None, "no python block after the example marker"
    lines = block.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


def test_the_adding_a_method_example_trains_and_resumes(tmp_path: Path) -> None:
    module_path = tmp_path / "my_method.py"
    module_path.write_text(_example_source(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("my_method", module_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["my_method"] = module
    try:
        spec.loader.exec_module(module)
        method = module.METHOD
        args = ["--root", str(tmp_path / "runs"), "--name", "guide", "--quiet",
                "--no-tensorboard", "--torch-threads", "1", "--total-steps", "512",
                "--eval-every", "256", "--eval-episodes", "2"]  # fmt: skip
        run_dir = method.train(method.parse(args))
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [e["step"] for e in lines if "eval/return" in e] == [0, 256, 512]
        assert any("train/actor_loss" in e and "train/critic_loss" in e for e in lines)
        # The same command again finds the finished run and does nothing more.
        assert method.train(method.parse(args)) == run_dir
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == len(lines)
    finally:
        sys.modules.pop("my_method", None)
