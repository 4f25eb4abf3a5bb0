"""Running one batch of inference-API requests: group by method and budget, one call per group.

`run_batch` is what the engine's worker thread executes (synchronous). Requests with the same
`MethodSpec` form a group; every choice of every request in a group becomes one row (one
"problem") of a single batched call:

- greedy / sample: one `Generator.generate` call (greedy rows with equal prompts are computed once);
- best_of_n: one `search.value_guided.best_of_n` call (its sampling rounds batch every row);
- beam: one `beam_search` call (one sampling + one value call per round for all rows);
- mcts: one `mcts_search` call (all trees in lock-step, `search.mcts`).

A group that raises is re-run request by request, so only the request that fails gets the
error. Each choice reports every token generated for it, the search's extra samples included
(the search `Ledger` splits batched calls per problem), and, when asked, its trace: committed
steps with their values (and visits for MCTS) and the alternatives they were chosen over.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from envs.base import Problem
from reasoner.generation import FinishReason, SamplingParams
from reasoner.records import SearchTrace
from reasoner.steps import split_steps
from search.evaluators import SelfEvalValue
from search.mcts import MCTSConfig
from search.value_guided import BeamConfig, BestOfNConfig, beam_search, best_of_n, mcts_search
from launch.serve_engine import Method, MethodSpec, RequestError, ServeChoice, ServeEngine, ServeRequest, ServeResult

__all__ = ["run_batch", "trace_to_dict"]


def run_batch(engine: ServeEngine, requests: list[ServeRequest]) -> list[ServeResult | RequestError]:
    """One result (or error) per request, in order; never raises."""
    results: list[ServeResult | RequestError | None] = [None] * len(requests)
    groups: dict[MethodSpec, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(r.spec, []).append(i)
    for spec, idx in groups.items():
        try:
            for i, res in zip(idx, _run_group(engine, spec, [requests[i] for i in idx])):
                results[i] = res
        except Exception as e:  # isolate the failing request(s)
            if len(idx) == 1:
                results[idx[0]] = _as_error(e, spec)
                continue
            for i in idx:
                try:
                    results[i] = _run_group(engine, spec, [requests[i]])[0]
                except Exception as e_one:
                    results[i] = _as_error(e_one, spec)
    return results  # type: ignore[return-value]


def _as_error(e: Exception, spec: MethodSpec) -> RequestError:
    if isinstance(e, RequestError):
        return e
    if isinstance(e, ValueError) and "max_model_len" in str(e):
        return RequestError(400, f"the {spec.method.value} search ran out of context: {e}; lower max_tokens "
                                 "or max_steps", param="max_tokens", code="context_length_exceeded")
    return RequestError(500, f"internal error while running {spec.method.value}: {type(e).__name__}: {e}",
                        type="server_error")


def _run_group(engine: ServeEngine, spec: MethodSpec, reqs: list[ServeRequest]) -> list[ServeResult]:
    """Run every choice of `reqs` in one batched call; split the choices back per request."""
    prompts = [r.prompt for r in reqs for _ in range(r.n)]
    problems = [Problem(id=f"{r.id}/{k}", task="serve", question=r.question, answer="")
                for r in reqs for k in range(r.n)]
    seed = spec.seed if spec.seed is not None else engine.next_seed()
    choices = _RUNNERS[spec.method](engine, spec, prompts, problems, seed)
    out, k = [], 0
    for r in reqs:
        mine = choices[k:k + r.n]
        k += r.n
        if not r.return_trace:
            mine = [ServeChoice(c.text, c.finish_reason, c.generated_tokens) for c in mine]
        out.append(ServeResult(request_id=r.id, choices=mine, prompt_tokens=r.prompt_tokens))
    return out


# ---------------------------------------------------------------------------------- runners
def _run_decode(engine: ServeEngine, spec: MethodSpec, prompts: list[str], problems, seed: int) -> list[ServeChoice]:
    """greedy / sample: one generate call; greedy computes each distinct prompt once."""
    rows = list(dict.fromkeys(prompts)) if spec.method == Method.GREEDY else prompts
    params = SamplingParams(n=1, max_tokens=spec.max_tokens, temperature=spec.temperature, top_p=spec.top_p,
                            stop=spec.stop, seed=seed)
    out = engine.generator.generate(rows, params)
    if spec.method == Method.GREEDY:
        by_prompt = {p: row[0] for p, row in zip(rows, out)}
        completions = [by_prompt[p] for p in prompts]
    else:
        completions = [row[0] for row in out]
    choices = []
    for c in completions:
        steps = [{"text": s, "value": None, "visits": 0, "alternatives": []}
                 for s in split_steps(c.text, engine.step_format)]
        trace = {"method": spec.method.value, "steps": steps, "generated_tokens": c.num_tokens, "model_calls": 1}
        reason = "length" if c.finish_reason == FinishReason.LENGTH else "stop"
        choices.append(ServeChoice(c.text, reason, c.num_tokens, trace))
    return choices


def _run_best_of_n(engine: ServeEngine, spec: MethodSpec, prompts, problems, seed: int) -> list[ServeChoice]:
    cfg = BestOfNConfig(n=spec.samples, mode=spec.mode, max_tokens=spec.max_tokens, temperature=spec.temperature,
                        token_budget=spec.token_budget, seed=seed)
    out = best_of_n(engine.generator, prompts, problems, cfg, value_fn=engine.value_fn,
                    step_format=engine.step_format)
    choices = [_search_choice(t) for t in out.traces]
    if engine.value_fn is None:   # majority vote: search reports 0.0 for the values nobody computed
        for c in choices:
            for step in c.trace["steps"]:
                step["value"] = None
                for alt in step["alternatives"]:
                    alt["value"] = None
    return choices


def _run_beam(engine: ServeEngine, spec: MethodSpec, prompts, problems, seed: int) -> list[ServeChoice]:
    cfg = BeamConfig(beam_width=spec.beam_width, max_rounds=spec.max_steps, max_step_tokens=spec.max_tokens,
                     temperature=spec.temperature, token_budget=spec.token_budget, seed=seed)
    out = beam_search(engine.generator, engine.value_fn, prompts, problems, cfg, step_format=engine.step_format)
    return [_search_choice(t) for t in out.traces]


def _run_mcts(engine: ServeEngine, spec: MethodSpec, prompts, problems, seed: int) -> list[ServeChoice]:
    """Test-time MCTS: learned value if loaded, else self-evaluation (no reference ever)."""
    value_fn = engine.value_fn if engine.value_fn is not None else SelfEvalValue(engine.generator)
    cfg = MCTSConfig(num_simulations=spec.simulations, max_steps=spec.max_steps, max_step_tokens=spec.max_tokens,
                     temperature=spec.temperature, token_budget=spec.token_budget, finish_tokens=spec.max_tokens,
                     seed=seed)
    out = mcts_search(engine.generator, value_fn, prompts, problems, cfg, step_format=engine.step_format)
    return [_search_choice(t) for t in out.traces]


_RUNNERS: dict[Method, Callable[..., list[ServeChoice]]] = {
    Method.GREEDY: _run_decode, Method.SAMPLE: _run_decode, Method.BEST_OF_N: _run_best_of_n,
    Method.BEAM: _run_beam, Method.MCTS: _run_mcts,
}


# ---------------------------------------------------------------------------------- traces
def _search_choice(trace: SearchTrace) -> ServeChoice:
    return ServeChoice(trace.response, "stop", int(trace.generated_tokens), trace_to_dict(trace))


def _num(x: float) -> float | None:
    """JSON-safe float (NaN / inf have no JSON spelling)."""
    x = float(x)
    return x if math.isfinite(x) else None


def trace_to_dict(trace: SearchTrace) -> dict[str, Any]:
    """The API's `search_trace` object for one choice."""
    steps = [{"text": s.text, "value": _num(s.value), "visits": int(s.visits),
              "alternatives": [{"text": t, "value": _num(v), "visits": int(n)} for t, v, n in s.alternatives]}
             for s in trace.steps]
    return {"method": trace.method, "steps": steps, "generated_tokens": int(trace.generated_tokens),
            "model_calls": int(trace.model_calls), "model_seconds": round(float(trace.model_seconds), 6),
            "tree_seconds": round(float(trace.tree_seconds), 6), "wall_seconds": round(float(trace.wall_seconds), 6)}
