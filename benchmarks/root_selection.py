"""PUCT vs Gumbel root selection at equal simulations: MCTS-DPO's training search on the embedded default.

    python benchmarks/root_selection.py            # 512 problems x 2 seeds per root rule (CPU, minutes)
    python benchmarks/root_selection.py --quick    # 64 problems, one seed (temp output)

The collection search of configs/arith_tiny.yaml (8 simulations, 4x at the first decision, the
grader's outcome at terminals, 0 at inner nodes) from the committed SFT policy, once with PUCT at
the root (MCTS-DPO) and once with Gumbel MuZero's sequential halving (`mcts.root_selection=gumbel`,
`search/gumbel.py`), same simulations and seeds. Reported per rule:

- `committed_accuracy`: share of problems whose committed answer is right (how well the search finds
  answers with the same budget);
- `pairs`, `generated_tokens`;
- `pair_accuracy`: among step pairs whose shared prefix follows the reference solution and whose
  two steps contain exactly one reference step, the share where the chosen step is the reference
  one (an oracle check of the preference labels; the reference is never shown to the search).

Writes benchmarks/results/root_selection.json (--quick: a temporary file unless --out).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import learners as L  # noqa: E402
from benchmarks.results_path import results_path  # noqa: E402


def pair_accuracy(pairs, problems) -> tuple[float | None, int]:
    """(share of checkable pairs whose chosen step is the reference step, number checkable)."""
    from reasoner.steps import join_steps, split_steps
    gold = {p.id: split_steps(p.solution) for p in problems}
    right = checkable = 0
    for pair in pairs:
        steps = gold[pair.problem_id]
        if pair.depth >= len(steps) or pair.prefix != join_steps(steps[:pair.depth]):
            continue
        ref = steps[pair.depth]
        hits = (pair.chosen.startswith(ref), pair.rejected.startswith(ref))
        if sum(hits) == 1:
            checkable += 1
            right += hits[0]
    return (right / checkable if checkable else None), checkable


def run_rule(gen, problems, prompts, rule: str, seed: int) -> dict:
    from envs.grading import grade
    from search.evaluators import OutcomeValue
    from search.mcts import StepMCTS
    from search.pairs import PairConfig, pairs_from_result
    cfg = dataclasses.replace(L.mcts_config(seed), root_selection=rule)
    t0 = time.perf_counter()
    result = StepMCTS(gen, OutcomeValue(), cfg).search(prompts, problems)
    pairs = pairs_from_result(result, prompts, problems, PairConfig(seed=seed))
    acc, checkable = pair_accuracy(pairs, problems)
    return {"committed_accuracy": sum(grade(t.response, p.answer) for t, p in zip(result.traces, problems)) / len(problems),
            "pairs": len(pairs), "pair_accuracy": acc, "checkable_pairs": checkable,
            "generated_tokens": int(result.stats.generated_tokens), "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="64 problems, one seed")
    ap.add_argument("--problems", type=int, default=None, help="training problems per seed (default 512)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 (--quick: 0)")
    ap.add_argument("--out", default=None, help="JSON output (default: results/root_selection.json; --quick: temp)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    n = args.problems or (64 if args.quick else 512)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1])
    ctx = L.Ctx(str(L.DEFAULT_POLICY), "cpu")
    gen = ctx.generator(ctx.load().eval())
    runs: dict[str, list[dict]] = {"puct": [], "gumbel": []}
    for seed in seeds:
        problems = L.train_problems(n, 300 + seed)
        prompts = L.prompts_of(problems)
        for rule in runs:
            runs[rule].append(run_rule(gen, problems, prompts, rule, seed))
            r = runs[rule][-1]
            print(f"seed {seed} {rule:<6} committed {r['committed_accuracy']:.3f}  pairs {r['pairs']:>5}  "
                  f"pair accuracy {r['pair_accuracy']:.3f} of {r['checkable_pairs']}  tokens {r['generated_tokens']}"
                  f"  ({r['seconds']} s)", flush=True)
    summary = {rule: {k: round(statistics.mean(r[k] for r in rs), 4)
                      for k in ("committed_accuracy", "pairs", "pair_accuracy", "generated_tokens")}
               for rule, rs in runs.items()}
    out = {"summary": summary, "runs": runs, "problems_per_seed": n, "seeds": seeds,
           "mcts": {k: v for k, v in dataclasses.asdict(L.mcts_config(0)).items() if k not in ("seed", "root_selection")},
           "policy": os.path.relpath(L.DEFAULT_POLICY, ROOT), "quick": args.quick}
    path = results_path("root_selection", quick=args.quick, out=args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
