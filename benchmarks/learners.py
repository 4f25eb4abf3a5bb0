"""The learners compared on the embedded default: step-DPO, response-level DPO, RFT and OREO (+ value search).

    python benchmarks/learners.py                 # 3 seeds (see the table printed at the end)
    python benchmarks/learners.py --quick         # one small seed, a few minutes
    python benchmarks/learners.py --tune          # the learning-rate sweeps behind HYPER (validation set)
    python benchmarks/learners.py --device cuda --quick   # bf16 autocast learners + HF generator on CUDA

Per seed, starting from the committed SFT policy (tests/data/tiny_arith_policy, greedy ~48%):
1. MCTS (`search.mcts.StepMCTS`, outcome reward at terminals as `launch/workers.py` collects) over
   `train_problems` fresh training problems -> step pairs (`search.pairs`) and graded trajectories
   (`search.trajectories`); T = the tokens it generated.
2. Rejection sampling with the same T tokens: rounds of one temperature-1 sample per problem until
   T is spent -> response pairs (a correct vs an incorrect response of one problem, at most
   `max_pairs` per problem, without replacement) and RFT data (the distinct correct responses).
3. From the SFT policy: `step_dpo` (StepDPOLearner on the MCTS pairs, eps = visit-count label
   smoothing), `response_dpo` (the same learner and loss on the response pairs with an empty prefix
   and eps = 0, i.e. plain DPO of Rafailov et al.), `rft` (rl.learners.sft.SFTLearner on the
   correct samples: rejection-sampling fine-tuning), `oreo` (OREOLearner, token level, policy +
   value, on the MCTS trajectories; OREO arXiv 2412.16145 eqs. 8-9).
4. Greedy accuracy of every policy on the same held-out problems (`launch.evaluation`), then with
   the OREO policy and value: `oreo_beam` (value-guided step beam search, OREO section 4.4) vs
   `oreo_bon` (value-weighted best-of-N) at equal generated tokens: N is not fixed, every problem
   samples one response per round until it has spent the beam's mean tokens per problem. The same
   samples also give maj@N (`oreo_maj`) and argmax-value best-of-N (`oreo_bon_best`), extra keys.

Hyperparameters: the learners' defaults are the papers' 7B settings (lr 1e-6 etc.), which do not
move a 0.5M-parameter model. `HYPER` holds values picked by `--tune`: for every learner the same
grid size (4 learning rates x 2 values of its second knob), collected on a separate data seed and
scored by greedy accuracy on validation problems from the *train* split (never the test set).

Writes benchmarks/results/learners.json: {"methods": {name: {"accuracy_mean", "accuracy_std",
"generated_tokens", ...}}, "seeds": [...], ...}; `generated_tokens` is the tokens generated to
collect the method's training data (learners; 0 for sft) or per held-out problem at test time
(oreo_* search methods); both counts are also given separately for every method.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "learners.json"
from benchmarks.results_path import results_path  # noqa: E402
DEFAULT_POLICY = ROOT / "tests" / "data" / "tiny_arith_policy"
LEARNERS = ("step_dpo", "response_dpo", "rft", "oreo")

# Picked by `--tune` (benchmarks/results/learners_tune.json); see the module docstring.
HYPER: dict[str, dict] = {
    "step_dpo": {"lr": 3e-6, "beta": 1.0, "epochs": 2},
    "response_dpo": {"lr": 1e-5, "beta": 1.0, "epochs": 2},
    "rft": {"lr": 3e-5, "epochs": 3},
    "oreo": {"policy_lr": 3e-5, "value_lr": 3e-3, "beta": 0.3, "epochs": 2},
    "oreo_search": {"temperature": 0.7},
}
GRID: dict[str, list[dict]] = {
    "step_dpo": [{"lr": lr, "beta": b} for lr in (3e-6, 1e-5, 3e-5, 1e-4) for b in (0.1, 1.0)],
    "response_dpo": [{"lr": lr, "beta": b} for lr in (3e-6, 1e-5, 3e-5, 1e-4) for b in (0.1, 1.0)],
    "rft": [{"lr": lr, "epochs": e} for lr in (3e-5, 1e-4, 3e-4, 1e-3) for e in (1, 3)],
    "oreo": [{"policy_lr": lr, "beta": b} for lr in (3e-5, 1e-4, 3e-4, 1e-3) for b in (0.03, 0.3)],
    "oreo_search": [{"value_lr": lr, "temperature": t} for lr in (3e-4, 1e-3, 3e-3) for t in (0.7, 1.0)],
}


@dataclass
class Budget:
    """Sizes of one run (full or --quick)."""
    train_problems: int = 512
    test_problems: int = 2000        # greedy accuracy
    search_problems: int = 500       # oreo_beam / oreo_bon (a prefix of the test problems)
    val_problems: int = 2000         # --tune only (train split, its own data seed)
    beam_width: int = 3
    max_pairs: int = 8               # per problem, for both pair sources (search.pairs default)


FULL, QUICK = Budget(), Budget(train_problems=128, test_problems=500, search_problems=100, val_problems=500)


def mcts_config(seed: int):
    """The collection search of configs/arith_tiny.yaml (8 simulations, 4x at the root, depth 8)."""
    from search.mcts import MCTSConfig
    return MCTSConfig(num_simulations=8, first_decision_multiplier=4, first_num_candidates=4, num_candidates=2,
                      depth_limit=8, max_steps=8, max_step_tokens=24, seed=seed)


# ---------------------------------------------------------------------------------- models
class Ctx:
    """What every phase needs: device, the SFT policy path and its tokenizer."""

    def __init__(self, policy: str, device: str):
        from reasoner.loading import load_tokenizer
        self.policy, self.device = policy, device
        self.tok = load_tokenizer(policy)

    def load(self):
        """A fresh float32 copy of the SFT policy on the device (trainable weights stay float32)."""
        from reasoner.loading import load_policy
        return load_policy(self.policy, self.device, "float32")[0]

    def generator(self, model, seed: int = 0):
        from reasoner.generation import GeneratorConfig
        from reasoner.hf_backend import HFGenerator
        return HFGenerator(model, self.tok, GeneratorConfig(seed=seed, max_batch_size=512, device=self.device))


def prompts_of(problems) -> list[str]:
    from reasoner.templates import PromptConfig, render_prompt
    return [render_prompt(p.question, PromptConfig()) for p in problems]


# ---------------------------------------------------------------------------------- data
def collect_mcts(gen, problems, prompts, seed: int) -> dict:
    """Step pairs, trajectories and generated tokens of one batched MCTS over `problems`."""
    from search.evaluators import OutcomeValue
    from search.mcts import StepMCTS
    from search.pairs import PairConfig, pairs_from_result
    from search.trajectories import trajectories_from_result
    t0 = time.perf_counter()
    result = StepMCTS(gen, OutcomeValue(), mcts_config(seed)).search(prompts, problems)
    pairs = pairs_from_result(result, prompts, problems, PairConfig(seed=seed))
    trajs = trajectories_from_result(result, prompts, problems)
    return {"pairs": pairs, "trajectories": trajs, "tokens": int(result.stats.generated_tokens),
            "seconds": time.perf_counter() - t0}


def rejection_sample(gen, problems, prompts, token_budget: int, seed: int) -> dict:
    """Temperature-1 samples, one per problem per round, until `token_budget` tokens are spent.

    The last round samples only as many problems (in a seeded order) as the remaining budget
    covers at the mean sample length so far, so the total lands close to the budget.
    """
    from reasoner.generation import FinishReason, SamplingParams
    t0, spent, rnd = time.perf_counter(), 0, 0
    samples: list[list] = [[] for _ in problems]
    order = list(range(len(problems)))
    while spent < token_budget:
        random.Random(seed * 7919 + rnd).shuffle(order)
        n_done = sum(len(s) for s in samples)
        mean_len = spent / n_done if n_done else 32.0
        take = sorted(order[:max(1, min(len(order), math.ceil((token_budget - spent) / mean_len)))])
        out = gen.generate([prompts[i] for i in take],
                           SamplingParams(n=1, max_tokens=64, temperature=1.0, seed=seed * 1_000_003 + rnd))
        for i, row in zip(take, out):
            c = row[0]
            spent += c.num_tokens
            samples[i].append((c.text, c.finish_reason == FinishReason.EOS))
        rnd += 1
    return {"samples": samples, "tokens": spent, "seconds": time.perf_counter() - t0}


def response_data(samples, problems, prompts, max_pairs: int, seed: int) -> tuple[list, list]:
    """(response-level pairs as StepPairs with an empty prefix, RFT (prompt, response) examples)."""
    from envs.grading import grade
    from reasoner.records import StepPair
    pairs, rft = [], []
    for i, (prob, prompt) in enumerate(zip(problems, prompts)):
        pos, neg, seen = [], [], set()
        for text, eos in samples[i]:
            if text in seen:
                continue
            seen.add(text)
            (pos if eos and grade(text, prob.answer) else neg).append(text)
        rft.extend((prompt, t) for t in pos)
        rng = random.Random(f"{seed}/{prob.id}")
        rng.shuffle(pos)
        rng.shuffle(neg)
        for w, l in list(zip(pos, neg))[:max_pairs]:
            pairs.append(StepPair(problem_id=prob.id, policy_version=0, depth=0, prompt=prompt, prefix="",
                                  chosen=w, rejected=l, q_chosen=1.0, q_rejected=0.0, n_chosen=1, n_rejected=1,
                                  weight=0.0))
    return pairs, rft


# ---------------------------------------------------------------------------------- learners
def train_dpo(ctx: Ctx, pairs, hp: dict, seed: int):
    """StepDPOLearner from the SFT policy (reference = SFT); returns (policy, info)."""
    from rl.learners.step_dpo import StepDPOConfig, StepDPOLearner
    cfg = StepDPOConfig(lr=hp["lr"], beta=hp["beta"], epochs=hp.get("epochs", 1), batch_size=8, grad_accum=2,
                        max_len=256, seed=seed, device=ctx.device, save_every=0)
    learner = StepDPOLearner(ctx.load(), ctx.load(), ctx.tok, cfg)
    s = learner.fit(pairs, progress=False)
    return learner.policy, {"steps": s["steps"], "seconds": round(s["seconds"], 1), "records": s["pairs"],
                            **{k: round(float(v), 4) for k, v in s["last"].items() if k in ("loss", "margin")}}


def train_rft(ctx: Ctx, examples, hp: dict, seed: int):
    """SFTLearner on the policy's own correct samples (rejection-sampling fine-tuning)."""
    import torch

    from rl.learners.sft import SFTConfig, SFTLearner
    bsz = 16
    steps = max(1, hp.get("epochs", 1) * math.ceil(len(examples) / bsz))
    cfg = SFTConfig(steps=steps, batch_size=bsz, lr=hp["lr"], warmup_steps=max(1, steps // 30), log_every=10**9,
                    save_every=0, device=ctx.device)
    perms = {}

    def batches(step: int):
        epoch, k = divmod(step * bsz, len(examples))
        if epoch not in perms:
            perms[epoch] = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed * 1009 + epoch))
        idx = perms[epoch].tolist()
        return [examples[idx[(k + j) % len(examples)]] for j in range(bsz)]

    model = ctx.load().train()
    s = SFTLearner(model, ctx.tok, cfg, batches).fit(progress=False)
    return model, {"steps": s["steps"], "seconds": round(s["seconds"], 1), "records": len(examples),
                   "loss": round(float(s["final_loss"]), 4)}


def train_oreo(ctx: Ctx, trajs, hp: dict, seed: int):
    """OREOLearner (token level) from the SFT policy and a fresh critic; returns (policy, value, info)."""
    from reasoner.value_model import ValueModel
    from rl.learners.oreo import OREOConfig, OREOLearner
    cfg = OREOConfig(policy_lr=hp["policy_lr"], value_lr=hp.get("value_lr", 1e-3), beta=hp.get("beta", 0.03),
                     epochs=hp.get("epochs", 1), batch_size=8, grad_accum=2, max_len=256, seed=seed,
                     device=ctx.device, save_every=0)
    policy = ctx.load()
    learner = OREOLearner(policy, ctx.load(), ValueModel.from_policy(policy, ctx.tok), ctx.tok, cfg)
    s = learner.fit(trajs, progress=False)
    last = s["last"]
    return learner.policy, learner.value, {"steps": s["steps"], "seconds": round(s["seconds"], 1),
                                           "records": s["trajectories"],
                                           **{k: round(float(last[k]), 4) for k in ("value_loss", "kl", "logratio")}}


def train(ctx: Ctx, method: str, data: dict, hp: dict, seed: int):
    """(policy, value or None, info) of one learner on one seed's data."""
    if method == "oreo":
        return train_oreo(ctx, data["mcts"]["trajectories"], hp, seed)
    if method == "rft":
        policy, info = train_rft(ctx, data["rft"], hp, seed)
    else:
        policy, info = train_dpo(ctx, data["mcts"]["pairs"] if method == "step_dpo" else data["response_pairs"],
                                 hp, seed)
    return policy, None, info


# ---------------------------------------------------------------------------------- evaluation
class _BigBatchValue:
    """`ValueModel.values` with large batches (the default 16 is slow for thousands of states)."""

    def __init__(self, value_model, batch_size: int = 256):
        self.model, self.batch_size = value_model, batch_size

    def values(self, prefixes: list[str]) -> list[float]:
        return self.model.values(prefixes, batch_size=self.batch_size)


def greedy_accuracy(ctx: Ctx, model, problems, prompts) -> dict:
    from launch.evaluation import evaluate_problems
    model.eval()
    res = evaluate_problems(ctx.generator(model), problems, prompts, "greedy", max_tokens=64)
    return {"accuracy": res.accuracy, "n": res.n, "tokens_per_problem": res.generated_tokens / res.n,
            "correct": [r.correct for r in res.records]}


def value_search(ctx: Ctx, model, value, problems, prompts, beam_width: int, seed: int,
                 temperature: float) -> dict:
    """oreo_beam vs oreo_bon (and maj / best over the same samples) at equal mean tokens per problem."""
    from envs.grading import grade
    from search import value_guided as vg
    from search.evaluators import LearnedValue
    from search.value_guided import vote
    model.eval()
    vfn = LearnedValue(_BigBatchValue(value))
    def scored(responses: list[str], tokens: float) -> dict:
        correct = [grade(r, p.answer) for r, p in zip(responses, problems)]
        return {"accuracy": sum(correct) / len(problems), "tokens_per_problem": tokens, "correct": correct}

    beam = vg.beam_search(ctx.generator(model, seed), vfn, prompts, problems,
                          vg.BeamConfig(beam_width=beam_width, max_step_tokens=24, temperature=temperature, seed=seed))
    beam_tok = beam.stats.generated_tokens / len(problems)
    greedy = greedy_accuracy(ctx, model, problems, prompts)
    sample_len = greedy["tokens_per_problem"]
    bon_cfg = vg.BestOfNConfig(n=256, mode=vg.BestOfNMode.WEIGHTED, samples_per_round=1, max_tokens=64,
                               temperature=temperature, token_budget=max(1, round(beam_tok - sample_len / 2)),
                               seed=seed)
    bon = vg.best_of_n(ctx.generator(model, seed), prompts, problems, bon_cfg, vfn)
    samples = [[t.steps[0].text] + [a[0] for a in t.steps[0].alternatives] for t in bon.traces]
    values = [[t.steps[0].value] + [a[1] for a in t.steps[0].alternatives] for t in bon.traces]
    bon_tok = bon.stats.generated_tokens / len(problems)
    best = [s[max(range(len(s)), key=v.__getitem__)] for s, v in zip(samples, values)]
    return {"oreo_greedy_subset": greedy,
            "oreo_beam": scored([t.response for t in beam.traces], beam_tok),
            "oreo_bon": {**scored([t.response for t in bon.traces], bon_tok),
                         "mean_n": statistics.mean(len(s) for s in samples)},
            "oreo_maj": scored([s[vote(s)] for s in samples], bon_tok),
            "oreo_bon_best": scored(best, bon_tok)}


# ---------------------------------------------------------------------------------- one seed
def train_problems(n: int, data_seed: int):
    from envs.arith import load_arith
    return load_arith("train", n, seed=data_seed)


def collect(ctx: Ctx, problems, seed: int, budget: Budget) -> dict:
    """MCTS data, then rejection sampling at the same generated tokens, from the SFT policy."""
    gen = ctx.generator(ctx.load().eval(), seed)
    prompts = prompts_of(problems)
    mcts = collect_mcts(gen, problems, prompts, seed)
    rs = rejection_sample(gen, problems, prompts, mcts["tokens"], seed)
    rpairs, rft = response_data(rs["samples"], problems, prompts, budget.max_pairs, seed)
    stats = {"problems": len(problems), "mcts_tokens": mcts["tokens"], "mcts_s": round(mcts["seconds"], 1),
             "step_pairs": len(mcts["pairs"]), "trajectories": len(mcts["trajectories"]),
             "positive_trajectories": int(sum(t.reward for t in mcts["trajectories"])),
             "rs_tokens": rs["tokens"], "rs_s": round(rs["seconds"], 1),
             "rs_samples": sum(len(s) for s in rs["samples"]), "response_pairs": len(rpairs),
             "rft_examples": len(rft)}
    return {"mcts": mcts, "rs": rs, "response_pairs": rpairs, "rft": rft, "stats": stats}


def run_seed(ctx: Ctx, seed: int, budget: Budget, hyper: dict, test, test_prompts) -> dict:
    """Every method on one seed: {"data": stats, "methods": {name: {...}}}."""
    t0 = time.perf_counter()
    data = collect(ctx, train_problems(budget.train_problems, 100 + seed), seed, budget)
    train_tokens = {"sft": 0, "step_dpo": data["stats"]["mcts_tokens"], "oreo": data["stats"]["mcts_tokens"],
                    "response_dpo": data["stats"]["rs_tokens"], "rft": data["stats"]["rs_tokens"]}
    methods = {"sft": greedy_accuracy(ctx, ctx.load(), test, test_prompts)}
    for name in LEARNERS:
        policy, value, info = train(ctx, name, data, hyper[name], seed)
        methods[name] = {**greedy_accuracy(ctx, policy, test, test_prompts), "train": info}
        print(f"  seed {seed} {name:<13} greedy {methods[name]['accuracy']:.3f}  {info}", flush=True)
        if name == "oreo":
            oreo_policy, oreo_value = policy, value
    n = budget.search_problems
    search = value_search(ctx, oreo_policy, oreo_value, test[:n], test_prompts[:n], budget.beam_width, seed,
                          hyper["oreo_search"]["temperature"])
    for name, res in search.items():
        methods[name] = {**res, "n": n}
    for name, res in methods.items():
        res["train_tokens"] = train_tokens.get(name, train_tokens["oreo"])
    return {"data": data["stats"], "methods": methods, "wall_s": round(time.perf_counter() - t0, 1)}


# ---------------------------------------------------------------------------------- tuning
def tune(ctx: Ctx, budget: Budget) -> dict:
    """The sweeps behind HYPER: GRID per learner on data seed 200, scored on validation problems."""
    from envs.arith import load_arith
    problems = train_problems(budget.train_problems, 200)
    ids = {p.id for p in problems}
    val = [p for p in load_arith("train", budget.val_problems + len(problems), seed=999) if p.id not in ids]
    val = val[:budget.val_problems]
    val_prompts = prompts_of(val)
    data = collect(ctx, problems, 0, budget)
    out = {"data": data["stats"], "sft": greedy_accuracy(ctx, ctx.load(), val, val_prompts)["accuracy"],
           "validation": f"{len(val)} train-split problems, data seed 999", "runs": {}, "best": {}}
    print(f"tune: data {data['stats']}\n  sft val {out['sft']:.3f}", flush=True)
    for name in LEARNERS:
        runs = []
        for point in GRID[name]:
            hp = {**HYPER[name], **point}
            policy, _, info = train(ctx, name, data, hp, 0)
            runs.append({"hp": hp, "val_accuracy": greedy_accuracy(ctx, policy, val, val_prompts)["accuracy"],
                         "train": info})
            print(f"  {name:<13} {point} val {runs[-1]['val_accuracy']:.3f} {info}", flush=True)
        out["runs"][name] = runs
        out["best"][name] = max(runs, key=lambda r: r["val_accuracy"])["hp"]
    runs, n, trained = [], budget.search_problems, {}
    for point in GRID["oreo_search"]:   # the value's lr and the sampling temperature, scored by beam + bon
        hp = {**out["best"]["oreo"], "value_lr": point["value_lr"]}
        if point["value_lr"] not in trained:
            trained[point["value_lr"]] = train(ctx, "oreo", data, hp, 0)[:2]
        res = value_search(ctx, *trained[point["value_lr"]], val[:n], val_prompts[:n], budget.beam_width, 0,
                           point["temperature"])
        runs.append({"hp": point, **{k: round(v["accuracy"], 4) for k, v in res.items()},
                     "tokens_per_problem": {k: round(v["tokens_per_problem"], 1) for k, v in res.items()}})
        print(f"  oreo_search {runs[-1]}", flush=True)
    out["runs"]["oreo_search"] = runs
    best = max(runs, key=lambda r: r["oreo_beam"] + r["oreo_bon"])["hp"]
    out["best"]["oreo"] = {**out["best"]["oreo"], "value_lr": best["value_lr"]}
    out["best"]["oreo_search"] = {"temperature": best["temperature"]}
    return out


# ---------------------------------------------------------------------------------- report
def paired(a: list[bool], b: list[bool]) -> tuple[float, float]:
    """Mean of a - b over the same problems and its standard error (paired, per-problem differences)."""
    d = [float(x) - float(y) for x, y in zip(a, b)]
    return statistics.mean(d), statistics.stdev(d) / math.sqrt(len(d))


COMPARISONS = {  # the papers' directions: (better, worse)
    "step_dpo - response_dpo": ("step_dpo", "response_dpo"), "step_dpo - rft": ("step_dpo", "rft"),
    "oreo - sft": ("oreo", "sft"), "oreo_beam - oreo_bon": ("oreo_beam", "oreo_bon"),
}


def compare(per_seed: list[dict], a: str, b: str) -> dict:
    """Paired difference a - b per seed (on the problems both were scored on), mean and std over seeds."""
    rows = []
    for s in per_seed:
        x, y = s["methods"][a]["correct"], s["methods"][b]["correct"]
        rows.append(paired(x, y[:len(x)]) if len(x) <= len(y) else paired(x[:len(y)], y))
    diffs = [d for d, _ in rows]
    return {"mean": round(statistics.mean(diffs), 4),
            "std_over_seeds": round(statistics.stdev(diffs), 4) if len(diffs) > 1 else 0.0,
            "per_seed": [round(d, 4) for d in diffs], "paired_se_per_seed": [round(se, 4) for _, se in rows]}


def aggregate(per_seed: list[dict]) -> dict:
    """Mean and std over seeds of every method, and the paired difference to sft greedy on the same problems."""
    out = {}
    for name in per_seed[0]["methods"]:
        rows = [s["methods"][name] for s in per_seed]
        acc = [r["accuracy"] for r in rows]
        mean, n = statistics.mean(acc), rows[0]["n"]
        search = name.startswith("oreo_")
        out[name] = {
            "accuracy_mean": round(mean, 4),
            "accuracy_std": round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
            "generated_tokens": round(statistics.mean(r["tokens_per_problem"] if search else r["train_tokens"]
                                                      for r in rows), 1),
            "train_tokens": round(statistics.mean(r["train_tokens"] for r in rows)),
            "eval_tokens_per_problem": round(statistics.mean(r["tokens_per_problem"] for r in rows), 1),
            "binomial_se": round(math.sqrt(mean * (1 - mean) / n), 4), "n": n,
            "accuracy_per_seed": [round(a, 4) for a in acc],
            "vs_sft_greedy_same_problems": compare(per_seed, name, "sft"),
        }
        if "train" in rows[0]:
            out[name]["train"] = [r["train"] for r in rows]
        if "mean_n" in rows[0]:
            out[name]["samples_per_problem"] = round(statistics.mean(r["mean_n"] for r in rows), 2)
    return out


def print_table(methods: dict) -> None:
    print(f"\n{'method':<19} {'accuracy':>14} {'per seed':>20} {'vs sft (paired se)':>19} {'train tok':>9} "
          f"{'eval tok/prob':>13} {'n':>5}")
    for name, m in methods.items():
        per = " ".join(f"{a:.3f}" for a in m["accuracy_per_seed"])
        d = m["vs_sft_greedy_same_problems"]
        se = statistics.mean(d["paired_se_per_seed"])
        print(f"{name:<19} {m['accuracy_mean']:>6.3f} ± {m['accuracy_std']:.3f} {per:>20} "
              f"{d['mean']:>+9.3f} ({se:.3f}){m['train_tokens']:>10} {m['eval_tokens_per_problem']:>13.1f} {m['n']:>5}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one small seed (a few minutes)")
    ap.add_argument("--tune", action="store_true", help="run the sweeps behind HYPER instead of the comparison")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2; --quick: 0)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--policy", default=str(DEFAULT_POLICY), help="SFT policy (HF checkpoint directory)")
    ap.add_argument("--train-problems", type=int, default=None, help="training problems per seed (default 512)")
    ap.add_argument("--out", default=None, help=f"JSON output (default {RESULTS.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    import torch

    from envs.arith import load_arith
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    budget = QUICK if args.quick else FULL
    if args.train_problems:
        budget = replace(budget, train_problems=args.train_problems)
    ctx, t0 = Ctx(args.policy, args.device), time.perf_counter()
    meta = {"quick": args.quick, "device": args.device, "policy": os.path.relpath(args.policy, ROOT),
            "budget": asdict(budget), "mcts": {k: v for k, v in asdict(mcts_config(0)).items() if k != "seed"}}
    if args.tune:
        result = {**tune(ctx, budget), **meta}
        out = results_path("learners_tune", quick=args.quick, out=args.out)
    else:
        seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
        test = load_arith("test", budget.test_problems, seed=0)
        test_prompts = prompts_of(test)
        per_seed = []
        for seed in seeds:
            per_seed.append({"seed": seed, **run_seed(ctx, seed, budget, HYPER, test, test_prompts)})
            print(f"seed {seed} done in {per_seed[-1]['wall_s']} s: data {per_seed[-1]['data']}", flush=True)
        methods = aggregate(per_seed)
        comparisons = {k: compare(per_seed, a, b) for k, (a, b) in COMPARISONS.items()}
        print_table(methods)
        for k, c in comparisons.items():
            print(f"{k:<24} {c['mean']:+.3f} ± {c['std_over_seeds']:.3f} over seeds (paired se per seed "
                  f"{statistics.mean(c['paired_se_per_seed']):.3f})")
        result = {"methods": methods, "seeds": seeds, "comparisons": comparisons, "hyperparameters": HYPER, **meta,
                  "per_seed": [{"seed": s["seed"], "data": s["data"], "wall_s": s["wall_s"]} for s in per_seed],
                  "notes": "generated_tokens: tokens generated to collect the training data (learners; sft 0) or "
                           "per held-out problem at test time (oreo_* search methods). Greedy on the first "
                           f"{budget.test_problems} arith test problems (data seed 0), search methods on the first "
                           f"{budget.search_problems}."}
        out = results_path("learners", quick=args.quick, out=args.out)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wall {result['wall_s']} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
