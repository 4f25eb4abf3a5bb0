"""SPaR vs the self-rewarding baseline on the embedded instruction-following task, and refine@k.

    python benchmarks/spar.py                 # 3 seeds x (SPaR, self-rewarding), 3 iterations each
    python benchmarks/spar.py --quick         # one seed, the smoke recipe (a few minutes; writes a temp file)

Per seed, through the main job's real entry point (`launch/iterate.py`, local Ray):
1. SPaR (`configs/spar_tiny.yaml`, or `spar_smoke.yaml` with --quick): SFT of the tiny model from
   scratch (actor + refiner), then `iterations` of self-play -> actor DPO + 0.1 NLL, refiner RFT;
   held-out greedy and refine@k strict prompt accuracy after every iteration; refiner judge
   accuracy against the IFEval checkers on a fixed held-out set.
2. Self-rewarding (`spar.refine_pairs=false`) from the same SFT checkpoint: pairs of
   independently sampled responses ranked by the same refiner's judgments, no refinement. To
   compare at equal generated tokens it gets more prompts per iteration: SPaR's tokens per
   iteration divided by what sampling + judging alone cost SPaR per prompt.

Writes benchmarks/results/spar.json: {"methods": {name: {"strict_prompt_mean", "strict_prompt_se",
"generated_tokens"}}, "judge_accuracy": [per iteration, mean over seeds], "seeds": [...]} with
names `sft` (iteration 0 greedy), `spar` (last iteration greedy), `self_rewarding` (last iteration
greedy), `spar_refine` (last SPaR iteration with refine@k). `generated_tokens`: tokens generated
to collect the training data over all iterations (0 for sft); for spar_refine the held-out
test-time tokens per prompt (training tokens are spar's). `se` is the standard error over seeds.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "spar.json"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
       "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false"}


def _run(config: str, run_dir: Path, overrides: list[str]) -> dict:
    cmd = [sys.executable, "launch/iterate.py", "--config", config, "--run-dir", str(run_dir), "--quiet", *overrides]
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({run_dir}): {proc.stderr.strip().splitlines()[-1:]}")
    print(proc.stdout.split("iteration                ")[0][-1500:], flush=True)
    print(f"  ({time.time() - t0:.0f} s)", flush=True)
    return json.loads((run_dir / "summary.json").read_text())


def _mean_se(xs: list[float]) -> tuple[float, float]:
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else 0.0)


def run_seed(seed: int, config: str, refine_method: str, work: Path) -> dict:
    spar = _run(config, work / f"spar_s{seed}", [f"seed={seed}", f"eval.methods=[greedy,{refine_method}]"])
    its = spar["iterations"]
    ro = [it["rollout"] for it in its[1:]]
    spar_tokens = sum(r["generated_tokens"] for r in ro)
    per_prompt_sj = sum(r["pre_tree_tokens"] for r in ro) / max(1, sum(r["prompts"] for r in ro))
    prompts = its[1]["rollout"]["prompts"]
    sr_prompts = max(prompts, round(spar_tokens / len(ro) / max(1.0, per_prompt_sj)))
    sft = json.loads((work / f"spar_s{seed}" / "iter_000" / "manifest.json").read_text())["policy"]
    sr = _run(config, work / f"self_rewarding_s{seed}",
              [f"seed={seed}", f"model.policy={sft}", "spar.refine_pairs=false", "eval.methods=[greedy]",
               f"iterate.problems_per_iteration={sr_prompts}"])
    last, sr_last = its[-1], sr["iterations"][-1]
    return {"seed": seed, "sft": its[0]["eval"]["greedy"]["accuracy"], "spar": last["eval"]["greedy"]["accuracy"],
            "self_rewarding": sr_last["eval"]["greedy"]["accuracy"],
            "spar_refine": last["eval"][refine_method]["accuracy"],
            "spar_tokens": spar_tokens, "self_rewarding_tokens": sum(it["rollout"]["generated_tokens"]
                                                                      for it in sr["iterations"][1:]),
            "self_rewarding_prompts_per_iteration": sr_prompts,
            "refine_test_tokens_per_prompt": last["eval"][refine_method]["generated_tokens"] / last["eval"][refine_method]["n"],
            "greedy_test_tokens_per_prompt": last["eval"]["greedy"]["generated_tokens"] / last["eval"]["greedy"]["n"],
            "judge_accuracy": [it["judge"]["accuracy"] for it in its],
            "spar_per_iteration": [it["eval"]["greedy"]["accuracy"] for it in its],
            "self_rewarding_per_iteration": [it["eval"]["greedy"]["accuracy"] for it in sr["iterations"]],
            "refine_success_checker": [it["rollout"]["refine_success_checker"] for it in its[1:]],
            "refine_success_self": [it["rollout"]["refine_success_self"] for it in its[1:]],
            "pairs": [it["rollout"]["pairs"] for it in its[1:]]}


def summarise(rows: list[dict], meta: dict) -> dict:
    methods = {}
    for name, tokens in (("sft", lambda r: 0), ("spar", lambda r: r["spar_tokens"]),
                         ("self_rewarding", lambda r: r["self_rewarding_tokens"]),
                         ("spar_refine", lambda r: r["refine_test_tokens_per_prompt"])):
        m, se = _mean_se([r[name] for r in rows])
        methods[name] = {"strict_prompt_mean": m, "strict_prompt_se": se,
                         "generated_tokens": statistics.fmean(tokens(r) for r in rows)}
    n_it = len(rows[0]["judge_accuracy"])
    return {"methods": methods,
            "judge_accuracy": [statistics.fmean(r["judge_accuracy"][k] for r in rows) for k in range(n_it)],
            "seeds": [r["seed"] for r in rows], "per_seed": rows, **meta}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one seed of the smoke recipe (writes a temp file)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2; --quick: 0)")
    ap.add_argument("--refine", default="refine@2", help="test-time refinement method (default refine@2)")
    ap.add_argument("--work", default=None, help="directory for the run directories (default: a temp dir)")
    ap.add_argument("--out", default=None, help=f"JSON output (default {RESULTS.relative_to(ROOT)}; --quick: temp)")
    args = ap.parse_args(argv)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    config = "configs/spar_smoke.yaml" if args.quick else "configs/spar_tiny.yaml"
    refine = "refine@1" if args.quick and args.refine == "refine@2" else args.refine
    work = Path(args.work or tempfile.mkdtemp(prefix="spar_bench_"))
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp(prefix="spar_quick_")) / "spar.json"
                                           if args.quick else RESULTS)
    t0 = time.time()
    rows = [run_seed(s, config, refine, work) for s in seeds]
    res = summarise(rows, {"config": config, "refine_method": refine, "quick": args.quick,
                           "wall_s": round(time.time() - t0, 1), "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")})
    print(f"{'method':<16} {'strict P(S)':>12} {'se':>7} {'gen tokens':>12}")
    for name, r in res["methods"].items():
        print(f"{name:<16} {r['strict_prompt_mean']:>12.3f} {r['strict_prompt_se']:>7.3f} {r['generated_tokens']:>12.0f}")
    print("judge accuracy per iteration:", [round(x, 3) for x in res["judge_accuracy"]])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
