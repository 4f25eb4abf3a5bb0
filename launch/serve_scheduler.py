"""Interleaved model calls for the inference server: many requests in flight, one model thread.

The server runs each group of requests (`launch.serve_methods`) in its own thread, so a long
search (64-simulation MCTS: dozens of model calls) no longer holds the model for its whole
duration. Every model call of every thread goes through `ModelScheduler`:

- `generate(prompts, params)` and `logprobs(prompts, continuations)` enqueue a call and block
  until the model thread has run it;
- the model thread takes the oldest pending call of the more urgent class (interactive greedy /
  sample requests before search calls, except that a search call waiting longer than
  `max_search_wait_s` goes next, so searches progress under any greedy load) and merges into it every other pending call of the
  same kind with equal `SamplingParams` (the seed ignored when greedy; all pending `logprobs`
  calls merge), up to `max_rows`
  prompts; one backend call runs, the rows are split back to their callers;
- `run(fn, *args)` runs any other model work (the learned value) on the same thread, unmerged,
  so a backend that is not thread-safe (HF, with its prefix cache) is only ever used from there.

So a greedy request that arrives during an MCTS search waits for at most the search's model
call in flight, not for the search: the model interleaves the two at call granularity (the
search's next round and the greedy decode share the model, as vLLM's continuous batching
shares it at step granularity). Rows of merged sampling calls share one RNG stream (the
backends' convention), so a sampled call is reproducible only with the same call mates.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from reasoner.generation import Completion, SamplingParams, ScoredContinuation

__all__ = ["ModelScheduler", "ScheduledValue", "INTERACTIVE", "SEARCH"]

INTERACTIVE = 0
"""Priority of greedy / sample requests' calls (run first)."""
SEARCH = 1
"""Priority of search calls (best-of-N, beam, MCTS)."""


@dataclass(order=True)
class _Call:
    priority: int
    order: int
    kind: str = field(compare=False)                 # "generate" | "logprobs" | "run"
    args: tuple = field(compare=False)
    params: SamplingParams | None = field(compare=False)
    rows: int = field(compare=False)
    future: Future = field(compare=False, default_factory=Future)
    enqueued: float = field(compare=False, default_factory=time.monotonic)


class ModelScheduler:
    """A `Generator` shared by many threads; one model thread runs (and merges) their calls.

    Args:
        generator: the backend `Generator` (only the model thread touches it).
        max_rows: most prompts one merged backend call takes (the engine's max batch size).
        max_search_wait_s: a search call that has waited this long runs before interactive ones.
    """

    def __init__(self, generator, *, max_rows: int = 256, max_search_wait_s: float = 1.0):
        self.inner = generator
        self.max_rows = max_rows
        self.max_search_wait_s = max_search_wait_s
        self.merged_calls = 0          # backend calls that served more than one caller
        self._pending: list[_Call] = []
        self._cv = threading.Condition()
        self._order = itertools.count()
        self._local = threading.local()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="serve-model", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the Generator contract
    @property
    def stats(self):
        return self.inner.stats

    def __getattr__(self, name: str) -> Any:   # max_len, tokenizer, ... of the backend
        return getattr(self.inner, name)

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not one string")
        prompts = list(prompts)
        if not prompts:
            return []
        return self._submit("generate", (prompts,), params, len(prompts))

    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[ScoredContinuation]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        if not len(prompts):
            return []
        return self._submit("logprobs", (list(prompts), list(continuations)), None, len(prompts))

    def run(self, fn: Callable, *args, **kwargs):
        """`fn(*args, **kwargs)` on the model thread (other model work: the learned value)."""
        return self._submit("run", (fn, args, kwargs), None, 0)

    @contextlib.contextmanager
    def priority(self, level: int):
        """Calls made by this thread inside the block get priority `level` (lower runs first)."""
        old = getattr(self._local, "priority", SEARCH)
        self._local.priority = level
        try:
            yield
        finally:
            self._local.priority = old

    def close(self) -> None:
        """Stop the model thread; pending calls fail with RuntimeError."""
        with self._cv:
            self._closed = True
            for call in self._pending:
                call.future.set_exception(RuntimeError("model scheduler closed"))
            self._pending.clear()
            self._cv.notify_all()

    # ------------------------------------------------------------------ internals
    def _submit(self, kind: str, args: tuple, params, rows: int):
        if threading.current_thread() is self._thread:   # re-entrant use (a value fn that generates)
            return self._execute_one(kind, args, params)
        call = _Call(getattr(self._local, "priority", SEARCH), next(self._order), kind, args, params, rows)
        with self._cv:
            if self._closed:
                raise RuntimeError("model scheduler closed")
            self._pending.append(call)
            self._cv.notify()
        return call.future.result()

    def _take(self) -> list[_Call] | None:
        """The most urgent call plus every pending call that can share its backend call."""
        with self._cv:
            while not self._pending and not self._closed:
                self._cv.wait()
            if self._closed:
                return None
            self._pending.sort()
            head = self._pending[0]
            if head.priority == INTERACTIVE:   # a search call that waited too long goes first
                aged = next((c for c in self._pending if c.priority != INTERACTIVE
                             and time.monotonic() - c.enqueued > self.max_search_wait_s), None)
                head = aged or head
            self._pending.remove(head)
            group, rows = [head], head.rows
            if head.kind != "run":
                key = _merge_key(head.params)
                for call in list(self._pending):
                    if (call.kind == head.kind and _merge_key(call.params) == key
                            and rows + call.rows <= self.max_rows):
                        group.append(call)
                        rows += call.rows
                        self._pending.remove(call)
            return group

    def _loop(self) -> None:
        while True:
            group = self._take()
            if group is None:
                return
            head = group[0]
            if len(group) == 1:
                try:
                    head.future.set_result(self._execute_one(head.kind, head.args, head.params))
                except BaseException as e:  # noqa: BLE001 - the caller gets it; the thread lives
                    head.future.set_exception(e)
                continue
            try:
                self.merged_calls += 1
                if head.kind == "generate":
                    out = self.inner.generate([p for c in group for p in c.args[0]], head.params)
                else:
                    out = self.inner.logprobs([p for c in group for p in c.args[0]],
                                              [x for c in group for x in c.args[1]])
                k = 0
                for call in group:
                    call.future.set_result(out[k:k + call.rows])
                    k += call.rows
            except Exception:  # noqa: BLE001 - a merged call failed: each caller alone, own error
                for call in group:
                    if call.future.done():
                        continue
                    try:
                        call.future.set_result(self._execute_one(call.kind, call.args, call.params))
                    except Exception as e:  # noqa: BLE001
                        call.future.set_exception(e)
            except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt etc.: fail the callers
                for call in group:
                    if not call.future.done():
                        call.future.set_exception(e)

    def _execute_one(self, kind: str, args: tuple, params):
        if kind == "generate":
            return self.inner.generate(args[0], params)
        if kind == "logprobs":
            return self.inner.logprobs(args[0], args[1])
        fn, fargs, fkwargs = args
        return fn(*fargs, **fkwargs)


def _merge_key(params: SamplingParams | None):
    """Calls with equal keys share a backend call; greedy ignores the seed (no randomness)."""
    if params is None or params.temperature > 0:
        return params
    return dataclasses.replace(params, seed=None)


class ScheduledValue:
    """A `ValueFn` whose `values` run on the scheduler's model thread (the learned value is a model)."""

    def __init__(self, value_fn, scheduler: ModelScheduler):
        self.inner, self.scheduler = value_fn, scheduler
        self.uses_reference = value_fn.uses_reference

    def values(self, states):
        return self.scheduler.run(self.inner.values, states)
