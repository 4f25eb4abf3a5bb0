"""Fakes at the edge of search (the tests import this module as `search_fakes`).

- `ChainPolicy`: a deterministic "policy" for arithmetic chains. At every step it proposes the
  slip (result + 1) first, with the higher log-probability, then the right step; after the last
  operation it proposes the answer line `#### x` (EOS) for whatever value the last line reached.
  Greedy decoding therefore always slips, and only the path of right steps is correct.
- `CannedGenerator`: answers prompts from a fixed table {prefix: [(text, logprobs, finish)]},
  rotating through the options for n > len(options).
- `TableValue`: a ValueFn reading values from {response: value}.
- `LineCheckValue`: a fake process reward for the chain toy: 0.5 * the share of lines
  `a<op>b=c` whose arithmetic is right (what a perfect self-evaluation would say, scaled
  below the terminal reward of 1).
"""
from __future__ import annotations

import zlib

import re

from envs.base import Problem
from reasoner.generation import Completion, FinishReason, GenerationStats, SamplingParams, ScoredContinuation


class CannedGenerator:
    """Generator over a table: prompt -> list of (text, logprobs, finish). Text keeps no delimiter."""

    def __init__(self, table: dict[str, list[tuple[str, tuple[float, ...], FinishReason]]],
                 scores: dict[tuple[str, str], tuple[float, ...]] | None = None):
        self.table = table
        self.scores = scores or {}
        self.stats = GenerationStats()
        self.calls: list[tuple[list[str], SamplingParams]] = []

    def options(self, prompt: str):
        return self.table[prompt]

    def generate(self, prompts, params: SamplingParams) -> list[list[Completion]]:
        self.calls.append((list(prompts), params))
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        out = []
        for p in prompts:
            opts = self.options(p)
            if params.temperature == 0:
                opts = [max(opts, key=lambda o: sum(o[1]))]
            row = []
            for j in range(params.n):
                text, lps, fin = opts[j % len(opts)]
                if not params.stop:   # no stop strings: keep going to the end, one line per step
                    text, lps, fin = self._to_the_end(p, text, lps, fin)
                stop = params.stop[0] if fin == FinishReason.STOP else None
                row.append(Completion(text, tuple(range(len(lps))), tuple(lps), fin, stop))
                self.stats.generated_tokens += len(lps)
            out.append(row)
        return out

    def _to_the_end(self, prompt, text, lps, fin):
        while fin == FinishReason.STOP:
            nxt_text, nxt_lps, fin = max(self.options(prompt + text + "\n"), key=lambda o: sum(o[1]))
            text, lps = text + "\n" + nxt_text, tuple(lps) + tuple(nxt_lps)
        return text, lps, fin

    def logprobs(self, prompts, continuations) -> list[ScoredContinuation]:
        self.stats.calls += 1
        out = []
        for p, c in zip(prompts, continuations):
            lps = self.scores.get((p, c), (-1.0,) * max(1, len(c.split())))
            ids = tuple(zlib.crc32(f"{c}/{i}".encode()) % 10_000 for i in range(len(lps)))  # distinct per text
            out.append(ScoredContinuation(ids, tuple(lps)))
        return out


class ChainPolicy(CannedGenerator):
    """The arithmetic-chain toy: problems 'chain: start OP n OP n ...' (see module docstring)."""

    SLIP_LOGPROBS = (-0.2, -0.3)
    RIGHT_LOGPROBS = (-0.9, -1.1)

    def __init__(self, problems: list[Problem], propose_right: bool = True):
        super().__init__({})
        self.by_prompt = {prompt_of(p): p for p in problems}
        self.propose_right = propose_right

    def options(self, prompt: str):
        head = next(h for h in self.by_prompt if prompt.startswith(h))
        ops = parse_ops(self.by_prompt[head].question)
        lines = [ln for ln in prompt[len(head):].split("\n") if ln]
        value = int(lines[-1].split("=")[-1]) if lines else ops[0][1]
        if len(lines) == len(ops) - 1:
            return [(f"#### {value}", (-0.1, -0.1), FinishReason.EOS)]
        op, n = ops[len(lines) + 1]
        right = apply(value, op, n)
        opts = [(f"{value}{op}{n}={right + 1}", self.SLIP_LOGPROBS, FinishReason.STOP)]
        if self.propose_right:
            opts.append((f"{value}{op}{n}={right}", self.RIGHT_LOGPROBS, FinishReason.STOP))
        return opts


def parse_ops(question: str) -> list[tuple[str, int]]:
    """'chain: 3 +2 *3' -> [('', 3), ('+', 2), ('*', 3)]."""
    tokens = question.split(":", 1)[1].split()
    return [("", int(tokens[0]))] + [(t[0], int(t[1:])) for t in tokens[1:]]


def apply(value: int, op: str, n: int) -> int:
    return value + n if op == "+" else value - n if op == "-" else value * n


def chain_problem(i: int, question: str) -> Problem:
    ops = parse_ops(question)
    value, lines = ops[0][1], []
    for op, n in ops[1:]:
        new = apply(value, op, n)
        lines.append(f"{value}{op}{n}={new}\n")
        value = new
    return Problem(id=f"chain/{i}", task="chain", question=question, answer=str(value),
                   solution="".join(lines) + f"#### {value}")


def prompt_of(p: Problem) -> str:
    return f"Q: {p.question}\nA:\n"


class TableValue:
    """ValueFn from a table {response: value} (default 0), recording every call."""

    uses_reference = False

    def __init__(self, table: dict[str, float]):
        self.table = table
        self.calls: list[list] = []

    def values(self, states):
        self.calls.append(list(states))
        return [self.table.get(s.response, 0.0) for s in states]


class LineCheckValue:
    """Fake process reward: 0.5 * share of right `a<op>b=c` lines (0 for an empty response)."""

    uses_reference = False

    def values(self, states):
        out = []
        for s in states:
            lines = [ln for ln in s.response.split("\n") if "=" in ln]
            right = sum(apply(int(re.split(r"[-+*]", a)[0]), re.search(r"[-+*]", a).group(),
                              int(re.split(r"[-+*]", a)[1])) == int(c)
                        for a, c in (ln.split("=") for ln in lines))
            out.append(0.5 * right / len(lines) if lines else 0.0)
        return out
