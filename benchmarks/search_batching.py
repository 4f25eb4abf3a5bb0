"""Problems per second of step-level MCTS: one tree at a time vs all trees batched (CPU, tiny model).

    python benchmarks/search_batching.py            # 64 problems, serial and batched (minutes)
    python benchmarks/search_batching.py --quick    # under a minute (serial rate from 8 problems)

The same `StepMCTS` with the same simulation budget searches 64 held-out arithmetic problems with
the committed tiny policy (tests/data/tiny_arith_policy, HF backend on CPU) and the outcome
reward at terminals (training-time collection): once problem by problem, once as one batched
call, where every round sends the leaves of all 64 trees to one `generate` call (DESIGN
"Performance principles"). Serial problems/s is measured on the first `--serial-problems`
problems (all 64 by default; 8 with --quick), since problems are drawn i.i.d.

Writes benchmarks/results/search_batching.json with top-level keys `serial_problems_per_s`,
`batched_problems_per_s`, `ratio` (target >= 8) and `tree_time_share` (tree seconds over wall
seconds of the batched run; target < 0.02), plus what bounds the ratio on this machine:
`generate_ceiling_ratio` is the tokens/s of one `generate` call at the batched shape (every
problem's prompt x candidates in one call) over the same prompts sent one call per problem, i.e.
the ratio a search with perfect occupancy could reach, and `batched.mean_prompts_per_call` /
`serial.mean_prompts_per_call` show how full the rounds were (trees finish after different
numbers of rounds, so late rounds carry few leaves).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.results_path import results_path  # noqa: E402
DEFAULT_MODEL = ROOT / "tests" / "data" / "tiny_arith_policy"


def _generate_ceiling(gen, prompts, k: int, max_tokens: int) -> dict:
    """Tokens/s of one step-sampling call over all prompts vs one call per prompt (same work)."""
    from reasoner.generation import SamplingParams
    params = SamplingParams(n=k, max_tokens=max_tokens, temperature=1.0, stop=("\n",), seed=1)
    rates = {}
    for mode, groups in (("serial", [[p] for p in prompts]), ("batched", [list(prompts)])):
        best = 0.0
        for _ in range(3):
            t0, tokens = time.perf_counter(), 0
            for g in groups:
                tokens += sum(c.num_tokens for row in gen.generate(g, params) for c in row)
            best = max(best, tokens / (time.perf_counter() - t0))
        rates[mode] = best
    return {"serial_tokens_per_s": round(rates["serial"], 1), "batched_tokens_per_s": round(rates["batched"], 1),
            "generate_ceiling_ratio": round(rates["batched"] / rates["serial"], 2)}


def _setup(model_dir: str, n: int, threads: int = 1):
    import torch

    from envs.arith import load_arith
    from reasoner.generation import GeneratorConfig
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy
    from reasoner.templates import PromptConfig, render_prompt

    torch.set_num_threads(threads)
    model, tok = load_policy(model_dir, "cpu")
    gen = HFGenerator(model, tok, GeneratorConfig(seed=0, max_batch_size=512))
    problems = load_arith("test", n)
    prompts = [render_prompt(p.question, PromptConfig()) for p in problems]
    return gen, problems, prompts


def _run(gen, prompts, problems, cfg):
    from envs.grading import grade
    from search.evaluators import OutcomeValue
    from search.mcts import StepMCTS

    t0 = time.perf_counter()
    result = StepMCTS(gen, OutcomeValue(), cfg).search(prompts, problems)
    wall = time.perf_counter() - t0
    correct = sum(grade(t.response, p.answer) for t, p in zip(result.traces, problems))
    return wall, result, correct


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (under a minute)")
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="HF checkpoint of the tiny policy")
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--serial-problems", type=int, default=None, help="problems searched one at a time")
    ap.add_argument("--simulations", type=int, default=None, help="simulations per decision")
    ap.add_argument("--candidates", type=int, default=None, help="candidate steps per expansion")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both modes)")
    ap.add_argument("--out", default=None, help="JSON output (default: results/search_batching.json; --quick: a temp file)")
    args = ap.parse_args(argv)
    from reasoner.generation import SamplingParams
    from search.core import TreeCore
    from search.mcts import MCTSConfig

    sims = args.simulations or (2 if args.quick else 4)
    k = args.candidates or (2 if args.quick else 4)
    n_serial = args.serial_problems or (8 if args.quick else args.problems)
    cfg = MCTSConfig(num_simulations=sims, first_num_candidates=k, num_candidates=k, depth_limit=7,
                     max_step_tokens=24, seed=0)
    gen, problems, prompts = _setup(args.model, args.problems, args.threads)
    gen.generate(prompts[:2], SamplingParams(max_tokens=4))   # warm-up
    ceiling = _generate_ceiling(gen, prompts, k, cfg.max_step_tokens)

    serial_wall, serial_correct, serial_tokens = 0.0, 0, 0
    calls0, prompts0 = gen.stats.calls, gen.stats.prompts
    for i in range(n_serial):
        wall, res, correct = _run(gen, prompts[i:i + 1], problems[i:i + 1], cfg)
        serial_wall, serial_correct = serial_wall + wall, serial_correct + correct
        serial_tokens += res.stats.generated_tokens
    serial_calls, serial_prompts = gen.stats.calls - calls0, gen.stats.prompts - prompts0
    calls0, prompts0 = gen.stats.calls, gen.stats.prompts
    batched_wall, batched, batched_correct = _run(gen, prompts, problems, cfg)
    batched_calls, batched_prompts = gen.stats.calls - calls0, gen.stats.prompts - prompts0

    serial_rate, batched_rate = n_serial / serial_wall, len(problems) / batched_wall
    stats = batched.stats
    out = {
        "serial_problems_per_s": round(serial_rate, 3),
        "batched_problems_per_s": round(batched_rate, 3),
        "ratio": round(batched_rate / serial_rate, 2),
        "tree_time_share": round(stats.tree_seconds / stats.wall_seconds, 4),
        "targets": {"ratio": 8, "tree_time_share": 0.02},
        **ceiling,
        "config": {"problems": len(problems), "serial_problems": n_serial, "num_simulations": sims,
                   "first_decision_multiplier": cfg.first_decision_multiplier, "candidates": k,
                   "depth_limit": cfg.depth_limit, "max_step_tokens": cfg.max_step_tokens,
                   "value": "outcome (grader at terminals)", "tree_core": TreeCore().name,
                   "model": os.path.relpath(args.model, ROOT), "device": "cpu", "quick": args.quick},
        "batched": {"wall_seconds": round(batched_wall, 3), "model_seconds": round(stats.model_seconds, 3),
                    "tree_seconds": round(stats.tree_seconds, 3), "model_calls": stats.model_calls,
                    "generated_tokens": stats.generated_tokens, "accuracy": batched_correct / len(problems),
                    "generate_calls": batched_calls,
                    "mean_prompts_per_call": round(batched_prompts / max(1, batched_calls), 2)},
        "serial": {"wall_seconds": round(serial_wall, 3), "generated_tokens": serial_tokens,
                   "accuracy": serial_correct / n_serial, "generate_calls": serial_calls,
                   "mean_prompts_per_call": round(serial_prompts / max(1, serial_calls), 2)},
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "threads": args.threads},
    }
    print(f"{'mode':<9} {'problems':>8} {'wall s':>8} {'problems/s':>11} {'accuracy':>9}")
    print(f"{'serial':<9} {n_serial:>8} {serial_wall:>8.2f} {serial_rate:>11.2f} {out['serial']['accuracy']:>9.2f}")
    print(f"{'batched':<9} {len(problems):>8} {batched_wall:>8.2f} {batched_rate:>11.2f} "
          f"{out['batched']['accuracy']:>9.2f}")
    print(f"ratio {out['ratio']:.1f}x (target >= 8), tree time share {out['tree_time_share']:.4f} (target < 0.02)")
    print(f"generate ceiling: {ceiling['batched_tokens_per_s']:.0f} vs {ceiling['serial_tokens_per_s']:.0f} tokens/s "
          f"= {ceiling['generate_ceiling_ratio']:.1f}x; prompts per generate call: batched "
          f"{out['batched']['mean_prompts_per_call']:.1f} of {len(problems)}, serial {out['serial']['mean_prompts_per_call']:.1f}")
    path = results_path("search_batching", quick=args.quick, out=args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
