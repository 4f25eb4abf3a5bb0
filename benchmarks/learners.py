"""The learners compared on the embedded default, iterated: step-DPO vs iterated RFT vs response-level DPO.

    python benchmarks/learners.py                 # 3 seeds x 3 iterations (see the table printed at the end)
    python benchmarks/learners.py --quick         # one small seed, 2 iterations (writes a temp file)
    python benchmarks/learners.py --tune          # the learning-rate sweeps behind HYPER (validation set)
    python benchmarks/learners.py --tune --methods step_dpo --train-problems 1024 --out F   # one learner's sweep
    python benchmarks/learners.py --device cuda --quick   # bf16 autocast learners + HF generator on CUDA

Per seed, every method starts from the committed SFT policy (tests/data/tiny_arith_policy) and runs
`iterations` rounds of collect -> learn from its *own current* policy, on the same fresh training
problems per round (`train_problems` of them, data seed 1000 + 10 * seed + round):
- `step_dpo`: MCTS (`search.mcts.StepMCTS`, outcome reward at terminals, the collection search of
  configs/arith_tiny.yaml) -> step pairs (`search.pairs`) -> StepDPOLearner (eps = visit-count label
  smoothing). T = the tokens the MCTS generated this round.
- `rft` (iterated rejection-sampling fine-tuning): temperature-1 samples, one per problem per round,
  until the same T tokens are spent -> SFTLearner on the distinct correct samples.
- `response_dpo`: the same sampling at T tokens -> pairs (a correct vs an incorrect response of one
  problem, at most `max_pairs` per problem) -> the same DPO learner with an empty prefix and eps = 0
  (plain DPO of Rafailov et al.).
- `oreo` (only with `--methods ... oreo`): OREOLearner, token level, on the MCTS trajectories.
The DPO reference is the SFT policy in every round, as the job does (launch/iterate.py). After each
round, greedy accuracy on the same held-out problems. After the last round, the test-time methods
on the final step-DPO policy at equal generated tokens per problem: `value_beam` (step beam search
of width `beam_width`, ranked by the policy's own likelihood, `search.evaluators.LikelihoodValue`:
the value the demo uses, eval.value=likelihood), then `value_bon` (likelihood-weighted best-of-N)
and `majority` (maj@N) over the same temperature samples, N set so that they spend the beam's mean
tokens per problem (one sample per problem per round until the budget is spent).

Hyperparameters: `HYPER` holds values picked by `--tune` (one round, 512 problems, 4 learning rates
x 2 values of a second knob per learner, scored on validation problems from the train split), except
step-DPO's lr: see `ITERATED_HYPER`.

Writes benchmarks/results/learners.json: {"methods": {name: {"accuracy_mean", "accuracy_se",
"generated_tokens", "per_iteration": [...], ...}}, "iterations": 3, "seeds": [...], "comparisons"}.
`generated_tokens`: tokens generated to collect the method's training data over all rounds (learners;
0 for sft), or per held-out problem at test time (majority / value_bon / value_beam).
`accuracy_se` = sqrt(var over seeds / seeds + p(1-p) / test problems): seed noise and test-set noise.
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
ITERATED = ("step_dpo", "rft", "response_dpo")

# Picked by `--tune` (benchmarks/results/learners_tune.json); see the module docstring.
HYPER: dict[str, dict] = {
    "step_dpo": {"lr": 3e-6, "beta": 1.0, "epochs": 2},
    "response_dpo": {"lr": 1e-5, "beta": 1.0, "epochs": 2},
    "rft": {"lr": 3e-5, "epochs": 3},
    "oreo": {"policy_lr": 3e-5, "value_lr": 3e-3, "beta": 0.3, "epochs": 2},
    "oreo_search": {"temperature": 0.7},
}
# The iterated comparison uses the demo's step-DPO lr (configs/arith_tiny.yaml): the tuned 3e-6 was picked
# at 423 pairs and leaves the policy where it was (learners_tune.json: val 0.4525 vs SFT 0.452).
ITERATED_HYPER = {**HYPER, "step_dpo": {**HYPER["step_dpo"], "lr": 3e-5}}
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
    train_problems: int = 1024       # per round (--tune: one round)
    iterations: int = 3
    test_problems: int = 1000        # greedy accuracy and the test-time methods
    search_problems: int = 500       # --tune's value search (a prefix of the validation problems)
    val_problems: int = 2000         # --tune only (train split, its own data seed)
    beam_width: int = 3
    max_pairs: int = 8               # per problem, for both pair sources (search.pairs default)


FULL = Budget()
QUICK = Budget(train_problems=128, iterations=2, test_problems=300, search_problems=100, val_problems=500)


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
def train_dpo(ctx: Ctx, pairs, hp: dict, seed: int, start=None):
    """StepDPOLearner from `start` (default the SFT policy), reference = SFT; returns (policy, info)."""
    from rl.learners.step_dpo import StepDPOConfig, StepDPOLearner
    cfg = StepDPOConfig(lr=hp["lr"], beta=hp["beta"], epochs=hp.get("epochs", 1), batch_size=8, grad_accum=2,
                        max_len=256, seed=seed, device=ctx.device, save_every=0)
    learner = StepDPOLearner(start if start is not None else ctx.load(), ctx.load(), ctx.tok, cfg)
    s = learner.fit(pairs, progress=False)
    return learner.policy, {"steps": s["steps"], "seconds": round(s["seconds"], 1), "records": s["pairs"],
                            **{k: round(float(v), 4) for k, v in s["last"].items() if k in ("loss", "margin")}}


def train_rft(ctx: Ctx, examples, hp: dict, seed: int, start=None):
    """SFTLearner from `start` (default SFT) on the policy's own correct samples (rejection-sampling fine-tuning)."""
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

    model = (start if start is not None else ctx.load()).train()
    s = SFTLearner(model, ctx.tok, cfg, batches).fit(progress=False)
    return model, {"steps": s["steps"], "seconds": round(s["seconds"], 1), "records": len(examples),
                   "loss": round(float(s["final_loss"]), 4)}


def train_oreo(ctx: Ctx, trajs, hp: dict, seed: int, start=None):
    """OREOLearner (token level) from `start` (default SFT) and a fresh critic; returns (policy, value, info)."""
    from reasoner.value_model import ValueModel
    from rl.learners.oreo import OREOConfig, OREOLearner
    cfg = OREOConfig(policy_lr=hp["policy_lr"], value_lr=hp.get("value_lr", 1e-3), beta=hp.get("beta", 0.03),
                     epochs=hp.get("epochs", 1), batch_size=8, grad_accum=2, max_len=256, seed=seed,
                     device=ctx.device, save_every=0)
    policy = start if start is not None else ctx.load()
    learner = OREOLearner(policy, ctx.load(), ValueModel.from_policy(policy, ctx.tok), ctx.tok, cfg)
    s = learner.fit(trajs, progress=False)
    last = s["last"]
    return learner.policy, learner.value, {"steps": s["steps"], "seconds": round(s["seconds"], 1),
                                           "records": s["trajectories"],
                                           **{k: round(float(last[k]), 4) for k in ("value_loss", "kl", "logratio")}}


def train(ctx: Ctx, method: str, data: dict, hp: dict, seed: int, start=None):
    """(policy, value or None, info) of one learner on one seed's data, from `start` (default SFT)."""
    if method == "oreo":
        return train_oreo(ctx, data["mcts"]["trajectories"], hp, seed, start)
    if method == "rft":
        policy, info = train_rft(ctx, data["rft"], hp, seed, start)
    else:
        policy, info = train_dpo(ctx, data["mcts"]["pairs"] if method == "step_dpo" else data["response_pairs"],
                                 hp, seed, start)
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


def sample_data(gen, problems, prompts, token_budget: int, seed: int, budget: Budget) -> dict:
    """Rejection sampling at `token_budget` tokens -> response pairs and RFT examples."""
    rs = rejection_sample(gen, problems, prompts, token_budget, seed)
    rpairs, rft = response_data(rs["samples"], problems, prompts, budget.max_pairs, seed)
    stats = {"rs_tokens": rs["tokens"], "rs_s": round(rs["seconds"], 1),
             "rs_samples": sum(len(s) for s in rs["samples"]), "response_pairs": len(rpairs), "rft_examples": len(rft)}
    return {"rs": rs, "response_pairs": rpairs, "rft": rft, "stats": stats}


def mcts_data(gen, problems, prompts, seed: int) -> dict:
    mcts = collect_mcts(gen, problems, prompts, seed)
    stats = {"problems": len(problems), "mcts_tokens": mcts["tokens"], "mcts_s": round(mcts["seconds"], 1),
             "step_pairs": len(mcts["pairs"]), "trajectories": len(mcts["trajectories"]),
             "positive_trajectories": int(sum(t.reward for t in mcts["trajectories"]))}
    return {"mcts": mcts, "stats": stats}


def collect(ctx: Ctx, problems, seed: int, budget: Budget, model=None) -> dict:
    """MCTS data, then rejection sampling at the same generated tokens, from `model` (default SFT)."""
    gen = ctx.generator((model if model is not None else ctx.load()).eval(), seed)
    prompts = prompts_of(problems)
    m = mcts_data(gen, problems, prompts, seed)
    r = sample_data(gen, problems, prompts, m["mcts"]["tokens"], seed, budget)
    return {"mcts": m["mcts"], "rs": r["rs"], "response_pairs": r["response_pairs"], "rft": r["rft"],
            "stats": {**m["stats"], **r["stats"]}}


def run_seed(ctx: Ctx, seed: int, budget: Budget, hyper: dict, methods: tuple, test, test_prompts) -> dict:
    """Every method iterated on one seed: {"methods": {name: {... "per_iteration": [...]}}, "rounds": [...]}."""
    import copy
    t0 = time.perf_counter()
    sft = greedy_accuracy(ctx, ctx.load(), test, test_prompts)
    policies = {m: ctx.load() for m in methods}
    out = {m: {"per_iteration": [sft["accuracy"]], "correct": sft["correct"], "train_tokens": 0, "train": []}
           for m in methods}
    rounds = []
    for it in range(1, budget.iterations + 1):
        problems = train_problems(budget.train_problems, 1000 + 10 * seed + it)
        prompts = prompts_of(problems)
        rseed = seed * 100 + it
        stats, mcts, tokens = {}, None, None
        if "step_dpo" in methods or "oreo" in methods:
            src = policies["step_dpo" if "step_dpo" in methods else "oreo"]
            m = mcts_data(ctx.generator(src.eval(), rseed), problems, prompts, rseed)
            mcts, tokens, stats["mcts"] = m["mcts"], m["mcts"]["tokens"], m["stats"]
        for name in methods:
            if name in ("step_dpo", "oreo"):
                if name == "oreo" and "step_dpo" in methods:   # OREO collects from its own policy
                    m = mcts_data(ctx.generator(policies[name].eval(), rseed), problems, prompts, rseed)
                    stats["mcts_oreo"] = m["stats"]
                    data = {"mcts": m["mcts"]}
                else:
                    data = {"mcts": mcts}
                spent = data["mcts"]["tokens"]
            else:
                gen = ctx.generator(policies[name].eval(), rseed)
                data = sample_data(gen, problems, prompts, tokens, rseed, budget)
                stats[name] = data["stats"]
                spent = data["rs"]["tokens"]
            policy, _, info = train(ctx, name, data, hyper[name], rseed, start=policies[name])
            policies[name] = policy
            res = greedy_accuracy(ctx, policy, test, test_prompts)
            row = out[name]
            row["per_iteration"].append(res["accuracy"])
            row["correct"], row["train_tokens"] = res["correct"], row["train_tokens"] + spent
            row["train"].append(info)
            print(f"  seed {seed} round {it} {name:<13} greedy {res['accuracy']:.3f}  tokens {spent}  {info}",
                  flush=True)
        rounds.append({"iteration": it, "data": stats})
    results = {"sft": {"accuracy": sft["accuracy"], "correct": sft["correct"], "train_tokens": 0,
                       "tokens_per_problem": sft["tokens_per_problem"]}}
    for name, row in out.items():
        results[name] = {"accuracy": row["per_iteration"][-1], **row}
    final = policies["step_dpo"] if "step_dpo" in policies else policies[methods[0]]
    results.update(test_time(ctx, final, test, test_prompts, budget.beam_width, seed))
    return {"methods": results, "rounds": rounds, "wall_s": round(time.perf_counter() - t0, 1)}


def test_time(ctx: Ctx, model, problems, prompts, beam_width: int, seed: int, temperature: float = 0.7) -> dict:
    """value_beam, then value_bon and majority over the same samples at the beam's tokens per problem."""
    from envs.grading import grade
    from search import value_guided as vg
    from search.evaluators import LikelihoodValue
    from search.value_guided import vote
    model.eval()
    gen = ctx.generator(model, seed)
    vfn = LikelihoodValue(gen)

    def scored(responses: list[str], tokens: float) -> dict:
        correct = [bool(grade(r, p.answer)) for r, p in zip(responses, problems)]
        return {"accuracy": sum(correct) / len(problems), "tokens_per_problem": tokens, "correct": correct}

    beam = vg.beam_search(gen, vfn, prompts, problems,
                          vg.BeamConfig(beam_width=beam_width, max_step_tokens=24, temperature=temperature, seed=seed))
    beam_tok = beam.stats.generated_tokens / len(problems)
    sample_len = statistics.mean(len(ctx.tok(t.response)["input_ids"]) for t in beam.traces) or 32.0
    bon_cfg = vg.BestOfNConfig(n=256, mode=vg.BestOfNMode.WEIGHTED, samples_per_round=1, max_tokens=64,
                               temperature=temperature, token_budget=max(1, round(beam_tok - sample_len / 2)),
                               seed=seed)
    bon = vg.best_of_n(ctx.generator(model, seed), prompts, problems, bon_cfg, vfn)
    samples = [[t.steps[0].text] + [a[0] for a in t.steps[0].alternatives] for t in bon.traces]
    bon_tok = bon.stats.generated_tokens / len(problems)
    return {"value_beam": scored([t.response for t in beam.traces], beam_tok),
            "value_bon": {**scored([t.response for t in bon.traces], bon_tok),
                          "samples_per_problem": statistics.mean(len(x) for x in samples)},
            "majority": {**scored([x[vote(x)] for x in samples], bon_tok),
                         "samples_per_problem": statistics.mean(len(x) for x in samples)}}


# ---------------------------------------------------------------------------------- tuning
def tune(ctx: Ctx, budget: Budget, methods=LEARNERS) -> dict:
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
    for name in methods:
        runs = []
        for point in GRID[name]:
            hp = {**HYPER[name], **point}
            policy, _, info = train(ctx, name, data, hp, 0)
            runs.append({"hp": hp, "val_accuracy": greedy_accuracy(ctx, policy, val, val_prompts)["accuracy"],
                         "train": info})
            print(f"  {name:<13} {point} val {runs[-1]['val_accuracy']:.3f} {info}", flush=True)
        out["runs"][name] = runs
        out["best"][name] = max(runs, key=lambda r: r["val_accuracy"])["hp"]
    if "oreo" not in methods:
        return out
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
TEST_TIME = ("majority", "value_bon", "value_beam")
COMPARISONS = {  # the papers' directions: (better, worse), on the same held-out problems
    "step_dpo - rft": ("step_dpo", "rft"), "step_dpo - response_dpo": ("step_dpo", "response_dpo"),
    "step_dpo - sft": ("step_dpo", "sft"), "rft - sft": ("rft", "sft"), "response_dpo - sft": ("response_dpo", "sft"),
    "value_bon - majority": ("value_bon", "majority"), "value_beam - value_bon": ("value_beam", "value_bon"),
}


def compare(per_seed: list[dict], a: str, b: str) -> dict:
    """a - b on the same problems: mean over seeds, and an SE with both noise sources.

    se = sqrt(var over seeds of the per-seed differences / seeds + var over problems of the
    seed-averaged per-problem differences / problems).
    """
    per = [s["methods"][a]["correct"] for s in per_seed], [s["methods"][b]["correct"] for s in per_seed]
    n = min(len(per[0][0]), len(per[1][0]))
    d_seed = [statistics.mean(float(x) - float(y) for x, y in zip(xa[:n], xb[:n])) for xa, xb in zip(*per)]
    d_prob = [statistics.mean(float(xa[i]) - float(xb[i]) for xa, xb in zip(*per)) for i in range(n)]
    k = len(d_seed)
    var_seed = statistics.variance(d_seed) / k if k > 1 else 0.0
    se = math.sqrt(var_seed + statistics.variance(d_prob) / n)
    mean = statistics.mean(d_seed)
    return {"mean": round(mean, 4), "se": round(se, 4), "z": round(mean / se, 2) if se else None,
            "per_seed": [round(d, 4) for d in d_seed]}


def aggregate(per_seed: list[dict]) -> dict:
    """Per method: mean over seeds, SE (seed + test-set noise), tokens, and the per-iteration curve."""
    out = {}
    for name in per_seed[0]["methods"]:
        rows = [s["methods"][name] for s in per_seed]
        acc = [r["accuracy"] for r in rows]
        mean, n, k = statistics.mean(acc), len(rows[0]["correct"]), len(acc)
        var_seed = statistics.variance(acc) / k if k > 1 else 0.0
        test_time = name in TEST_TIME
        out[name] = {
            "accuracy_mean": round(mean, 4),
            "accuracy_se": round(math.sqrt(var_seed + mean * (1 - mean) / n), 4),
            "accuracy_std_over_seeds": round(statistics.stdev(acc), 4) if k > 1 else 0.0,
            "accuracy_per_seed": [round(a, 4) for a in acc], "n": n,
            "generated_tokens": round(statistics.mean(r["tokens_per_problem"] if test_time else r["train_tokens"]
                                                      for r in rows), 1),
            "generated_tokens_is": "per held-out problem at test time (final step_dpo policy)" if test_time
                                   else "to collect the training data, all iterations",
        }
        if "per_iteration" in rows[0]:
            its = list(zip(*[r["per_iteration"] for r in rows]))
            out[name]["per_iteration"] = [
                {"iteration": i, "accuracy_mean": round(statistics.mean(a), 4),
                 "accuracy_se": round(math.sqrt((statistics.variance(a) / k if k > 1 else 0.0)
                                                + statistics.mean(a) * (1 - statistics.mean(a)) / n), 4),
                 "accuracy_per_seed": [round(x, 4) for x in a]} for i, a in enumerate(its)]
            out[name]["train"] = [r["train"] for r in rows]
        if "samples_per_problem" in rows[0]:
            out[name]["samples_per_problem"] = round(statistics.mean(r["samples_per_problem"] for r in rows), 2)
    return out


def print_table(methods: dict) -> None:
    print(f"\n{'method':<14} {'accuracy':>15} {'per iteration (mean over seeds)':>34} {'generated tokens':>17}")
    for name, m in methods.items():
        curve = " -> ".join(f"{r['accuracy_mean']:.3f}" for r in m.get("per_iteration", []))
        print(f"{name:<14} {m['accuracy_mean']:>6.3f} ± {m['accuracy_se']:.3f} {curve:>34} {m['generated_tokens']:>17}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one small seed, 2 iterations (a few minutes)")
    ap.add_argument("--tune", action="store_true", help="run the sweeps behind HYPER instead of the comparison")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2; --quick: 0)")
    ap.add_argument("--methods", nargs="+", default=None, choices=LEARNERS,
                    help=f"learners to iterate (default {' '.join(ITERATED)}) or, with --tune, to sweep (default all)")
    ap.add_argument("--iterations", type=int, default=None, help="rounds per method (default 3; --quick 2)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--policy", default=str(DEFAULT_POLICY), help="SFT policy (HF checkpoint directory)")
    ap.add_argument("--train-problems", type=int, default=None, help="training problems per round (default 1024)")
    ap.add_argument("--test-problems", type=int, default=None, help="held-out problems (default 1000)")
    ap.add_argument("--out", default=None, help=f"JSON output (default {RESULTS.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    import torch

    from envs.arith import load_arith
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    budget = QUICK if args.quick else FULL
    if args.tune and not args.quick and not args.train_problems:
        budget = replace(budget, train_problems=512)   # the committed learners_tune.json
    if args.train_problems:
        budget = replace(budget, train_problems=args.train_problems)
    if args.iterations:
        budget = replace(budget, iterations=args.iterations)
    if args.test_problems:
        budget = replace(budget, test_problems=args.test_problems)
    ctx, t0 = Ctx(args.policy, args.device), time.perf_counter()
    meta = {"quick": args.quick, "device": args.device, "policy": os.path.relpath(args.policy, ROOT),
            "budget": asdict(budget), "mcts": {k: v for k, v in asdict(mcts_config(0)).items() if k != "seed"}}
    if args.tune:
        result = {**tune(ctx, budget, tuple(args.methods or LEARNERS)), **meta}
        name = "learners_tune" if not args.methods else "learners_tune_" + "_".join(args.methods)  # never over the full sweep
        out = results_path(name, quick=args.quick, out=args.out)
    else:
        args.methods = args.methods or list(ITERATED)
        seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
        test = load_arith("test", budget.test_problems, seed=0)
        test_prompts = prompts_of(test)
        out = results_path("learners", quick=args.quick, out=args.out)
        partial = out.with_suffix(".partial.json")   # finished seeds, so an interrupted run resumes
        per_seed = json.loads(partial.read_text()) if partial.exists() else []
        per_seed = [s for s in per_seed if s["seed"] in seeds]
        for seed in seeds:
            if any(s["seed"] == seed for s in per_seed):
                print(f"seed {seed}: done in an earlier run ({partial})", flush=True)
                continue
            per_seed.append({"seed": seed, **run_seed(ctx, seed, budget, ITERATED_HYPER, tuple(args.methods),
                                                      test, test_prompts)})
            partial.write_text(json.dumps(per_seed))
            print(f"seed {seed} done in {per_seed[-1]['wall_s']} s", flush=True)
        per_seed.sort(key=lambda s: seeds.index(s["seed"]))
        methods = aggregate(per_seed)
        comparisons = {k: compare(per_seed, a, b) for k, (a, b) in COMPARISONS.items()
                       if a in methods and b in methods}
        print_table(methods)
        for k, c in comparisons.items():
            print(f"{k:<26} {c['mean']:+.4f} ± {c['se']:.4f} (z {c['z']})")
        result = {"methods": methods, "iterations": budget.iterations, "seeds": seeds, "comparisons": comparisons,
                  "hyperparameters": {m: ITERATED_HYPER[m] for m in args.methods}, **meta,
                  "per_seed": [{"seed": s["seed"], "rounds": s["rounds"], "wall_s": s["wall_s"]} for s in per_seed],
                  "notes": "Every learner iterated from the SFT policy on its own samples, the same fresh training "
                           "problems per round, equal generated tokens per round (rft / response_dpo sample until "
                           "the step_dpo MCTS's tokens of that round are spent). Greedy on the first "
                           f"{budget.test_problems} arith test problems (data seed 0). majority / value_bon / "
                           "value_beam: the final step_dpo policy, equal tokens per problem, value = the policy's "
                           "own likelihood (eval.value=likelihood). accuracy_se = sqrt(var over seeds / seeds + "
                           "p(1-p)/n)."}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if not args.tune:
        partial.unlink(missing_ok=True)
    print(f"wall {result['wall_s']} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
