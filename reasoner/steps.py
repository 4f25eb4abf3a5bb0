"""Reasoning steps: the one place that splits a response into steps and joins them back.

MCTS expansion (stop strings), OREO step masks, pair divergence and value-guided beam search all
use these functions, so a "step" means the same thing everywhere (algorithms.md section 8.5).

Convention: a step keeps its trailing delimiter, so `join_steps(split_steps(t)) == t` for every
text `t`, and character offsets of steps inside a response are exact. The last step of a
response has no delimiter when the response ends without one (e.g. the `#### 42` line before EOS).

Formats:
- GSM8K / arith: delimiter "\\n" (one step per line).
- MATH: "\\n", ". " and ".$ " (OREO appendix A.2), see `StepFormat.math()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StepFormat", "split_steps", "join_steps", "step_offsets", "common_prefix_steps"]


@dataclass
class StepFormat:
    """How responses are cut into steps (the `steps` block of a recipe)."""
    delimiters: list[str] = field(default_factory=lambda: ["\n"])
    """Strings that end a step (kept at the end of the step). Used as generation stop strings."""
    min_step_chars: int = 1
    """A piece shorter than this (without delimiter) is glued onto the next step (MCTS-DPO glues < 4)."""

    def __post_init__(self) -> None:
        if not self.delimiters or any(not d for d in self.delimiters):
            raise ValueError("steps.delimiters must be a non-empty list of non-empty strings")

    @classmethod
    def lines(cls) -> "StepFormat":
        return cls(delimiters=["\n"])

    @classmethod
    def math(cls) -> "StepFormat":
        return cls(delimiters=["\n", ". ", ".$ "])

    @property
    def stop(self) -> tuple[str, ...]:
        """Stop strings for generating exactly one step."""
        return tuple(self.delimiters)


def _next_cut(text: str, start: int, delimiters: list[str]) -> tuple[int, int]:
    """Earliest delimiter match at or after `start`: (match start, match end), or (-1, -1)."""
    best = (-1, -1)
    for d in delimiters:
        i = text.find(d, start)
        if i >= 0 and (best[0] < 0 or i < best[0] or (i == best[0] and i + len(d) > best[1])):
            best = (i, i + len(d))
    return best


def split_steps(text: str, fmt: StepFormat | None = None) -> list[str]:
    """Split `text` into steps, each keeping its trailing delimiter.

    Runs of consecutive delimiters stay with the step they end (so "a\\n\\nb" gives
    ["a\\n\\n", "b"]); pieces shorter than `fmt.min_step_chars` are glued to the next step.

    Returns:
        Steps whose concatenation is exactly `text` ([] for the empty string).
    """
    fmt = fmt or StepFormat()
    steps: list[str] = []
    pending = ""
    pos = 0
    while pos < len(text):
        i, j = _next_cut(text, pos, fmt.delimiters)
        if i < 0:
            steps.append(pending + text[pos:])
            pending = ""
            break
        # swallow immediately repeated delimiters into this step
        while True:
            i2, j2 = _next_cut(text, j, fmt.delimiters)
            if i2 != j:
                break
            j = j2
        piece = text[pos:j]
        body = text[pos:i]
        if len((pending + body).strip()) < fmt.min_step_chars and j < len(text):
            pending += piece
        else:
            steps.append(pending + piece)
            pending = ""
        pos = j
    if pending:
        steps.append(pending)
    return steps


def join_steps(steps: list[str] | tuple[str, ...]) -> str:
    """Inverse of `split_steps`: steps already carry their delimiters."""
    return "".join(steps)


def step_offsets(steps: list[str] | tuple[str, ...]) -> list[tuple[int, int]]:
    """Character span [start, end) of every step inside `join_steps(steps)`."""
    spans, pos = [], 0
    for s in steps:
        spans.append((pos, pos + len(s)))
        pos += len(s)
    return spans


def common_prefix_steps(a: list[str] | tuple[str, ...], b: list[str] | tuple[str, ...]) -> int:
    """Number of leading steps that `a` and `b` share exactly (pair divergence point)."""
    k = 0
    for x, y in zip(a, b):
        if x != y:
            break
        k += 1
    return k
