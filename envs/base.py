"""Task records shared by every dataset: a `Problem` with a checkable reference answer.

Math-style tasks (arith, GSM8K, MATH, MATH-500) all produce `Problem`s; the grader
(`envs.grading.grade`) compares a model response with `Problem.answer`. Interactive
environments (ALFWorld, NetHack) live in their own modules with an `Env` interface.

This package stands alone: it imports nothing from search, rl, reasoner or launch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, TypeVar

__all__ = ["Problem", "TaskError", "take_distinct"]


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


_P = TypeVar("_P")


def take_distinct(stream: Iterator[_P], n: int, error: str) -> list[_P]:
    """The first `n` items of `stream` with distinct `.id`, in stream order.

    Raises:
        TaskError(error): after 200 * (n + 10) draws without reaching `n` (the generator's
            space is too small for the request).
    """
    out, seen, tries = [], set(), 0
    while len(out) < n:
        p = next(stream)
        tries += 1
        if p.id not in seen:
            seen.add(p.id)
            out.append(p)
        elif tries > 200 * (n + 10):
            raise TaskError(error)
    return out
