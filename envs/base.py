"""Task records shared by every dataset: a `Problem` with a checkable reference answer.

Math-style tasks (arith, GSM8K, MATH, MATH-500) all produce `Problem`s; the grader
(`envs.grading.grade`) compares a model response with `Problem.answer`. Interactive
environments (ALFWorld, NetHack) live in their own modules with an `Env` interface.

This package stands alone: it imports nothing from search, rl, reasoner or launch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Problem", "TaskError"]


class TaskError(ValueError):
    """A task name, split or data file is unknown, missing or empty."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One question with a reference answer.

    Attributes:
        id: stable identifier, unique within its task (e.g. "gsm8k/test/17", "arith/test/3f2a...").
        task: task name ("arith", "gsm8k", "math", "math500").
        question: the problem statement shown to the model.
        answer: reference final answer, as graded (e.g. "25", "\\frac{1}{2}").
        solution: reference worked solution (steps one per line for GSM8K-style tasks), or "".
        meta: small extra facts (difficulty level, subject, number of steps) as (key, value) pairs.
    """
    id: str
    task: str
    question: str
    answer: str
    solution: str = ""
    meta: tuple[tuple[str, str], ...] = field(default=())

    def meta_dict(self) -> dict[str, str]:
        return dict(self.meta)
