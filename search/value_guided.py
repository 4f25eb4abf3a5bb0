"""Test-time search at stated budgets: best-of-N, value-guided step beam search, MCTS.

All three take prompts + problems, a policy `Generator` and (where they rank) a `ValueFn`, batch
every problem into each model call, stop at an expansion budget (samples, beam rounds,
simulations) and optionally a per-problem token budget, and return one `SearchTrace` per
problem with its generated tokens, model calls and model vs tree seconds (`search.ledger`), so
methods are compared at equal cost (peers.md 8.1; DESIGN "Performance principles").

- `best_of_n`: N full samples; the answer is the sample the value ranks highest (BEST), the
  most common final answer (MAJORITY, maj@N; needs no value), or the answer with the largest
  total value (WEIGHTED, value-weighted voting). Answers are compared after
  `envs.grading.extract_answer` + `normalize_answer`. Recent evidence says weighted best-of-N
  is a strong baseline that tree search often fails to beat (peers.md summary point 5).
- `beam_search`: OREO's value-guided step beam search (arXiv 2412.16145 section 4.4;
  algorithms.md 2.7): keep B partial solutions, sample B next steps from each (stop at the step
  delimiter), score all candidates with the value, move candidates that did not stop at a
  delimiter (EOS or length) to a finished pool, keep the best B distinct unfinished ones (a
  candidate whose response text equals another's is kept once, so duplicates of one step
  cannot fill the beam); after at most
  `max_rounds` rounds (20) the answer is the finished candidate with the highest value (the best
  unfinished one if nothing finished).
- `mcts_search`: `search.mcts.StepMCTS` as a test-time method.

Test time never sees a reference: every function refuses a ValueFn with `uses_reference`
(the outcome grader, a hinted self-evaluation) and MCTS refuses `reference_guidance`
(algorithms.md 8.10).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import numpy as np

from envs.base import Problem
from envs.grading import extract_answer, normalize_answer
from reasoner.generation import FinishReason, Generator, SamplingParams
from reasoner.records import SearchTrace, TraceStep
from reasoner.steps import StepFormat, split_steps
from search.evaluators import SearchState, ValueFn
from search.ledger import Ledger, SearchStats
from search.mcts import MCTSConfig, StepMCTS, step_text

__all__ = ["BestOfNMode", "BestOfNConfig", "BeamConfig", "SearchOutput", "best_of_n", "beam_search",
           "mcts_search", "vote"]


@dataclass(frozen=True, slots=True)
class SearchOutput:
    """Per-problem traces and the totals of one batched test-time search."""
    traces: list[SearchTrace]
    stats: SearchStats


def _check_test_time(value_fn: ValueFn | None) -> None:
    if value_fn is not None and getattr(value_fn, "uses_reference", False):
        raise ValueError("test-time search cannot use a ValueFn that reads the reference answer")


def _trace(problem: Problem, method: str, response: str, steps: tuple[TraceStep, ...], ledger: Ledger,
           b: int) -> SearchTrace:
    return SearchTrace(problem_id=problem.id, method=method, response=response, steps=steps,
                       generated_tokens=int(ledger.tokens[b]), model_calls=int(ledger.calls[b]),
                       model_seconds=float(ledger.model_seconds[b]), tree_seconds=float(ledger.tree_seconds[b]),
                       wall_seconds=ledger.wall_seconds(b))


# ---------------------------------------------------------------------------------- best-of-N
class BestOfNMode(str, Enum):
    """How best-of-N picks its answer."""
    BEST = "best"
    """The sample with the highest value (plain best-of-N)."""
    MAJORITY = "majority"
    """The most common final answer (maj@N); no value needed."""
    WEIGHTED = "weighted"
    """The final answer with the largest summed value (value-weighted voting)."""


@dataclass
class BestOfNConfig:
    """Best-of-N / majority voting (the `best_of_n` block of a recipe)."""
    n: int = 8
    """Samples per problem, at most (the expansion budget)."""
    mode: BestOfNMode = BestOfNMode.WEIGHTED
    """best, majority or weighted."""
    samples_per_round: int = 0
    """Samples drawn per round (0 = all n at once); with a token budget, rounds stop early."""
    max_tokens: int = 256
    """New tokens per sample."""
    temperature: float = 1.0
    """Sampling temperature."""
    token_budget: int = 0
    """Generated tokens per problem after which no further round starts (0 = none)."""
    seed: int = 0
    """Seed of the sampling calls."""

    def __post_init__(self) -> None:
        self.mode = BestOfNMode(self.mode)
        if self.n < 1 or self.max_tokens < 1 or self.samples_per_round < 0 or self.token_budget < 0:
            raise ValueError("best_of_n: need n, max_tokens >= 1 and samples_per_round, token_budget >= 0")


def vote(responses: Sequence[str], weights: Sequence[float] | None = None) -> int:
    """Index of the response whose final answer has the largest total weight (count if None).

    Responses without an answer vote only if none has one. Ties go to the answer seen first;
    within the winning answer, the response with the largest weight (the first one) is returned.
    """
    weights = [1.0] * len(responses) if weights is None else list(weights)
    keys = []
    for r in responses:
        ans = extract_answer(r)
        keys.append(None if ans is None else normalize_answer(ans))
    voters = [i for i, k in enumerate(keys) if k is not None] or list(range(len(responses)))
    total: dict[str | None, float] = defaultdict(float)
    for i in voters:
        total[keys[i]] += weights[i]
    best = max(total, key=lambda k: (total[k], -min(i for i in voters if keys[i] == k)))
    members = [i for i in voters if keys[i] == best]
    return max(members, key=lambda i: (weights[i], -i))


def best_of_n(generator: Generator, prompts: Sequence[str], problems: Sequence[Problem],
              cfg: BestOfNConfig | None = None, value_fn: ValueFn | None = None,
              step_format: StepFormat | None = None) -> SearchOutput:
    """Sample up to N responses per problem (batched over problems) and pick one per `cfg.mode`."""
    cfg, fmt = cfg or BestOfNConfig(), step_format or StepFormat()
    if cfg.mode != BestOfNMode.MAJORITY and value_fn is None:
        raise ValueError(f"best_of_n mode {cfg.mode.value} needs a value_fn")
    _check_test_time(value_fn)
    ledger, b = Ledger(len(prompts)), len(prompts)
    samples: list[list[str]] = [[] for _ in range(b)]
    per_round = cfg.samples_per_round or cfg.n
    rnd = 0
    while True:
        live = [i for i in range(b) if len(samples[i]) < cfg.n
                and not (cfg.token_budget and ledger.tokens[i] >= cfg.token_budget)]
        if not live:
            break
        with ledger.round(live):
            n = min(per_round, min(cfg.n - len(samples[i]) for i in live))
            params = SamplingParams(n=n, max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                                    seed=cfg.seed * 1_000_003 + rnd)
            with ledger.model_call(live, [n] * len(live)):
                out = generator.generate([prompts[i] for i in live], params)
            for i, row in zip(live, out):
                for c in row:
                    ledger.add_tokens(i, c.num_tokens)
                    samples[i].append(c.text)
        rnd += 1
    values = _score_responses(ledger, prompts, problems, samples, value_fn, fmt)
    traces = []
    for i in range(b):
        with ledger.round([i]):
            pick = (int(np.argmax(values[i])) if cfg.mode == BestOfNMode.BEST
                    else vote(samples[i], values[i] if cfg.mode == BestOfNMode.WEIGHTED else None))
        alts = tuple((s, v, 0) for j, (s, v) in enumerate(zip(samples[i], values[i])) if j != pick)
        step = TraceStep(text=samples[i][pick], value=values[i][pick], visits=len(samples[i]), alternatives=alts)
        traces.append(_trace(problems[i], f"best_of_n/{cfg.mode.value}", samples[i][pick], (step,), ledger, i))
    return SearchOutput(traces, ledger.totals())


def _score_responses(ledger: Ledger, prompts, problems, samples, value_fn, fmt) -> list[list[float]]:
    """Values of every sample (one batched call), or zeros without a value function."""
    if value_fn is None:
        return [[0.0] * len(s) for s in samples]
    who = [i for i, s in enumerate(samples) for _ in s]
    states = [SearchState(problems[i], prompts[i], r, len(split_steps(r, fmt)), True)
              for i, s in enumerate(samples) for r in s]
    with ledger.model_call(who):
        flat = value_fn.values(states)
    out, k = [], 0
    for s in samples:
        out.append([float(v) for v in flat[k:k + len(s)]])
        k += len(s)
    return out


# ---------------------------------------------------------------------------------- beam search
@dataclass
class BeamConfig:
    """OREO's value-guided step beam search (the `beam` block of a recipe)."""
    beam_width: int = 3
    """B: partial solutions kept, and next steps sampled from each (OREO script default 3)."""
    max_rounds: int = 20
    """Expansion rounds at most (OREO: 20)."""
    max_step_tokens: int = 256
    """New tokens per sampled step."""
    temperature: float = 1.0
    """Sampling temperature (OREO: 1)."""
    token_budget: int = 0
    """Generated tokens per problem after which its beams stop growing (0 = none)."""
    seed: int = 0
    """Seed of the sampling calls."""

    def __post_init__(self) -> None:
        if self.beam_width < 1 or self.max_rounds < 1 or self.max_step_tokens < 1 or self.token_budget < 0:
            raise ValueError("beam: need beam_width, max_rounds, max_step_tokens >= 1, token_budget >= 0")


@dataclass
class _Beam:
    response: str
    steps: tuple[tuple[str, float, tuple], ...]   # (step, value after it, (sibling step, value, 0) ...)
    value: float


def beam_search(generator: Generator, value_fn: ValueFn, prompts: Sequence[str], problems: Sequence[Problem],
                cfg: BeamConfig | None = None, step_format: StepFormat | None = None) -> SearchOutput:
    """Value-guided step beam search over all problems at once (one sampling and one value call per round)."""
    cfg, fmt = cfg or BeamConfig(), step_format or StepFormat()
    _check_test_time(value_fn)
    n, ledger = len(prompts), Ledger(len(prompts))
    beams: list[list[_Beam]] = [[_Beam("", (), 0.0)] for _ in range(n)]
    finished: list[list[_Beam]] = [[] for _ in range(n)]
    for rnd in range(cfg.max_rounds):
        live = [i for i in range(n) if beams[i] and not (cfg.token_budget and ledger.tokens[i] >= cfg.token_budget)]
        if not live:
            break
        with ledger.round(live):
            parents = [(i, bm) for i in live for bm in beams[i]]
            params = SamplingParams(n=cfg.beam_width, max_tokens=cfg.max_step_tokens, temperature=cfg.temperature,
                                    stop=fmt.stop, seed=cfg.seed * 1_000_003 + rnd)
            who = [i for i, _ in parents]
            with ledger.model_call(who, [cfg.beam_width] * len(who)):
                out = generator.generate([prompts[i] + bm.response for i, bm in parents], params)
            cands = []   # (problem, parent beam, step, done)
            for (i, bm), row in zip(parents, out):
                for c in row:
                    ledger.add_tokens(i, c.num_tokens)
                    cands.append((i, bm, step_text(c), c.finish_reason != FinishReason.STOP))
            states = [SearchState(problems[i], prompts[i], bm.response + s, len(bm.steps) + 1, done)
                      for i, bm, s, done in cands]
            with ledger.model_call([c[0] for c in cands]):
                values = value_fn.values(states)
            nxt: dict[int, list[_Beam]] = {i: [] for i in live}
            siblings: dict[int, list[tuple[str, float, int]]] = {}   # id(parent beam) -> its candidates
            for (i, bm, s, done), v in zip(cands, values):
                siblings.setdefault(id(bm), []).append((s, float(v), 0))
            seen: set[tuple[int, str]] = set()      # (problem, response): identical beams kept once
            for (i, bm, s, done), v in zip(cands, values):
                if (i, bm.response + s) in seen:
                    continue
                seen.add((i, bm.response + s))
                alts = tuple(a for a in siblings[id(bm)] if a[0] != s)
                beam = _Beam(bm.response + s, bm.steps + ((s, float(v), alts),), float(v))
                (finished[i] if done else nxt[i]).append(beam)
            for i in live:
                beams[i] = sorted(nxt[i], key=lambda x: -x.value)[:cfg.beam_width]
    traces = []
    for i in range(n):
        pool = finished[i] or beams[i] or [_Beam("", (), 0.0)]
        best = max(pool, key=lambda x: x.value)
        steps = tuple(TraceStep(text=s, value=v, visits=0, alternatives=alts) for s, v, alts in best.steps)
        traces.append(_trace(problems[i], "beam", best.response, steps, ledger, i))
    return SearchOutput(traces, ledger.totals())


# ---------------------------------------------------------------------------------- MCTS
def mcts_search(generator: Generator, value_fn: ValueFn, prompts: Sequence[str], problems: Sequence[Problem],
                cfg: MCTSConfig | None = None, step_format: StepFormat | None = None) -> SearchOutput:
    """Step-level MCTS as a test-time method (budget: `cfg.num_simulations`, `cfg.token_budget`)."""
    cfg = cfg or MCTSConfig()
    _check_test_time(value_fn)
    if cfg.reference_guidance:
        raise ValueError("reference_guidance is training-only; turn it off for test-time search")
    result = StepMCTS(generator, value_fn, cfg, step_format).search(prompts, problems)
    return SearchOutput(result.traces, result.stats)
