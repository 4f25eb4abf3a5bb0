"""The SPaR job's worker classes (plain Python; Ray actors in `launch/actors.py`).

- `SparWorker` holds the actor `Generator` and the refiner `Generator` (one shared generator
  while both are the same checkpoint). `rollout` runs one chunk of self-play
  (`search.spar.collect_spar`, or the self-rewarding baseline) and measures the refiner against
  the IFEval checkers; `evaluate` scores the actor on held-out prompts (greedy or `refine@k`) and
  the refiner's judge accuracy on a fixed held-out judgment set.
- `SparLearnerWorker` trains: SFT of the tiny model on the SFT mixture (iteration 0), then per
  iteration the actor by DPO + NLL on the pairs (reference = the iteration-0 policy) and the
  refiner by RFT on its examples.

Checkers only score and audit here (and act as judge when `spar.oracle_judge` asks for the
upper bound); inside self-play the refiner judges. Errors name the worker and the prompts.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from configs.schema import ExperimentConfig
from reasoner.records import StepPair

__all__ = ["SparRollout", "SparWorker", "SparLearnerWorker", "OracleJudge", "ChatPrompts", "parse_refine_method"]


@dataclass
class SparRollout:
    """One chunk's records and statistics (pickles)."""
    pairs: list[StepPair]
    refiner_examples: list
    stats: dict = field(default_factory=dict)


class OracleJudge:
    """The IFEval checkers as a judge (upper bound only): verdict 1 iff every constraint passes."""

    def __init__(self, problems_by_question: dict):
        self.problems = problems_by_question

    def judge(self, items):
        from envs.ifeval import check_strict
        from envs.instruct_bootstrap import critique_text
        from search.refine import Judgment
        out = []
        for q, r in items:
            p = self.problems[q]
            ok = check_strict(p.ifeval(), r)
            label = int(all(ok))
            crit = critique_text(p, ok) if hasattr(p, "constraints") else "\n".join(
                [f"{i}: {'yes' if v else 'no'}" for i, v in zip(p.ifeval().instruction_id_list, ok)]
                + [f"Final Judgement: {'Yes' if label else 'No'}"])
            out.append(Judgment((label,), (crit,), label, float(label), crit))
        return out


def parse_refine_method(method: str) -> int | None:
    """k of "refine@k" (refinement depth at test time), or None for another method."""
    if not method.startswith("refine@"):
        return None
    try:
        k = int(method.split("@", 1)[1])
    except ValueError:
        raise ValueError(f"bad method {method!r}: use refine@<depth>") from None
    if k < 1:
        raise ValueError(f"bad method {method!r}: depth must be >= 1")
    return k


class ChatPrompts:
    """A `Generator` view that sends every prompt as one user turn of the checkpoint's chat template
    (the judge and refine prompts of `search.refine` are plain text; chat checkpoints need turns)."""

    def __init__(self, generator, tokenizer):
        self.generator, self.tokenizer = generator, tokenizer

    @property
    def stats(self):
        return self.generator.stats

    def _render(self, prompts):
        from reasoner.templates import PromptConfig, PromptStyle, render_prompt
        cfg = PromptConfig(style=PromptStyle.CHAT, system="")
        return [render_prompt(p, cfg, self.tokenizer) for p in prompts]

    def generate(self, prompts, params):
        return self.generator.generate(self._render(prompts), params)

    def logprobs(self, prompts, continuations):
        return self.generator.logprobs(self._render(prompts), continuations)


class SparWorker:
    """Actor + refiner generators; self-play rollouts and evaluation (see module docstring)."""

    def __init__(self, cfg: ExperimentConfig, name: str = "spar-worker"):
        self.cfg, self.name = cfg, name
        self.actor = self.refiner = self.judge_gen = None
        self.paths: tuple[str, str] | None = None

    def load(self, actor_path: str, refiner_path: str) -> None:
        """Serve `actor_path` and `refiner_path` (one generator when they are the same checkpoint)."""
        from reasoner.loading import build_generator
        if self.paths == (actor_path, refiner_path):
            return
        if self.actor is None:
            self.actor = build_generator(self.cfg.generator, actor_path)
        else:
            self.actor.load_weights(actor_path)
        if refiner_path == actor_path:
            self.refiner = self.actor
        elif self.refiner is None or self.refiner is self.actor:
            self.refiner = build_generator(self.cfg.generator, refiner_path)
        else:
            self.refiner.load_weights(refiner_path)
        self.paths = (actor_path, refiner_path)
        from reasoner.templates import PromptStyle
        self.judge_gen = self.refiner
        if self.cfg.prompt.style == PromptStyle.CHAT:
            from reasoner.loading import load_tokenizer
            tok = getattr(self.refiner, "tokenizer", None) or load_tokenizer(refiner_path)
            self.judge_gen = ChatPrompts(self.refiner, tok)

    def _prompts(self, problems) -> list[str]:
        from reasoner.templates import render_prompt
        tok = getattr(self.actor, "tokenizer", None)
        return [render_prompt(p.question, self.cfg.prompt, tok) for p in problems]

    def _tokens(self) -> int:
        gens = {id(g): g for g in (self.actor, self.refiner) if g is not None}
        return sum(g.stats.generated_tokens for g in gens.values())

    # ------------------------------------------------------------------ self-play
    def rollout(self, problems: list, actor_path: str, refiner_path: str, version: int) -> SparRollout:
        """Self-play over one chunk of training prompts. Split: a chunk per call; gather: concatenate."""
        try:
            return self._rollout(problems, actor_path, refiner_path, version)
        except Exception as e:
            ids = ", ".join(p.id for p in problems[:4]) + (" ..." if len(problems) > 4 else "")
            raise RuntimeError(f"{self.name}: SPaR rollout of [{ids}] with actor v{version} failed: "
                               f"{type(e).__name__}: {e}") from e

    def _rollout(self, problems, actor_path, refiner_path, version) -> SparRollout:
        from envs.ifeval import check_strict
        from search.refine import Judge, RefinementSearch
        from search.spar import collect_self_rewarding, collect_spar

        cfg, sp = self.cfg, self.cfg.spar
        self.load(actor_path, refiner_path)
        t0, tok0 = time.perf_counter(), self._tokens()
        seed = cfg.seed + 1000 * version + int(problems[0].id.encode().hex()[-6:], 16) % 1000
        refine_cfg = dataclasses.replace(cfg.refine, seed=seed)
        by_q = {p.question: p for p in problems}
        judge = OracleJudge(by_q) if sp.oracle_judge else Judge(self.judge_gen, refine_cfg)
        qs, prompts, ids = [p.question for p in problems], self._prompts(problems), [p.id for p in problems]
        kw = dict(n=sp.actor_samples, temperature=sp.actor_temperature, top_p=sp.actor_top_p,
                  max_tokens=sp.actor_max_tokens, data_cfg=cfg.spar_data, policy_version=version, seed=seed)
        if sp.refine_pairs:
            search = RefinementSearch(self.judge_gen, refine_cfg, judge)
            out = collect_spar(self.actor, search, qs, prompts, ids, judge=judge, **kw)
        else:
            out = collect_self_rewarding(self.actor, judge, qs, prompts, ids, refine_cfg=refine_cfg, **kw)
        # audit against the checkers: judge accuracy on the actor's samples, refinement success
        agree = total = 0
        for p, row, js in zip(problems, out.samples, out.judgments):
            for r, j in zip(row, js):
                total += 1
                agree += int(j.label is not None and j.label == int(all(check_strict(p.ifeval(), r))))
        solved = [t for t in out.trees if t.solved]
        truly = sum(all(check_strict(by_q[t.instruction].ifeval(), t.nodes[t.best].response)) for t in solved)
        stats = {"prompts": len(problems), "samples": total, "sample_pass_checker": sum(
                     all(check_strict(p.ifeval(), r)) for p, row in zip(problems, out.samples) for r in row),
                 "judge_agree": agree, "negatives": len(out.trees), "refined_self": len(solved),
                 "refined_checker": int(truly), "pairs": len(out.pairs), "refiner_examples": len(out.refiner_examples),
                 "expansions": sum(t.expansions for t in out.trees), "pre_tree_tokens": out.pre_tree_tokens,
                 "generated_tokens": self._tokens() - tok0, "wall_s": time.perf_counter() - t0}
        return SparRollout(out.pairs, out.refiner_examples, stats)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, problems: list, method: str, actor_path: str, refiner_path: str, version: int) -> dict:
        """Checker-scored actor responses (greedy or refine@k). Split: a shard per call; gather: sum."""
        try:
            return self._evaluate(problems, method, actor_path, refiner_path, version)
        except Exception as e:
            ids = ", ".join(p.id for p in problems[:4]) + (" ..." if len(problems) > 4 else "")
            raise RuntimeError(f"{self.name}: evaluation '{method}' of [{ids}] failed: {type(e).__name__}: {e}") from e

    def _evaluate(self, problems, method, actor_path, refiner_path, version) -> dict:
        from envs.ifeval import check_response
        from reasoner.generation import SamplingParams
        from search.refine import refine_responses

        self.load(actor_path, refiner_path)
        t0, tok0 = time.perf_counter(), self._tokens()
        outs = self.actor.generate(self._prompts(problems), SamplingParams(n=1, max_tokens=self.cfg.eval.max_tokens,
                                                                          temperature=0.0))
        responses = [o[0].text.strip() for o in outs]
        depth = parse_refine_method(method)
        if depth is not None:
            rcfg = dataclasses.replace(self.cfg.refine, depth=depth, seed=self.cfg.seed + version)
            responses = refine_responses(self.judge_gen, rcfg, [p.question for p in problems], responses)
        verdicts = [check_response(p.ifeval(), r) for p, r in zip(problems, responses)]
        return {"n": len(problems), "prompt_strict": sum(v.prompt_strict for v in verdicts),
                "prompt_loose": sum(v.prompt_loose for v in verdicts),
                "instruction_strict": sum(sum(v.strict) for v in verdicts),
                "instruction_loose": sum(sum(v.loose) for v in verdicts),
                "instructions": sum(len(v.strict) for v in verdicts),
                "generated_tokens": self._tokens() - tok0, "wall_s": time.perf_counter() - t0,
                "records": [{"problem_id": p.id, "question": p.question, "response": r, "strict": list(v.strict),
                             "loose": list(v.loose)} for p, r, v in zip(problems, responses, verdicts)]}

    def judge_accuracy(self, examples: list, refiner_path: str, actor_path: str) -> dict:
        """The refiner's majority verdicts on fixed (instruction, response, checker label) items vs the labels."""
        from search.refine import Judge
        self.load(actor_path, refiner_path)
        judge = Judge(self.judge_gen, dataclasses.replace(self.cfg.refine, seed=self.cfg.seed))
        js = judge.judge([(q, r) for q, r, _ in examples])
        correct = sum(int(j.label is not None and j.label == int(ok)) for j, (_, _, ok) in zip(js, examples))
        return {"n": len(examples), "correct": correct,
                "said_yes": sum(j.label == 1 for j in js), "truly_yes": sum(int(ok) for _, _, ok in examples)}


class SparLearnerWorker:
    """SFT of the tiny model (both roles), then actor DPO + NLL and refiner RFT per iteration."""

    def __init__(self, cfg: ExperimentConfig, name: str = "spar-learner"):
        self.cfg, self.name = cfg, name

    def sft(self, out_dir: str) -> dict:
        from launch.train_sft import train_sft
        return train_sft(self.cfg, Path(out_dir), show_progress=False)

    def train(self, iteration: int, actor: str, ref: str, refiner: str, pairs: list, examples: list,
              out_dir: str) -> dict:
        """Returns {"actor", "refiner", "dpo", "rft"} (paths and metrics; unchanged roles keep their path)."""
        try:
            return self._train(iteration, actor, ref, refiner, pairs, examples, Path(out_dir))
        except Exception as e:
            raise RuntimeError(f"{self.name}: SPaR training of iteration {iteration} failed: "
                               f"{type(e).__name__}: {e}") from e

    def _train(self, iteration, actor, ref, refiner, pairs, examples, out: Path) -> dict:
        import random

        from launch.workers import _metrics
        from reasoner.loading import load_policy
        from rl.learners.sft import SFTLearner
        from rl.learners.spar import SparDPOLearner, rft_sft_config
        from rl.training import open_writer

        cfg = self.cfg
        result = {"actor": actor, "refiner": refiner, "dpo": None, "rft": None}
        if pairs:
            policy, tok = load_policy(actor, "cpu")
            reference, _ = load_policy(ref, "cpu")
            learner = SparDPOLearner(policy, reference, tok, dataclasses.replace(cfg.spar_dpo, seed=cfg.seed + iteration))
            result["dpo"] = _metrics(learner.fit(pairs, out / "actor", progress=False))
            result["actor"] = str(out / "actor" / "policy")
        if examples and cfg.spar.train_refiner and not cfg.spar.oracle_judge:
            model, tok = load_policy(refiner, "cpu")
            scfg = rft_sft_config(cfg.rft, len(examples), cfg.sft)
            rows = [(e.prompt, e.target) for e in examples]
            rng = random.Random(cfg.seed + iteration)
            order = [i for _ in range(cfg.rft.epochs + 1) for i in rng.sample(range(len(rows)), len(rows))]
            bsz = scfg.batch_size
            learner = SFTLearner(model, tok, scfg, lambda step: [rows[order[(step * bsz + j) % len(order)]]
                                                                  for j in range(bsz)])
            writer = open_writer(out / "refiner" / "tensorboard")
            stats = learner.fit(state_path=out / "refiner" / "state" / "rft_state.pt", writer=writer, progress=False)
            writer.close()
            model.save_pretrained(out / "refiner" / "policy")
            tok.save_pretrained(str(out / "refiner" / "policy"))
            result["refiner"] = str(out / "refiner" / "policy")
            result["rft"] = {"steps": stats["steps"], "final_loss": stats["final_loss"], "examples": len(rows),
                             "seconds": round(stats["seconds"], 2)}
        return result
