"""Procedural tasks with verifiable rewards, and their exact checkers.

Five tasks that differ in kind, each drawn from a seeded ``random.Random``:

============  =========================  ====================  ==============================
task          prompt                     reference answer      correct when
============  =========================  ====================  ==============================
arithmetic    ``A:37+58=``               ``95``                the integer equals the value
countdown     ``C:7,3,5>22=``            ``3*5+7``             an expression over + - * and
                                                               parentheses that uses every
                                                               number exactly once equals the
                                                               target
wordproblem   ``W:ann has 4,gets 3,      ``14``                the integer equals the amount
              doubles?``                                       after every step
sorting       ``S:5281=``                ``1258``              the digits in ascending order
reversal      ``R:abcde=``               ``edcba``             the letters reversed
============  =========================  ====================  ==============================

A checker answers :class:`Verdict` ``CORRECT``, ``WRONG`` (well-formed but not right) or
``MALFORMED`` (not an answer of the task's form: stray characters, spaces, leading zeros, an
unparsable expression, numbers not among those given, a string of the wrong length); the reward
is 1 for ``CORRECT`` and 0 otherwise. Answers are read exactly as generated: no stripping.

Pure Python: no torch, so the tasks run anywhere (reward functions, tests, the command line).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from gradimbalance.config import ALL_TASKS, TaskConfig

__all__ = [
    "CountdownTask",
    "IntegerTask",
    "Problem",
    "StringTask",
    "Task",
    "Verdict",
    "make_tasks",
    "parse_countdown",
]


class Verdict(enum.Enum):
    """A checker's answer."""

    CORRECT = "correct"
    WRONG = "wrong"
    MALFORMED = "malformed"

    @property
    def reward(self) -> float:
        """1 for a correct answer, 0 otherwise (the paper's binary verifiable reward)."""
        return 1.0 if self is Verdict.CORRECT else 0.0


@dataclasses.dataclass(frozen=True)
class Problem:
    """One task instance.

    Attributes:
        task: The task's name.
        prompt: What the model is given.
        answer: A reference answer (the SFT target; for countdown one of possibly many).
        numbers: Countdown's numbers (empty for the other tasks).
        target: Countdown's target, or the integer answer of arithmetic and word problems.
    """

    task: str
    prompt: str
    answer: str
    numbers: tuple[int, ...] = ()
    target: int = 0

    def to_json(self) -> str:
        """The problem as one JSON string (a dataset column that reward functions decode)."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Problem:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            task=str(data["task"]),
            prompt=str(data["prompt"]),
            answer=str(data["answer"]),
            numbers=tuple(int(x) for x in data["numbers"]),
            target=int(data["target"]),
        )


class Task(Protocol):
    """A procedural task: draws problems and checks answers."""

    @property
    def name(self) -> str:
        """The task's name (one of :data:`gradimbalance.config.ALL_TASKS`)."""
        ...

    def sample(self, rng: random.Random) -> Problem:
        """A new problem drawn from ``rng``."""
        ...

    def check(self, problem: Problem, completion: str) -> Verdict:
        """The verdict on ``completion`` as an answer to ``problem``."""
        ...


_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def _check_integer(value: int, completion: str) -> Verdict:
    if not _INTEGER.fullmatch(completion) or completion == "-0":
        return Verdict.MALFORMED
    return Verdict.CORRECT if int(completion) == value else Verdict.WRONG


@dataclasses.dataclass(frozen=True)
class IntegerTask:
    """A task whose answer is one integer: arithmetic or the multi-step word problems."""

    name: str
    draw: Callable[[random.Random], tuple[str, int]]
    """``rng -> (prompt, value)``."""

    def sample(self, rng: random.Random) -> Problem:
        prompt, value = self.draw(rng)
        return Problem(self.name, prompt, str(value), target=value)

    def check(self, problem: Problem, completion: str) -> Verdict:
        return _check_integer(problem.target, completion)


def _arithmetic(cfg: TaskConfig) -> Callable[[random.Random], tuple[str, int]]:
    def draw(rng: random.Random) -> tuple[str, int]:
        op = rng.choice("+-*")
        a = rng.randint(0, cfg.arithmetic_max)
        b = rng.randint(0, 9) if op == "*" else rng.randint(0, cfg.arithmetic_max)
        if op == "-" and b > a:
            a, b = b, a  # non-negative differences
        value = a + b if op == "+" else a - b if op == "-" else a * b
        return f"A:{a}{op}{b}=", value

    return draw


_NAMES = ("ann", "bob", "cat", "dan", "eve", "fay", "gus", "ivy")


def _wordproblem(cfg: TaskConfig) -> Callable[[random.Random], tuple[str, int]]:
    def draw(rng: random.Random) -> tuple[str, int]:
        amount = rng.randint(1, cfg.word_max)
        parts = [f"{rng.choice(_NAMES)} has {amount}"]
        for _ in range(cfg.word_steps):
            kind = rng.choice(("gets", "loses", "doubles"))
            if kind == "loses" and amount == 0:
                kind = "gets"
            if kind == "doubles":
                parts.append("doubles")
                amount *= 2
            elif kind == "gets":
                n = rng.randint(1, cfg.word_max)
                parts.append(f"gets {n}")
                amount += n
            else:
                n = rng.randint(1, min(cfg.word_max, amount))  # never below zero
                parts.append(f"loses {n}")
                amount -= n
        return "W:" + ",".join(parts) + "?", amount

    return draw


# ---------------------------------------------------------------------------------------------
# Countdown: an exact parser of expressions over + - * and parentheses (never ``eval``).


class _ParseError(ValueError):
    pass


def parse_countdown(text: str) -> tuple[int, list[int]]:
    """Value of a countdown expression and the numbers it uses, in order.

    Grammar: ``expr := term (('+'|'-') term)*``, ``term := factor ('*' factor)*``,
    ``factor := number | '(' expr ')'``, ``number := 0 | [1-9][0-9]*``; no spaces, nothing else.

    Raises:
        ValueError: ``text`` is not such an expression.
    """
    pos = 0
    numbers: list[int] = []

    def peek() -> str:
        return text[pos] if pos < len(text) else ""

    def factor() -> int:
        nonlocal pos
        if peek() == "(":
            pos += 1
            value = expr()
            if peek() != ")":
                raise _ParseError("unbalanced parenthesis")
            pos += 1
            return value
        match = re.compile(r"0|[1-9][0-9]*").match(text, pos)
        if match is None:
            raise _ParseError(f"expected a number at {pos}")
        pos = match.end()
        numbers.append(int(match.group()))
        return numbers[-1]

    def term() -> int:
        nonlocal pos
        value = factor()
        while peek() == "*":
            pos += 1
            value *= factor()
        return value

    def expr() -> int:
        nonlocal pos
        value = term()
        while peek() in ("+", "-") and peek() != "":
            op = peek()
            pos += 1
            rhs = term()
            value = value + rhs if op == "+" else value - rhs
        return value

    value = expr()
    if pos != len(text):
        raise _ParseError(f"unexpected {text[pos]!r} at {pos}")
    return value, numbers


@dataclasses.dataclass(frozen=True)
class CountdownTask:
    """Reach a target with the given numbers, each used exactly once, with + - * and
    parentheses (a small Countdown, as in the paper's multi-domain mixture)."""

    cfg: TaskConfig
    name: str = "countdown"

    def sample(self, rng: random.Random) -> Problem:
        while True:
            numbers = [
                rng.randint(1, self.cfg.countdown_max) for _ in range(self.cfg.countdown_numbers)
            ]
            text = str(numbers[0])
            additive = False  # whether the expression so far ends in a top-level + or -
            for n in numbers[1:]:
                op = rng.choice("+-*")
                if op == "*" and additive:
                    text = f"({text})*{n}"
                    additive = False
                else:
                    text = f"{text}{op}{n}"
                    additive = additive or op != "*"
            value, _ = parse_countdown(text)
            if value >= 0:
                break
        shown = numbers[:]
        rng.shuffle(shown)  # the prompt's order is not the answer's
        prompt = "C:" + ",".join(map(str, shown)) + f">{value}="
        return Problem(self.name, prompt, text, numbers=tuple(shown), target=value)

    def check(self, problem: Problem, completion: str) -> Verdict:
        try:
            value, used = parse_countdown(completion)
        except ValueError:
            return Verdict.MALFORMED
        if Counter(used) != Counter(problem.numbers):
            return Verdict.MALFORMED  # not an answer to this problem: other numbers
        return Verdict.CORRECT if value == problem.target else Verdict.WRONG


@dataclasses.dataclass(frozen=True)
class StringTask:
    """Transform a random string of ``alphabet``: sorting (digits ascending) or reversal
    (letters backwards). Malformed: not a string of ``alphabet`` of the answer's length."""

    name: str
    tag: str
    """The prompt's prefix letter."""
    alphabet: str
    min_length: int
    max_length: int
    transform: Callable[[str], str]

    def sample(self, rng: random.Random) -> Problem:
        n = rng.randint(self.min_length, self.max_length)
        text = "".join(rng.choice(self.alphabet) for _ in range(n))
        return Problem(self.name, f"{self.tag}:{text}=", self.transform(text))

    def check(self, problem: Problem, completion: str) -> Verdict:
        if len(completion) != len(problem.answer) or any(
            c not in self.alphabet for c in completion
        ):
            return Verdict.MALFORMED
        return Verdict.CORRECT if completion == problem.answer else Verdict.WRONG


def make_tasks(names: Sequence[str], cfg: TaskConfig | None = None) -> dict[str, Task]:
    """The tasks ``names`` (in that order) with sizes ``cfg``.

    Raises:
        ValueError: an unknown task name.
    """
    cfg = TaskConfig() if cfg is None else cfg
    build: Mapping[str, Callable[[], Task]] = {
        "arithmetic": lambda: IntegerTask("arithmetic", _arithmetic(cfg)),
        "countdown": lambda: CountdownTask(cfg),
        "wordproblem": lambda: IntegerTask("wordproblem", _wordproblem(cfg)),
        "sorting": lambda: StringTask(
            "sorting",
            "S",
            string.digits,
            cfg.sort_min_length,
            cfg.sort_max_length,
            lambda text: "".join(sorted(text)),
        ),
        "reversal": lambda: StringTask(
            "reversal",
            "R",
            string.ascii_lowercase,
            cfg.reverse_min_length,
            cfg.reverse_max_length,
            lambda text: text[::-1],
        ),
    }
    tasks: dict[str, Task] = {}
    for name in names:
        if name not in build:
            raise ValueError(f"unknown task {name!r}; tasks: {', '.join(ALL_TASKS)}")
        tasks[name] = build[name]()
    return tasks
