"""Does a learned value rank responses, or only problems? (embedded default, CPU)

    python benchmarks/value_discrimination.py            # 1024 training problems, 500 held-out (minutes)
    python benchmarks/value_discrimination.py --quick    # 256 / 150

Why value-guided search loses to greedy on the embedded default (benchmarks/learners.py,
`oreo_beam`): it needs a value that tells a correct response from a wrong one *of the same
problem*. This fits a critic (`OREOLearner` with `train_policy=False`: V(s_t) regressed on R)
on the MCTS trajectories of the committed SFT policy, as `configs/arith_tiny.yaml` does,
then scores 8 temperature-0.7 samples per held-out problem at their final state and reports:

- `train_auc`: AUC of V(final state) between correct and wrong training trajectories;
- `pooled_auc`: the same over all held-out samples (mixes problems: a value that only knows
  which problems are hard scores well here);
- `within_problem_auc`: mean AUC over problems with both correct and wrong samples (what
  best-of-N and beam search need; 0.5 = no information);
- `argmax_value_accuracy` vs `random_sample_accuracy`: best-of-8 by value vs one sample.

Writes benchmarks/results/value_discrimination.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "value_discrimination.json"
SAMPLES = 8


def auc(pos: list[float], neg: list[float]) -> float | None:
    """P(a random positive scores above a random negative), ties counted half; None if a side is empty."""
    if not pos or not neg:
        return None
    return sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="256 training / 150 held-out problems")
    ap.add_argument("--train-problems", type=int, default=None)
    ap.add_argument("--heldout-problems", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--value-lr", type=float, default=1e-3)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    import torch

    import learners as L
    from envs.arith import load_arith
    from envs.grading import grade
    from reasoner.generation import SamplingParams
    from reasoner.value_model import ValueModel
    from rl.learners.oreo import OREOConfig, OREOLearner

    torch.set_num_threads(1)
    n_train = args.train_problems or (256 if args.quick else 1024)
    n_heldout = args.heldout_problems or (150 if args.quick else 500)
    t0 = time.perf_counter()
    ctx = L.Ctx(str(L.DEFAULT_POLICY), "cpu")
    problems = L.train_problems(n_train, 200)
    gen = ctx.generator(ctx.load().eval())
    trajs = L.collect_mcts(gen, problems, L.prompts_of(problems), 0)["trajectories"]
    cfg = OREOConfig(value_lr=args.value_lr, epochs=args.epochs, batch_size=8, grad_accum=2, max_len=256,
                     device="cpu", save_every=0, train_policy=False)
    policy = ctx.load()
    learner = OREOLearner(policy, ctx.load(), ValueModel.from_policy(policy, ctx.tok), ctx.tok, cfg)
    fit = learner.fit(trajs, progress=False)
    value = learner.value.eval()

    train_v = value.values([t.prompt + "".join(t.steps) for t in trajs], batch_size=256)
    train_auc = auc([v for v, t in zip(train_v, trajs) if t.reward == 1],
                    [v for v, t in zip(train_v, trajs) if t.reward == 0])

    heldout = load_arith("train", n_heldout, seed=999)   # validation problems: train split, own seed
    prompts = L.prompts_of(heldout)
    samples = gen.generate(prompts, SamplingParams(n=SAMPLES, max_tokens=64, temperature=0.7, seed=3))
    values = value.values([p + c.text for p, row in zip(prompts, samples) for c in row], batch_size=256)
    pos, neg, within, picked, random_acc = [], [], [], 0, 0.0
    for i, (problem, row) in enumerate(zip(heldout, samples)):
        vs = values[i * SAMPLES:(i + 1) * SAMPLES]
        correct = [grade(c.text, problem.answer) for c in row]
        p = [v for v, c in zip(vs, correct) if c]
        n = [v for v, c in zip(vs, correct) if not c]
        pos, neg = pos + p, neg + n
        if (a := auc(p, n)) is not None:
            within.append(a)
        picked += correct[max(range(SAMPLES), key=vs.__getitem__)]
        random_acc += sum(correct) / SAMPLES
    out = {
        "train_auc": round(train_auc, 4),
        "pooled_auc": round(auc(pos, neg), 4),
        "within_problem_auc": round(statistics.mean(within), 4),
        "problems_with_mixed_outcomes": len(within),
        "argmax_value_accuracy": round(picked / len(heldout), 4),
        "random_sample_accuracy": round(random_acc / len(heldout), 4),
        "config": {"train_problems": n_train, "trajectories": len(trajs),
                   "positive_trajectories": int(sum(t.reward for t in trajs)), "heldout_problems": n_heldout,
                   "samples_per_problem": SAMPLES, "temperature": 0.7, "epochs": args.epochs,
                   "value_lr": args.value_lr, "final_value_loss": round(fit["last"]["value_loss"], 4),
                   "policy": os.path.relpath(L.DEFAULT_POLICY, ROOT), "quick": args.quick},
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(f"{'measure':<28} {'value':>7}")
    for key in ("train_auc", "pooled_auc", "within_problem_auc", "argmax_value_accuracy", "random_sample_accuracy"):
        print(f"{key:<28} {out[key]:>7.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
