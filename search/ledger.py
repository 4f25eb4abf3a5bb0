"""Cost accounting for batched search: generated tokens, model calls, model vs tree seconds.

Methods are only comparable at equal budgets (DESIGN "Performance principles"; peers.md 8.1),
so every search result reports what it spent. A batched search shares each model call among
many problems; the `Ledger` splits it:

- generated tokens: exact per problem (the tokens of its own completions);
- model calls: a batched `generate` / `logprobs` / `values` call counts once for every problem
  that had a row in it;
- model seconds: a call's time is split over its participants in proportion to their rows;
- tree seconds: everything else (PUCT, backup, bookkeeping, prompt building) is measured per
  round as wall time minus model time and split equally among the problems active in the round;
- wall seconds per problem = model + tree seconds; batch totals are measured directly.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

__all__ = ["Ledger", "SearchStats"]


@dataclass(frozen=True, slots=True)
class SearchStats:
    """Totals of one batched search call."""
    problems: int
    wall_seconds: float
    model_seconds: float
    tree_seconds: float
    model_calls: int          # batched calls made (each counted once)
    generated_tokens: int

    @property
    def tree_time_share(self) -> float:
        return self.tree_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


class Ledger:
    """Per-problem and total cost of one batched search over `n` problems."""

    def __init__(self, n: int):
        self.tokens = np.zeros(n, np.int64)          # [n]
        self.calls = np.zeros(n, np.int64)           # [n]
        self.model_seconds = np.zeros(n)             # [n]
        self.tree_seconds = np.zeros(n)              # [n]
        self.total_calls = 0
        self.total_model_seconds = 0.0
        self._round_model = 0.0
        self._start = time.perf_counter()

    @contextmanager
    def model_call(self, who: Sequence[int], rows: Sequence[int] | None = None) -> Iterator[None]:
        """Time one batched model call made for problems `who` (`rows[i]` rows for `who[i]`)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            if len(who):
                weights = np.ones(len(who)) if rows is None else np.asarray(rows, np.float64)
                np.add.at(self.model_seconds, np.asarray(who), dt * weights / max(weights.sum(), 1e-12))
                np.add.at(self.calls, np.unique(np.asarray(who)), 1)
            self.total_calls += 1
            self.total_model_seconds += dt
            self._round_model += dt

    @contextmanager
    def round(self, active: Sequence[int]) -> Iterator[None]:
        """Time one search round; its non-model time is tree time for the `active` problems."""
        t0 = time.perf_counter()
        self._round_model = 0.0
        try:
            yield
        finally:
            tree = time.perf_counter() - t0 - self._round_model
            if len(active):
                self.tree_seconds[np.asarray(active)] += tree / len(active)

    def add_tokens(self, problem: int, n: int) -> None:
        self.tokens[problem] += n

    def wall_seconds(self, problem: int) -> float:
        return float(self.model_seconds[problem] + self.tree_seconds[problem])

    def totals(self) -> SearchStats:
        wall = time.perf_counter() - self._start
        return SearchStats(problems=len(self.tokens), wall_seconds=wall,
                           model_seconds=self.total_model_seconds,
                           tree_seconds=wall - self.total_model_seconds,
                           model_calls=self.total_calls, generated_tokens=int(self.tokens.sum()))
