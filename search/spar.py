"""One round of SPaR self-play data collection (algorithms.md 4.2 steps 2-7), batched.

    actor samples (n per prompt) -> refiner judges each (majority of 5) -> one failing response
    per prompt -> tree-search refinement -> actor pairs + refiner RFT examples

`collect_spar` does it for a chunk of prompts with one actor `Generator` and one refiner
`Judge` / `RefinementSearch` (the judge's cache is shared by the actor-sample judging and the
tree). `collect_self_rewarding` is the baseline SPaR compares against (Self-Rewarding, Yuan et
al. 2024): pairs of independently sampled responses ranked by the same refiner's judgments
(highest-valued passing sample > lowest-valued failing sample), no refinement.

Judging is the refiner's alone: anything with `judge(items) -> list[Judgment]` can be passed as
`judge` (a test or the oracle upper bound passes a checker-backed one).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from reasoner.generation import Generator, SamplingParams
from reasoner.records import StepPair
from search.refine import Judgment, RefineConfig, RefinementSearch, RefineTree
from search.spar_data import RefinerExample, SparDataConfig, actor_pairs, refiner_examples, select_negatives

__all__ = ["JudgeLike", "SelfPlayOutput", "sample_actor", "collect_spar", "collect_self_rewarding"]


class JudgeLike(Protocol):
    def judge(self, items: Sequence[tuple[str, str]]) -> list[Judgment]: ...


@dataclass
class SelfPlayOutput:
    """What one chunk produced (pickles; no handles)."""
    pairs: list[StepPair]
    refiner_examples: list[RefinerExample]
    samples: list[list[str]]                 # [B][n] actor responses
    judgments: list[list[Judgment]]          # [B][n]
    negatives: list[int | None]              # [B] index of the refined response, or None
    trees: list[RefineTree] = field(default_factory=list)   # one per refined prompt
    tree_problems: list[int] = field(default_factory=list)  # [T] prompt index of each tree


def sample_actor(actor: Generator, prompts: Sequence[str], *, n: int, temperature: float, top_p: float,
                 max_tokens: int, seed: int) -> list[list[str]]:
    """n sampled responses per prompt (one generate call)."""
    outs = actor.generate(list(prompts), SamplingParams(n=n, max_tokens=max_tokens, temperature=temperature,
                                                        top_p=top_p, seed=seed))
    return [[c.text.strip() for c in row] for row in outs]


def _judge_samples(judge: JudgeLike, instructions: Sequence[str], samples: list[list[str]]) -> list[list[Judgment]]:
    flat = [(q, r) for q, row in zip(instructions, samples) for r in row]
    got = judge.judge(flat)
    out, k = [], 0
    for row in samples:
        out.append(got[k:k + len(row)])
        k += len(row)
    return out


def collect_spar(actor: Generator, search: RefinementSearch, instructions: Sequence[str], prompts: Sequence[str],
                 problem_ids: Sequence[str], *, n: int, temperature: float, top_p: float, max_tokens: int,
                 data_cfg: SparDataConfig, policy_version: int, seed: int, judge: JudgeLike | None = None
                 ) -> SelfPlayOutput:
    """SPaR steps 2-7 for a chunk (see module docstring). `prompts` are the actor's rendered prompts."""
    judge = judge or search.judge
    samples = sample_actor(actor, prompts, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    judgments = _judge_samples(judge, instructions, samples)
    negatives = select_negatives(judgments, random.Random(seed))
    chosen = [i for i, k in enumerate(negatives) if k is not None]
    trees = search.search([instructions[i] for i in chosen], [samples[i][negatives[i]] for i in chosen],
                          [judgments[i][negatives[i]].critique for i in chosen])
    pairs = actor_pairs(trees, [prompts[i] for i in chosen], [problem_ids[i] for i in chosen],
                        policy_version=policy_version, gate=search.cfg.gate)
    judged = [(instructions[i], r, j, problem_ids[i]) for i in range(len(prompts))
              for r, j in zip(samples[i], judgments[i])]
    examples = refiner_examples(trees, [problem_ids[i] for i in chosen], judged, data_cfg, search.cfg, seed=seed)
    return SelfPlayOutput(pairs, examples, samples, judgments, negatives, trees, chosen)


def collect_self_rewarding(actor: Generator, judge: JudgeLike, instructions: Sequence[str], prompts: Sequence[str],
                           problem_ids: Sequence[str], *, n: int, temperature: float, top_p: float, max_tokens: int,
                           data_cfg: SparDataConfig, refine_cfg: RefineConfig, policy_version: int, seed: int
                           ) -> SelfPlayOutput:
    """The self-rewarding baseline: best passing vs worst failing sample per prompt, by the refiner's judgments."""
    samples = sample_actor(actor, prompts, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    judgments = _judge_samples(judge, instructions, samples)
    pairs = []
    for i, (row, js) in enumerate(zip(samples, judgments)):
        good = [k for k, j in enumerate(js) if j.label == 1]
        bad = [k for k, j in enumerate(js) if j.label == 0]
        if not good or not bad:
            continue
        w = max(good, key=lambda k: (js[k].value, -k))
        lo = min(bad, key=lambda k: (js[k].value, k))
        if row[w] == row[lo]:
            continue
        pairs.append(StepPair(problem_id=problem_ids[i], policy_version=policy_version, depth=0, prompt=prompts[i],
                              prefix="", chosen=row[w], rejected=row[lo], q_chosen=js[w].value,
                              q_rejected=js[lo].value, n_chosen=0, n_rejected=0, weight=0.0))
    judged = [(instructions[i], r, j, problem_ids[i]) for i in range(len(prompts))
              for r, j in zip(samples[i], judgments[i])]
    examples = refiner_examples([], [], judged, data_cfg, refine_cfg, seed=seed)
    return SelfPlayOutput(pairs, examples, samples, judgments, [None] * len(prompts))
