"""Does a learned value rank responses of one problem, and how does that scale? (embedded default)

    python benchmarks/value_discrimination.py                  # CPU: the 0.5M critic, 3k and 10k trajectories
    python benchmarks/value_discrimination.py --quick          # 2k trajectories, 150 held-out problems (temp output)
    python benchmarks/value_discrimination.py --device cuda --curve 3000 10000 30000 100000 --sizes S M L

Value-guided search (best-of-N by value, OREO's beam search) needs a value that tells a correct
response from a wrong one *of the same problem*. Per size and number of training trajectories this
fits a critic (`OREOLearner` value-only fit: V regressed on the outcome R, the frozen trunk being
its own reference) on temperature-0.7 samples of the committed SFT policy (8 per training problem,
graded), then scores 8 samples per held-out problem at their final state and reports:

- `within_problem_auc`: mean AUC over held-out problems with both correct and wrong samples (what
  best-of-N and beam search need; 0.5 = no information);
- `pooled_auc`: AUC over all held-out samples (a value that only knows which problems are hard
  scores well here); `train_auc`: pooled AUC on the first 2,400 training trajectories;
- `bon_accuracy` (the sample with the highest value), `weighted_accuracy` (value-weighted voting)
  next to `majority_accuracy` (maj@8) and `sample_accuracy` (one sample).

Axes: `--curve` (training trajectories), `--sizes` (critic trunk: S is the SFT policy itself,
0.54M; M 4.2M and L 14M are tiny models of the same family SFT-trained here on the task's gold
solutions for `--trunk-steps` steps, the same recipe as S), and `--targets` (value_states: `all`,
every state regressed on R as OREO's eq. 8 with rho = 0, what the demo uses; `final`, only the
finished response, an outcome verifier). `likelihood` scores the same samples with the policy's own
per-token geometric-mean probability (`search.evaluators.LikelihoodValue`, no training). The
top-level `within_problem_auc` is that of the value the demo's search uses (`--demo-value`,
`eval.value` of configs/arith_tiny.yaml: likelihood; with `learned`, the curve point of size S,
`all`, nearest `--demo-trajectories`).

`likelihood_variants` reads the same log-probabilities other ways (whole-sequence probability, the
weakest token, the mean of the 3 weakest, tokens below e^-1, the answer line); `--no-critic` runs only
those rows and writes value_discrimination_likelihood.json.

Writes benchmarks/results/value_discrimination.json (+ .png) for full runs; --quick writes to a
temporary file unless --out is given.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.results_path import results_path  # noqa: E402

SAMPLES = 8
TEMPERATURE = 0.7
SIZES = {"M": dict(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=4, intermediate_size=1024, lr=1e-3),
         "L": dict(hidden_size=384, num_layers=6, num_heads=6, num_kv_heads=6, intermediate_size=1536, lr=8e-4)}


def auc(pos: list[float], neg: list[float]) -> float | None:
    """P(a random positive scores above a random negative), ties counted half; None if a side is empty."""
    if not pos or not neg:
        return None
    return sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))


def sample_trajectories(gen, problems, prompts, seed: int) -> list:
    """SAMPLES graded temperature-0.7 responses per problem, as `Trajectory` records (grouped by problem)."""
    from envs.grading import grade
    from reasoner.generation import SamplingParams
    from reasoner.records import Trajectory
    from reasoner.steps import split_steps
    out = gen.generate(prompts, SamplingParams(n=SAMPLES, max_tokens=64, temperature=TEMPERATURE, seed=seed))
    trajs = []
    for problem, prompt, row in zip(problems, prompts, out):
        for c in row:
            steps = tuple(split_steps(c.text)) or ("",)
            trajs.append(Trajectory(problem_id=problem.id, policy_version=0, source="sample", prompt=prompt,
                                    steps=steps, observations=("",) * len(steps),
                                    reward=float(grade(c.text, problem.answer))))
    return trajs


def train_trunk(ctx, size: str, steps: int, seed: int = 0):
    """A tiny model of `size` SFT-trained on gold solutions (the recipe of the committed S policy)."""
    from envs.arith import load_arith
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    from rl.learners.sft import SFTConfig, SFTLearner
    spec = dict(SIZES[size])
    lr = spec.pop("lr")
    model = build_tiny_model(TinyModelConfig(**spec), ctx.tok, seed=seed).to(ctx.device)
    problems = load_arith("train", steps * 16, seed=seed + 77)
    pairs = list(zip(prompts_of(problems), [p.solution for p in problems]))
    cfg = SFTConfig(steps=steps, batch_size=16, lr=lr, log_every=10**9, save_every=0, device=ctx.device)
    SFTLearner(model, ctx.tok, cfg, lambda step: pairs[step * 16:(step + 1) * 16]).fit(progress=False)
    return model.eval()


def fit_critic(ctx, trunk, trajs, target: str, args):
    """OREO value-only fit of a fresh critic on `trunk`; returns the critic (eval mode) and stats."""
    import copy

    from reasoner.value_model import ValueModel
    from rl.learners.oreo import OREOConfig, OREOLearner
    cfg = OREOConfig(train_policy=False, value_states=target, value_lr=args.value_lr, epochs=args.epochs,
                     batch_size=args.batch_size, grad_accum=1, max_len=256, device=ctx.device, save_every=0)
    learner = OREOLearner(copy.deepcopy(trunk), copy.deepcopy(trunk), ValueModel.from_policy(trunk, ctx.tok),
                          ctx.tok, cfg)
    t0 = time.perf_counter()
    fit = learner.fit(trajs, progress=False)
    return learner.value.eval(), {"fit_seconds": round(time.perf_counter() - t0, 1),
                                  "final_value_loss": round(fit["last"]["value_loss"], 4), "steps": fit["steps"]}


def score(value, trajs) -> list[float]:
    from reasoner.value_model import encode_state
    ids = [encode_state(value.tokenizer, t.prompt, t.steps) for t in trajs]
    return value.values_from_ids(ids, batch_size=512)


def discrimination(values: list[float], trajs: list) -> dict:
    """Within-problem / pooled AUC and best-of-8 accuracies over problem groups of SAMPLES."""
    from search.value_guided import vote
    within, picked, weighted = [], 0, 0
    groups = len(trajs) // SAMPLES
    for g in range(groups):
        vs, ts = values[g * SAMPLES:(g + 1) * SAMPLES], trajs[g * SAMPLES:(g + 1) * SAMPLES]
        ys = [t.reward == 1.0 for t in ts]
        if (a := auc([v for v, y in zip(vs, ys) if y], [v for v, y in zip(vs, ys) if not y])) is not None:
            within.append(a)
        picked += ys[max(range(SAMPLES), key=vs.__getitem__)]
        weighted += ys[vote(["".join(t.steps) for t in ts], vs)]
    pooled = auc([v for v, t in zip(values, trajs) if t.reward == 1.0], [v for v, t in zip(values, trajs) if t.reward == 0.0])
    return {"within_problem_auc": round(statistics.mean(within), 4) if within else None,
            "pooled_auc": round(pooled, 4) if pooled is not None else None,
            "problems_with_mixed_outcomes": len(within),
            "bon_accuracy": round(picked / groups, 4), "weighted_accuracy": round(weighted / groups, 4)}


def baselines(trajs: list) -> dict:
    """maj@8 and one-sample accuracy of the held-out samples (no value)."""
    from search.value_guided import vote
    groups = len(trajs) // SAMPLES
    maj = sum(trajs[g * SAMPLES + vote(["".join(t.steps) for t in trajs[g * SAMPLES:(g + 1) * SAMPLES]])].reward
              for g in range(groups))
    return {"majority_accuracy": round(maj / groups, 4),
            "sample_accuracy": round(sum(t.reward for t in trajs) / len(trajs), 4)}


def likelihood_row(gen, held) -> dict:
    """The policy's own likelihood as the value (search.evaluators.LikelihoodValue): no training."""
    from envs.base import Problem
    from search.evaluators import LikelihoodValue, SearchState
    dummy = Problem("p", "arith", "", "")
    states = [SearchState(dummy, t.prompt, "".join(t.steps), len(t.steps), True) for t in held]
    return discrimination(LikelihoodValue(gen).values(states), held)


LIKELIHOOD_VARIANTS = {   # per-token log-probabilities lp of a response -> a score in (0, 1]
    "geometric_mean": lambda lp: math.exp(sum(lp) / len(lp)),          # LikelihoodValue (the demo's)
    "sequence": lambda lp: math.exp(sum(lp)),                            # whole-response probability
    "min_token": lambda lp: math.exp(min(lp)),                           # the weakest token
    "bottom3_mean": lambda lp: math.exp(statistics.mean(sorted(lp)[:3])),
    "tokens_below_e-1": lambda lp: 1.0 / (1.0 + sum(x < -1.0 for x in lp)),
    "last8_mean": lambda lp: math.exp(statistics.mean(lp[-8:])),        # the final answer line
}


def likelihood_variants(gen, held) -> dict:
    """Other ways to read the policy's own token log-probabilities as a value (an error is often one
    unlikely sampled token; averaging dilutes it), each scored like the critics."""
    scored = gen.logprobs([t.prompt for t in held], ["".join(t.steps) for t in held])
    lps = [list(s.logprobs) or [0.0] for s in scored]
    return {name: discrimination([f(lp) for lp in lps], held) for name, f in LIKELIHOOD_VARIANTS.items()}


def search_rows(gen, problems, beam_width: int) -> dict:
    """Greedy, maj@8, likelihood-weighted best-of-8 and likelihood-guided beam on `problems`."""
    from launch.evaluation import evaluate_problems
    from search.evaluators import LikelihoodValue
    from search.value_guided import BeamConfig
    prompts, value = prompts_of(problems), LikelihoodValue(gen)
    rows = {}
    for method in ("greedy", "maj@8", "best_of_n@8", f"beam@{beam_width}"):
        res = evaluate_problems(gen, problems, prompts, method, temperature=TEMPERATURE, max_tokens=64, seed=0,
                                value_fn=value, search_cfg=BeamConfig(beam_width=beam_width, max_step_tokens=24,
                                                                      temperature=TEMPERATURE)
                                if method.startswith("beam") else None)
        rows[method] = {"accuracy": round(res.accuracy, 4), "tokens_per_problem": round(res.generated_tokens / res.n, 1)}
    return rows


def plot(out: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    lines = sorted({(p["size"], p["value_states"]) for p in out["curve"]})
    for size, target in lines:
        pts = sorted((p for p in out["curve"] if (p["size"], p["value_states"]) == (size, target)),
                     key=lambda p: p["trajectories"])
        label = f"{size} ({pts[0]['params'] / 1e6:.1f}M), {target}"
        a1.plot([p["trajectories"] for p in pts], [p["within_problem_auc"] for p in pts], "o-", label=label)
        a2.plot([p["trajectories"] for p in pts], [p["bon_accuracy"] for p in pts], "o-", label=label)
    a1.axhline(0.5, color="grey", ls=":", label="no information")
    a1.axhline(0.8, color="green", ls="--", label="target 0.80")
    a2.axhline(out["heldout"]["majority_accuracy"], color="black", ls="--", label="maj@8")
    a2.axhline(out["heldout"]["sample_accuracy"], color="grey", ls=":", label="one sample")
    if "likelihood" in out:
        a1.axhline(out["likelihood"]["within_problem_auc"], color="purple", ls="-.", label="policy likelihood")
        a2.axhline(out["likelihood"]["bon_accuracy"], color="purple", ls="-.", label="policy likelihood")
    for ax, title in ((a1, "within-problem AUC of V(final state)"), (a2, "best-of-8 by value: accuracy")):
        ax.set_xscale("log")
        ax.set_xlabel("training trajectories")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 trajectories, 150 held-out problems, size S")
    ap.add_argument("--curve", type=int, nargs="+", default=None, help="training trajectories (default 3000 10000)")
    ap.add_argument("--sizes", nargs="+", default=["S"], choices=["S", *SIZES], help="critic trunks")
    ap.add_argument("--targets", nargs="+", default=["all", "final"], choices=["all", "final"])
    ap.add_argument("--heldout-problems", type=int, default=None, help="default 500 (--quick 150)")
    ap.add_argument("--demo-value", choices=["likelihood", "learned"], default="likelihood",
                    help="eval.value of configs/arith_tiny.yaml: which value the top-level AUC describes")
    ap.add_argument("--demo-trajectories", type=int, default=6000,
                    help="trajectories the demo's critic sees per iteration (picks the top-level point)")
    ap.add_argument("--trunk-steps", type=int, default=2000, help="SFT steps of the M/L trunks")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--value-lr", type=float, default=1e-3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-critic", action="store_true",
                    help="only the likelihood rows (no critic curve); writes value_discrimination_likelihood.json")
    ap.add_argument("--search", action="store_true",
                    help="also run greedy / maj@8 / best-of-8 / beam@3 with the likelihood value on the held-out problems")
    ap.add_argument("--policy", default=None, help="SFT policy (default: the committed tiny policy)")
    ap.add_argument("--out", default=None, help="JSON output (default: results/value_discrimination.json; --quick: temp)")
    args = ap.parse_args(argv)
    import torch

    from envs.arith import load_arith
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    curve = args.curve or ([2000] if args.quick else [3000, 10000])
    n_heldout = args.heldout_problems or (150 if args.quick else 500)
    t0 = time.perf_counter()
    ctx = Ctx(args.policy or str(DEFAULT_POLICY), args.device)
    policy = ctx.load().eval()
    gen = ctx.generator(policy)
    heldout = load_arith("train", n_heldout, seed=999)          # validation problems: train split, own seed
    held = sample_trajectories(gen, heldout, prompts_of(heldout), seed=3)
    pool_problems = [] if args.no_critic else load_arith("train", -(-max(curve) // SAMPLES), seed=200)
    pool = sample_trajectories(gen, pool_problems, prompts_of(pool_problems), seed=1) if pool_problems else []
    print(f"sampled {len(pool)} training and {len(held)} held-out responses in {time.perf_counter() - t0:.0f} s")
    out = {"curve": [], "heldout": {"problems": n_heldout, **baselines(held)}, "likelihood": likelihood_row(gen, held)}
    print(f"policy likelihood (no training): within AUC {out['likelihood']['within_problem_auc']:.3f}, "
          f"best-of-8 {out['likelihood']['bon_accuracy']:.3f}, weighted {out['likelihood']['weighted_accuracy']:.3f}")
    out["likelihood_variants"] = likelihood_variants(gen, held)
    for name, row in out["likelihood_variants"].items():
        print(f"  likelihood variant {name:<18} within AUC {row['within_problem_auc']:.3f}  best-of-8 "
              f"{row['bon_accuracy']:.3f}  weighted {row['weighted_accuracy']:.3f}", flush=True)
    if args.search:
        out["search_with_likelihood"] = search_rows(gen, heldout, 3)
        print("search with the likelihood value:", out["search_with_likelihood"])
    name = "value_discrimination_likelihood" if args.no_critic else "value_discrimination"
    path = results_path(name, quick=args.quick, out=args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.json")
    for size in ([] if args.no_critic else args.sizes):
        trunk = policy if size == "S" else train_trunk(ctx, size, args.trunk_steps)
        params = sum(p.numel() for p in trunk.base_model.parameters()) + trunk.config.hidden_size
        for target in args.targets:
            for n in curve:
                value, stats = fit_critic(ctx, trunk, pool[:n], target, args)
                point = {"trajectories": n, "params": params, "size": size, "value_states": target,
                         **discrimination(score(value, held), held),
                         "train_auc": discrimination(score(value, pool[:2400]), pool[:2400])["pooled_auc"], **stats}
                out["curve"].append(point)
                partial.write_text(json.dumps(out, indent=2) + "\n")      # survives an interrupted run
                print(f"{size:>2} {target:>5} {n:>7} traj: within AUC {point['within_problem_auc']:.3f}  pooled "
                      f"{point['pooled_auc']:.3f}  train {point['train_auc']:.3f}  best-of-8 {point['bon_accuracy']:.3f}"
                      f"  weighted {point['weighted_accuracy']:.3f}  ({stats['fit_seconds']:.0f} s)", flush=True)
    demo = [p for p in out["curve"] if p["size"] == "S" and p["value_states"] == "all"] or out["curve"]
    top = min(demo, key=lambda p: abs(p["trajectories"] - args.demo_trajectories)) if demo else None
    if args.demo_value == "likelihood" or top is None:
        out.update(within_problem_auc=out["likelihood"]["within_problem_auc"], demo_point={"value": "likelihood"})
    else:
        out.update(within_problem_auc=top["within_problem_auc"],
                   demo_point={"value": "learned", **{k: top[k] for k in ("size", "value_states", "trajectories")}})
    out.update(config={"samples_per_problem": SAMPLES, "temperature": TEMPERATURE, "epochs": args.epochs,
                       "batch_size": args.batch_size, "value_lr": args.value_lr, "trunk_steps": args.trunk_steps,
                       "device": args.device, "quick": args.quick, "policy": os.path.relpath(ctx.policy, ROOT)},
               wall_s=round(time.perf_counter() - t0, 1))
    print(f"maj@8 {out['heldout']['majority_accuracy']:.3f}, one sample {out['heldout']['sample_accuracy']:.3f}; "
          f"demo point within AUC {out['within_problem_auc']:.3f}")
    path.write_text(json.dumps(out, indent=2) + "\n")
    partial.unlink(missing_ok=True)
    if args.no_critic:
        print(f"wrote {path}")
        return 0
    plot(out, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


from benchmarks.learners import DEFAULT_POLICY, Ctx, prompts_of  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
