"""The evaluation harness shared by `launch.evaluate` (CLI) and the Ray job's evaluator actors.

`evaluate_problems` runs one method over a list of problems with one `Generator`, grades every
response with `envs.grading.grade` (the same checker that labels training data), and returns an
`EvalResult` with accuracy, generated tokens, model calls and wall time, plus one `EvalRecord` per
problem, so methods are compared at stated budgets.

Methods (`EvalMethod`):
- greedy: one temperature-0 response.
- maj@k: k samples, majority vote over extracted final answers (self-consistency).
- best_of_n: n samples, value-weighted voting over final answers (needs a value function).
- beam: value-guided step beam search (OREO section 2.7; needs a value function).
- mcts: step-level MCTS as a test-time method.
- best_of_k@K (interactive tasks only: `launch.evaluate_envs`, the ALFWorld job): at every env
  step, K sampled turns, the critic's best executed (`search.agent_best_of_k`, OREO's ALFWorld search).
The sampling-based methods call `search.value_guided`, the one implementation of each.
"""
from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from envs.base import Problem
from envs.grading import extract_answer, grade
from reasoner.generation import Generator, SamplingParams

__all__ = ["EvalMethod", "EvalRecord", "EvalResult", "evaluate_problems", "parse_method"]


class EvalMethod(str, enum.Enum):
    GREEDY = "greedy"
    MAJORITY = "maj"
    BEST_OF_N = "best_of_n"
    BEAM = "beam"
    MCTS = "mcts"
    BEST_OF_K = "best_of_k"


def parse_method(name: str) -> tuple[EvalMethod, int | None]:
    """'greedy' -> (GREEDY, None); 'maj@8' -> (MAJORITY, 8); 'best_of_n@4' -> (BEST_OF_N, 4)."""
    base, _, k = name.partition("@")
    try:
        method = EvalMethod(base)
    except ValueError:
        raise ValueError(f"unknown method {name!r} (greedy, maj@k, best_of_n[@n], beam[@b], mcts, "
                         "best_of_k[@k] for interactive tasks)") from None
    if k and not k.isdigit():
        raise ValueError(f"method {name!r}: the budget after @ must be a positive integer")
    if k and int(k) < 1:
        raise ValueError(f"method {name!r}: the budget after @ must be >= 1")
    if method == EvalMethod.MAJORITY and not k:
        raise ValueError("maj needs a sample count, e.g. maj@8")
    return method, (int(k) if k else None)


@dataclass(frozen=True, slots=True)
class EvalRecord:
    """One graded response."""
    problem_id: str
    prompt: str
    response: str
    extracted: str | None
    reference: str
    correct: bool
    generated_tokens: int


@dataclass
class EvalResult:
    """Aggregate of one method over a problem set."""
    method: str
    accuracy: float
    n: int
    generated_tokens: int
    model_calls: int
    wall_s: float
    records: list[EvalRecord] = field(default_factory=list)

    def summary(self) -> dict:
        return {"method": self.method, "accuracy": self.accuracy, "n": self.n,
                "generated_tokens": self.generated_tokens, "model_calls": self.model_calls,
                "wall_s": round(self.wall_s, 3)}


def _responses(method: EvalMethod, budget: int | None, generator: Generator, prompts: list[str],
               problems: Sequence[Problem], *, temperature: float, max_tokens: int, seed: int,
               value_fn, search_cfg, step_format) -> tuple[list[str], list[int]]:
    """(response per problem, generated tokens per problem) of one method."""
    if method == EvalMethod.BEST_OF_K:
        raise ValueError("best_of_k chooses actions in interactive environments (--task alfworld); "
                         "for problems use best_of_n")
    if method == EvalMethod.GREEDY:
        outs = generator.generate(prompts, SamplingParams(n=1, max_tokens=max_tokens, temperature=0.0))
        return [row[0].text for row in outs], [row[0].num_tokens for row in outs]
    from search import value_guided as vg
    if method in (EvalMethod.MAJORITY, EvalMethod.BEST_OF_N):
        if method == EvalMethod.BEST_OF_N and value_fn is None:
            raise ValueError("best_of_n ranks samples with a value model: give --value PATH (or use maj@k)")
        mode = vg.BestOfNMode.MAJORITY if method == EvalMethod.MAJORITY else vg.BestOfNMode.WEIGHTED
        if search_cfg is not None and method == EvalMethod.BEST_OF_N:
            mode = search_cfg.mode
        cfg = vg.BestOfNConfig(n=budget or 8, mode=mode, max_tokens=max_tokens, temperature=temperature, seed=seed)
        out = vg.best_of_n(generator, prompts, problems, cfg, value_fn, step_format)
    elif method == EvalMethod.BEAM:
        if value_fn is None:
            raise ValueError("beam search needs a value model (--value PATH)")
        cfg = search_cfg or vg.BeamConfig()
        if budget:
            cfg = dataclasses.replace(cfg, beam_width=budget)
        out = vg.beam_search(generator, value_fn, prompts, problems, dataclasses.replace(cfg, seed=seed), step_format)
    else:
        from search.evaluators import SelfEvalValue
        cfg = search_cfg or vg.MCTSConfig()
        if budget:
            cfg = dataclasses.replace(cfg, num_simulations=budget)
        out = vg.mcts_search(generator, value_fn or SelfEvalValue(generator), prompts, problems,
                             dataclasses.replace(cfg, seed=seed), step_format)
    return [t.response for t in out.traces], [t.generated_tokens for t in out.traces]


def evaluate_problems(generator: Generator, problems: Sequence[Problem], prompts: Sequence[str],
                      method: str, *, temperature: float = 1.0, max_tokens: int = 256, seed: int = 0,
                      value_fn=None, search_cfg=None, step_format=None,
                      progress: Callable[[int], None] | None = None) -> EvalResult:
    """Run `method` ('greedy', 'maj@k', 'best_of_n@n', 'beam@b', 'mcts') and grade every response.

    Args:
        generator: the policy's generator.
        problems: [B] problems with reference answers.
        prompts: [B] rendered prompts (see `reasoner.templates.render_prompt`).
        value_fn: optional `search.evaluators.ValueFn` (e.g. `LearnedValue(ValueModel)`) for
            best_of_n / beam / mcts; mcts without one uses the policy's self-evaluation.
        search_cfg: the method's config (BestOfNConfig / BeamConfig / MCTSConfig) where it applies;
            the budget after '@' overrides its n / beam width / simulations.
        step_format: what a step is (`reasoner.steps.StepFormat`), default one line.
        progress: called with the number of problems finished.
    """
    if len(problems) != len(prompts):
        raise ValueError(f"{len(problems)} problems but {len(prompts)} prompts")
    kind, budget = parse_method(method)
    before = generator.stats.snapshot()
    t0 = time.perf_counter()
    responses, tokens = _responses(kind, budget, generator, list(prompts), problems, temperature=temperature,
                           max_tokens=max_tokens, seed=seed, value_fn=value_fn, search_cfg=search_cfg,
                                   step_format=step_format)
    used = generator.stats.since(before)
    records = []
    for prob, prompt, resp, ntok in zip(problems, prompts, responses, tokens):
        records.append(EvalRecord(prob.id, prompt, resp, extract_answer(resp), prob.answer,
                                  bool(grade(resp, prob.answer)), int(ntok)))
    if progress is not None:
        progress(len(records))
    correct = sum(r.correct for r in records)
    return EvalResult(method=method, accuracy=correct / max(1, len(records)), n=len(records),
                      generated_tokens=used.generated_tokens, model_calls=used.calls,
                      wall_s=time.perf_counter() - t0, records=records)
