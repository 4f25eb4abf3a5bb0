"""Synthetic multi-step arithmetic word problems: the embedded default task.

Each problem is a short story ("Ben has 3 coins. He multiplies his coins by 5. Then he sells 20.
How many coins does he have?") whose reference solution is GSM8K-shaped: one operation per line,
then a final `#### <answer>` line:

    3*5=15
    15-20=...            (never: subtraction never goes below 1)
    #### 25

Difficulty knobs (`ArithConfig`): number of operations, operand range, operators, the
multiplication factor range and a cap on every intermediate value. The defaults are mix "B" of
shared/reference/embedded-default-calibration.md (operands 1-20, + - x, x by 2-5, values <= 300,
2-5 operations), where a 0.54M-parameter model trained 2,000 steps reaches about 45% greedy with
step-level mistakes (misread operands and arithmetic slips) spread over all lines.

Splits are disjoint by construction: a problem belongs to the test split iff a hash of its
question text falls in the test bucket (`test_fraction`); the train generator rejects test-bucket
questions and the test generator keeps only them. Everything is seeded.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Iterator

from envs.base import Problem, TaskError, take_distinct

__all__ = ["ArithConfig", "make_problem", "iter_problems", "load_arith", "split_of", "vocabulary_words",
           "NAMES", "ITEMS"]

NAMES: tuple[tuple[str, str, str], ...] = (  # (name, subject pronoun, possessive)
    ("Ben", "He", "his"), ("Tom", "He", "his"), ("Sam", "He", "his"), ("Max", "He", "his"),
    ("Leo", "He", "his"), ("Jack", "He", "his"), ("Omar", "He", "his"), ("Ravi", "He", "his"),
    ("Ana", "She", "her"), ("Mia", "She", "her"), ("Eva", "She", "her"), ("Zoe", "She", "her"),
    ("Lily", "She", "her"), ("Emma", "She", "her"), ("Nina", "She", "her"), ("Rosa", "She", "her"),
)
ITEMS: tuple[str, ...] = (
    "apples", "coins", "marbles", "stickers", "books", "cards", "pens", "shells", "stamps", "eggs",
    "cookies", "rocks", "beads", "toys", "candies", "flowers",
)
_ADD = ("buys {n} more", "finds {n} more", "gets {n} more")
_SUB = ("gives away {n}", "loses {n}", "sells {n}")
_MUL = ("multiplies {pos} {item} by {n}",)
_MUL_WORDS = {2: "doubles {pos} {item}", 3: "triples {pos} {item}"}


@dataclass
class ArithConfig:
    """Difficulty and splitting of the synthetic arithmetic task (the `arith` block)."""
    min_ops: int = 2
    """Fewest operations (solution lines before `####`)."""
    max_ops: int = 5
    """Most operations; the count is uniform in [min_ops, max_ops]."""
    operand_min: int = 1
    """Smallest starting amount and add/subtract operand."""
    operand_max: int = 20
    """Largest starting amount and add/subtract operand."""
    ops: list[str] = field(default_factory=lambda: ["+", "-", "*"])
    """Operators to draw from: any of + - *."""
    mul_min: int = 2
    """Smallest multiplication factor."""
    mul_max: int = 5
    """Largest multiplication factor."""
    value_cap: int = 300
    """No intermediate value may exceed this; operations that would are not drawn."""
    test_fraction: float = 0.1
    """Share of the question space reserved for the test split (hash bucket)."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"arith: need 1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        if not 1 <= self.operand_min <= self.operand_max:
            raise ValueError("arith: need 1 <= operand_min <= operand_max")
        bad = [o for o in self.ops if o not in ("+", "-", "*")]
        if bad or not self.ops:
            raise ValueError(f"arith: ops must be a non-empty subset of + - *, got {self.ops}")
        if not 2 <= self.mul_min <= self.mul_max:
            raise ValueError("arith: need 2 <= mul_min <= mul_max")
        if self.value_cap < self.operand_max:
            raise ValueError("arith: value_cap must be >= operand_max")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError("arith: test_fraction must be in (0, 1)")


def split_of(question: str, test_fraction: float) -> str:
    """Which split a question belongs to: 'test' iff its hash falls in the test bucket."""
    h = int.from_bytes(hashlib.blake2b(question.encode(), digest_size=8).digest(), "big")
    return "test" if (h % 1_000_000) < test_fraction * 1_000_000 else "train"


def _legal_ops(value: int, cfg: ArithConfig) -> list[str]:
    legal = []
    for op in cfg.ops:
        if op == "+" and value + cfg.operand_min <= cfg.value_cap:
            legal.append(op)
        elif op == "-" and value - cfg.operand_min >= 1:
            legal.append(op)
        elif op == "*" and value * cfg.mul_min <= cfg.value_cap:
            legal.append(op)
    return legal


def _draw_operand(op: str, value: int, rng: random.Random, cfg: ArithConfig) -> int:
    if op == "+":
        return rng.randint(cfg.operand_min, min(cfg.operand_max, cfg.value_cap - value))
    if op == "-":
        return rng.randint(cfg.operand_min, min(cfg.operand_max, value - 1))
    return rng.randint(cfg.mul_min, min(cfg.mul_max, cfg.value_cap // value))


def _phrase(op: str, n: int, pos: str, item: str, rng: random.Random) -> str:
    if op == "+":
        return rng.choice(_ADD).format(n=n)
    if op == "-":
        return rng.choice(_SUB).format(n=n)
    if n in _MUL_WORDS and rng.random() < 0.5:
        return _MUL_WORDS[n].format(pos=pos, item=item)
    return _MUL[0].format(pos=pos, item=item, n=n)


def make_problem(rng: random.Random, cfg: ArithConfig) -> tuple[str, str, int, int]:
    """Draw one problem.

    Returns:
        (question, solution, answer, number of operations); `solution` is the lines
        `a<op>b=c` joined by newlines plus a final `#### answer` line (no trailing newline).
    """
    name, subj, pos = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    n_ops = rng.randint(cfg.min_ops, cfg.max_ops)
    value = rng.randint(cfg.operand_min, cfg.operand_max)
    sentences = [f"{name} has {value} {item}."]
    lines = []
    for k in range(n_ops):
        legal = _legal_ops(value, cfg)
        if not legal:  # cannot happen with validated configs, but never loop forever
            break
        op = rng.choice(legal)
        n = _draw_operand(op, value, rng, cfg)
        new = value + n if op == "+" else value - n if op == "-" else value * n
        lead = subj if k == 0 else f"Then {subj.lower()}"
        sentences.append(f"{lead} {_phrase(op, n, pos, item, rng)}.")
        lines.append(f"{value}{op}{n}={new}")
        value = new
    verb = "does" if subj in ("He", "She") else "do"
    sentences.append(f"How many {item} {verb} {subj.lower()} have?")
    solution = "\n".join(lines + [f"#### {value}"])
    return " ".join(sentences), solution, value, len(lines)


def iter_problems(split: str, cfg: ArithConfig, seed: int = 0) -> Iterator[Problem]:
    """Endless stream of problems of one split (train may repeat; use `load_arith` for unique sets)."""
    if split not in ("train", "test"):
        raise TaskError(f"arith: unknown split {split!r} (use 'train' or 'test')")
    rng = random.Random(f"arith-{split}-{seed}")
    while True:
        question, solution, answer, n_ops = make_problem(rng, cfg)
        if split_of(question, cfg.test_fraction) != split:
            continue
        digest = hashlib.blake2b(question.encode(), digest_size=6).hexdigest()
        yield Problem(id=f"arith/{split}/{digest}", task="arith", question=question,
                      answer=str(answer), solution=solution, meta=(("ops", str(n_ops)),))


def load_arith(split: str, n: int, cfg: ArithConfig | None = None, seed: int = 0) -> list[Problem]:
    """`n` distinct problems of `split` (deterministic in `seed`)."""
    cfg = cfg or ArithConfig()
    if n < 0:
        raise TaskError(f"arith: n must be >= 0, got {n}")
    return take_distinct(iter_problems(split, cfg, seed), n,
                         f"arith: cannot draw {n} distinct {split} problems with this config")


def vocabulary_words() -> list[str]:
    """Every word the generator can emit (for building the closed-vocabulary tokenizer)."""
    words = set()
    for name, subj, pos in NAMES:
        words.update([name, subj, subj.lower(), pos])
    words.update(ITEMS)
    for phrase in _ADD + _SUB + _MUL + tuple(_MUL_WORDS.values()):
        words.update(w for w in phrase.replace("{n}", "").replace("{pos}", "").replace("{item}", "").split())
    words.update(["has", "Then", "How", "many", "does", "do", "have"])
    return sorted(words)
