"""The job's worker classes: plain Python, wrapped as Ray actors in `launch/actors.py`.

- `PolicyWorker` holds one policy `Generator` (HF or vLLM) and, when one exists, the learned
  value. `rollout` runs batched step-level MCTS over a chunk of training problems and returns the
  step pairs (step-DPO), graded trajectories (OREO) and search traces; `evaluate` runs one
  test-time method over held-out problems. Both take the policy checkpoint and its version, and
  reload weights in place when the version changed, so a restarted actor (Ray `max_restarts`)
  redoing a chunk always uses the right policy.
- `LearnerWorker` trains: SFT from scratch for iteration 0, then per iteration step-DPO on pairs
  and/or OREO on trajectories, writing HF checkpoints.

Single controller (DESIGN "Data flow"): the driver in `launch/iterate.py` calls these methods;
workers never call each other. Errors name the worker and the problem ids of the failing chunk.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from configs.schema import ExperimentConfig, PolicyLearner
from envs.base import Problem
from reasoner.records import SearchTrace, StepPair, Trajectory

__all__ = ["RolloutOutput", "PolicyWorker", "LearnerWorker"]


@dataclass
class RolloutOutput:
    """What one rollout chunk produced (pickles; no handles)."""
    pairs: list[StepPair]
    trajectories: list[Trajectory]
    traces: list[SearchTrace]
    stats: dict = field(default_factory=dict)


class PolicyWorker:
    """Generation-side worker: MCTS rollouts and evaluation with the current policy (see module docstring)."""

    def __init__(self, cfg: ExperimentConfig, name: str = "policy-worker"):
        self.cfg = cfg
        self.name = name
        self.generator = None
        self.version: int | None = None
        self.value = None
        self.value_path: str | None = None
        self.tokenizer = None

    # ------------------------------------------------------------------ model state
    def load(self, policy_path: str, version: int, value_path: str | None = None) -> None:
        """Make the worker serve `policy_path` (version `version`) and the value at `value_path`."""
        from launch.config import api_key_of
        from reasoner.loading import build_generator, load_tokenizer, resolve_device
        if self.generator is None:
            self.generator = build_generator(self.cfg.generator, policy_path,
                                             api_key=api_key_of(self.cfg.generator))
            self.tokenizer = getattr(self.generator, "tokenizer", None) or load_tokenizer(policy_path)
        elif version != self.version:
            self.generator.load_weights(policy_path)
        self.version = version
        if value_path != self.value_path:
            self.value = None
            if value_path:
                from reasoner.value_model import ValueModel
                self.value = ValueModel.from_pretrained(value_path, device=resolve_device(self.cfg.generator.device))
            self.value_path = value_path

    def _prompts(self, problems: Sequence[Problem]) -> list[str]:
        from reasoner.templates import render_prompt
        return [render_prompt(p.question, self.cfg.prompt, self.tokenizer) for p in problems]

    def _learned_value(self):
        from search.evaluators import LearnedValue
        return LearnedValue(self.value) if self.value is not None else None

    def _search_value(self):
        """The ValueFn of the test-time value methods per `eval.value` (None: no value yet)."""
        from configs.schema import SearchValue
        from search.evaluators import LikelihoodValue
        if self.cfg.eval.value == SearchValue.LIKELIHOOD:
            return LikelihoodValue(self.generator)
        return self._learned_value()

    def _rollout_estimate(self):
        """The ValueFn of non-terminal MCTS nodes per `iterate.rollout_value` (None = 0 there)."""
        from configs.schema import RolloutValue
        from search.evaluators import MixtureValue, SelfEvalValue
        mode, learned = self.cfg.iterate.rollout_value, self._learned_value()
        if mode == RolloutValue.OUTCOME or (mode == RolloutValue.LEARNED and learned is None):
            return None
        if mode == RolloutValue.LEARNED:
            return learned
        self_eval = SelfEvalValue(self.generator, self.cfg.self_eval)
        if mode == RolloutValue.SELF_EVAL or learned is None:
            return self_eval
        w = self.cfg.iterate.self_eval_weight
        return MixtureValue([(self_eval, w), (learned, 1.0 - w)])

    # ------------------------------------------------------------------ rollouts
    def rollout(self, problems: list[Problem], policy_path: str, version: int,
                value_path: str | None = None) -> RolloutOutput:
        """Search `problems` (one batched MCTS call) and harvest pairs, trajectories and traces.

        Split: the driver sends one chunk of training problems per call. Gather: the driver
        concatenates the chunks' records in problem order.
        """
        try:
            return self._rollout(problems, policy_path, version, value_path)
        except Exception as e:
            ids = ", ".join(p.id for p in problems[:4]) + (" ..." if len(problems) > 4 else "")
            raise RuntimeError(f"{self.name}: rollout of problems [{ids}] with policy v{version} failed: "
                               f"{type(e).__name__}: {e}") from e

    def _rollout(self, problems, policy_path, version, value_path) -> RolloutOutput:
        from envs.grading import grade
        from search.evaluators import OutcomeValue
        from search.mcts import StepMCTS
        from search.pairs import pairs_from_result
        from search.trajectories import trajectories_from_result

        self.load(policy_path, version, value_path)
        cfg = self.cfg
        prompts = self._prompts(problems)
        estimate = self._rollout_estimate()
        t0 = time.perf_counter()
        result = StepMCTS(self.generator, OutcomeValue(estimate), cfg.mcts, cfg.steps).search(prompts, problems)
        correct = [grade(t.response, p.answer) for t, p in zip(result.traces, problems)]
        keep = correct if cfg.iterate.filter_correct else None
        pairs = pairs_from_result(result, prompts, problems, cfg.pairs, policy_version=version, keep=keep)
        trajs = trajectories_from_result(result, prompts, problems, cfg.trajectories, policy_version=version)
        st = result.stats
        stats = {"problems": len(problems), "committed_correct": int(sum(correct)), "pairs": len(pairs),
                 "trajectories": len(trajs), "positive_trajectories": int(sum(t.reward for t in trajs)),
                 "generated_tokens": int(st.generated_tokens), "model_calls": int(st.model_calls),
                 "model_s": st.model_seconds, "tree_s": st.tree_seconds, "wall_s": time.perf_counter() - t0,
                 "simulations": int(sum(result.simulations))}
        return RolloutOutput(pairs, trajs, result.traces, stats)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, problems: list[Problem], method: str, policy_path: str, version: int,
                 value_path: str | None = None) -> dict:
        """Score `method` on held-out `problems`; returns the summary and every graded record.

        Split: one method over one shard of the held-out set per call. Gather: the driver sums
        correct answers and tokens over shards.
        """
        from launch.evaluation import evaluate_problems, parse_method
        try:
            self.load(policy_path, version, value_path)
            kind, _ = parse_method(method)
            search_cfg = {"best_of_n": self.cfg.best_of_n, "beam": self.cfg.beam, "mcts": self.cfg.mcts}.get(kind.value)
            if kind.value == "mcts":
                import dataclasses
                search_cfg = dataclasses.replace(search_cfg, reference_guidance=False)
            res = evaluate_problems(self.generator, problems, self._prompts(problems), method,
                                    temperature=self.cfg.eval.temperature, max_tokens=self.cfg.eval.max_tokens,
                                    seed=self.cfg.seed, value_fn=self._search_value(), search_cfg=search_cfg,
                                    step_format=self.cfg.steps)
        except Exception as e:
            ids = ", ".join(p.id for p in problems[:4]) + (" ..." if len(problems) > 4 else "")
            raise RuntimeError(f"{self.name}: evaluation '{method}' of problems [{ids}] failed: "
                               f"{type(e).__name__}: {e}") from e
        return {**res.summary(), "correct": sum(r.correct for r in res.records),
                "records": res.records}


class LearnerWorker:
    """Training-side worker: SFT (iteration 0) and the per-iteration learners."""

    def __init__(self, cfg: ExperimentConfig, name: str = "learner"):
        self.cfg = cfg
        self.name = name

    def sft(self, out_dir: str) -> dict:
        """Train the starting policy from scratch (or fine-tune `model.policy`) into `out_dir`."""
        from launch.train_sft import train_sft
        return train_sft(self.cfg, Path(out_dir), show_progress=False)

    def train(self, iteration: int, policy_path: str, ref_path: str, value_path: str | None,
              pairs: list[StepPair], trajectories: list[Trajectory], out_dir: str) -> dict:
        """One learning phase; writes `out_dir/policy` and (if trained) `out_dir/value`.

        Returns:
            {"policy": path, "value": path or None, "step_dpo": metrics, "oreo": metrics}.
        """
        try:
            return self._train(iteration, policy_path, ref_path, value_path, pairs, trajectories, Path(out_dir))
        except Exception as e:
            raise RuntimeError(f"{self.name}: training of iteration {iteration} failed: "
                               f"{type(e).__name__}: {e}") from e

    def _train(self, iteration, policy_path, ref_path, value_path, pairs, trajectories, out: Path) -> dict:
        import dataclasses

        from reasoner.loading import load_policy
        from reasoner.value_model import ValueModel
        from rl.learners.oreo import OREOLearner
        from rl.learners.step_dpo import StepDPOLearner

        cfg = self.cfg
        learner_kind = PolicyLearner(cfg.iterate.policy_learner)
        result = {"policy": policy_path, "value": value_path, "step_dpo": None, "oreo": None}
        if learner_kind == PolicyLearner.STEP_DPO and pairs:
            policy, tok = load_policy(policy_path, "cpu")
            ref, _ = load_policy(ref_path, "cpu")
            learner = StepDPOLearner(policy, ref, tok, dataclasses.replace(cfg.step_dpo, seed=cfg.seed + iteration))
            summary = learner.fit(pairs, out / "step_dpo", progress=False)
            result["policy"] = str(out / "step_dpo" / "policy")
            result["step_dpo"] = _metrics(summary)
        train_policy = learner_kind == PolicyLearner.OREO
        if (train_policy or cfg.iterate.train_value) and trajectories:
            policy, tok = load_policy(result["policy"], "cpu")
            ref, _ = load_policy(ref_path, "cpu")
            value = (ValueModel.from_pretrained(value_path, tokenizer=tok) if value_path
                     else ValueModel.from_policy(policy, tok))
            ocfg = dataclasses.replace(cfg.oreo, train_policy=train_policy, seed=cfg.seed + iteration)
            summary = OREOLearner(policy, ref, value, tok, ocfg).fit(trajectories, out / "oreo", progress=False)
            if train_policy:
                result["policy"] = str(out / "oreo" / "policy")
            result["value"] = str(out / "oreo" / "value")
            result["oreo"] = _metrics(summary)
        return result


def _metrics(summary: dict) -> dict:
    last = summary.get("last", {})
    return {"steps": summary.get("steps"), "seconds": round(summary.get("seconds", 0.0), 2),
            **{k: float(v) for k, v in last.items()},
            **{k: summary[k] for k in ("pairs", "trajectories", "skipped") if k in summary}}
