"""The SPaR recipe of the main job (`iterate.recipe=spar`): actor/refiner self-play, iterated on Ray.

    python launch/iterate.py --config configs/spar_tiny.yaml

Iteration 0: the starting model (`model.policy`, or SFT of the tiny model from scratch on the
embedded task's SFT mixture: actor references + bootstrap judgments and refinements) plays both
roles; it is only evaluated. Each later iteration k (algorithms.md 4.2):
1. rollout: the workers run self-play over `iterate.problems_per_iteration` fresh training
   prompts in chunks (actor samples -> refiner judgments -> one failing response per prompt ->
   tree-search refinement), returning actor pairs and refiner examples, audited against the
   IFEval checkers (judge agreement on the actor's samples, refinement success self-judged vs
   checker-judged);
2. learn: actor DPO + 0.1 NLL on the pairs (reference = the iteration-0 model), refiner RFT;
3. evaluate: the actor on held-out prompts for every method of `eval.methods` (greedy,
   refine@k), strict/loose prompt and instruction accuracy by the checkers, and the refiner's judge
   accuracy on a fixed held-out set of judged responses (references and corruptions);
4. commit the manifest last. Rerunning resumes after the last committed iteration.
"""
from __future__ import annotations

import json
import time

from launch.iterate import Job

__all__ = ["SparJob"]


class SparJob(Job):
    """Single controller of the SPaR recipe (shares the run directory, bars and pool with `Job`)."""

    def __init__(self, cfg, run, *, quiet: bool = False):
        from launch.actors import make_spar_learner, make_spar_workers
        self.cfg, self.run, self.quiet = cfg, run, quiet
        self.workers = make_spar_workers(cfg)
        self.learner = make_spar_learner(cfg)
        self.writer = None
        self._judge_set = None

    # ------------------------------------------------------------------ phases
    def _train_offset(self, k: int) -> int:
        """Self-play prompts of iteration k come after the SFT prompts, fresh every iteration."""
        return self.cfg.spar.sft_prompts + (k - 1) * self.cfg.iterate.problems_per_iteration

    def rollout(self, k: int, actor: str, refiner: str) -> tuple[list, list, dict]:
        from envs.tasks import load_instruct_problems
        cfg = self.cfg.iterate
        problems = load_instruct_problems(self.cfg.task, "train", cfg.problems_per_iteration, offset=self._train_offset(k))
        chunks = [problems[i:i + cfg.chunk_size] for i in range(0, len(problems), cfg.chunk_size)]
        outs = self._pool_map([("rollout", (c, actor, refiner, k - 1)) for c in chunks],
                              f"[iteration {k}] self-play", [len(c) for c in chunks])
        pairs = [p for o in outs for p in o.pairs]
        examples = [e for o in outs for e in o.refiner_examples]
        stats = {key: sum(o.stats[key] for o in outs) for key in outs[0].stats}
        stats["wall_s"] = round(stats["wall_s"], 2)
        stats["judge_accuracy_samples"] = stats["judge_agree"] / max(1, stats["samples"])
        stats["refine_success_self"] = stats["refined_self"] / max(1, stats["negatives"])
        stats["refine_success_checker"] = stats["refined_checker"] / max(1, stats["negatives"])
        return pairs, examples, stats

    def judge_set(self) -> list[tuple[str, str, bool]] | None:
        """Fixed held-out (instruction, response, checker verdict) items: references and corruptions
        (embedded task); None elsewhere (the actor's greedy held-out responses are judged instead)."""
        from envs.tasks import TaskName
        if TaskName(self.cfg.task.name) != TaskName.INSTRUCT:
            return None
        if self._judge_set is None:
            from envs.instruct_bootstrap import bootstrap_examples
            from envs.tasks import load_instruct_problems
            n = max(1, self.cfg.eval.num_problems)
            test = load_instruct_problems(self.cfg.task, "test", n)
            judges, _ = bootstrap_examples(test, seed=self.cfg.seed + 1, pass_fraction=0.5)
            self._judge_set = [(j.question, j.response, j.passed) for j in judges]
        return self._judge_set

    def evaluate(self, k: int, actor: str, refiner: str) -> tuple[dict, dict]:
        """(per-method checker scores of the actor, the refiner's judge accuracy) on held-out prompts."""
        import ray

        from envs.tasks import load_instruct_problems
        heldout = load_instruct_problems(self.cfg.task, "test", self.cfg.eval.num_problems or None)
        shards = [s for s in (heldout[i::len(self.workers)] for i in range(len(self.workers))) if s]
        results, greedy_records = {}, []
        for method in self.cfg.eval.methods:
            outs = self._pool_map([("evaluate", (s, method, actor, refiner, k)) for s in shards],
                                  f"[iteration {k}] eval {method}", [len(s) for s in shards])
            n, inst = sum(o["n"] for o in outs), sum(o["instructions"] for o in outs)
            results[method] = {"accuracy": sum(o["prompt_strict"] for o in outs) / n, "n": n,
                               "prompt_loose": sum(o["prompt_loose"] for o in outs) / n,
                               "instruction_strict": sum(o["instruction_strict"] for o in outs) / inst,
                               "instruction_loose": sum(o["instruction_loose"] for o in outs) / inst,
                               "generated_tokens": sum(o["generated_tokens"] for o in outs),
                               "wall_s": round(max(o["wall_s"] for o in outs), 2)}
            path = self.run.eval_dir(k) / f"{method.replace('@', '_at_')}.responses.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                for o in outs:
                    for r in o["records"]:
                        f.write(json.dumps(r) + "\n")
            if method == self.cfg.eval.methods[0]:
                greedy_records = [r for o in outs for r in o["records"]]
        items = self.judge_set()
        if items is None:   # real tasks: the actor's greedy held-out responses, labelled by the checkers
            items = [(r["question"], r["response"], all(r["strict"])) for r in greedy_records]
        parts = [items[i::len(self.workers)] for i in range(len(self.workers))]
        outs = ray.get([w.judge_accuracy.remote(p, refiner, actor) for w, p in zip(self.workers, parts) if p])
        n = sum(o["n"] for o in outs)
        judge = {"accuracy": sum(o["correct"] for o in outs) / n, "n": n,
                 "said_yes": sum(o["said_yes"] for o in outs) / n, "truly_yes": sum(o["truly_yes"] for o in outs) / n}
        return results, judge

    # ------------------------------------------------------------------ the loop
    def commit(self, k: int, manifest: dict) -> None:
        from launch.plots import plot_summary
        self.run.commit(k, manifest)
        plot_summary(self.run.write_summary(), self.run.root / "plots")
        tb = self._tb()
        tb.add_scalar("judge/accuracy", manifest["judge"]["accuracy"], k)
        for m, r in manifest["eval"].items():
            for key in ("accuracy", "prompt_loose", "instruction_strict", "instruction_loose", "generated_tokens"):
                tb.add_scalar(f"eval/{m}/{key}", r[key], k)
        for key, v in manifest.get("rollout", {}).items():
            tb.add_scalar(f"rollout/{key}", v, k)
        tb.flush()
        print(spar_table(k, manifest), flush=True)

    def run_all(self) -> dict:
        import ray

        from launch.tables import final_table
        from reasoner.records import write_records
        run, cfg = self.run, self.cfg
        last = run.last_committed()
        if last is None:
            actor, _, info = self.starting_policy()
            refiner = cfg.model.refiner or actor
            ev, judge = self.evaluate(0, actor, refiner)
            self.commit(0, {"policy": actor, "refiner": refiner, "value": None, "policy_version": 0, "start": info,
                            "eval": ev, "judge": judge})
            last = 0
        else:
            print(f"resuming {run.root} after committed iteration {last}", flush=True)
        ref = run.read_manifest(0)["policy"]
        for k in range(last + 1, cfg.iterate.iterations + 1):
            prev = run.read_manifest(k - 1)
            t0 = time.perf_counter()
            pairs, examples, rstats = self.rollout(k, prev["policy"], prev["refiner"])
            if pairs:
                write_records(run.records(k, "pairs"), pairs)
            if examples:
                write_records(run.records(k, "refiner_examples"), examples)
            print(f"[iteration {k}] learn: {len(pairs)} actor pairs, {len(examples)} refiner examples", flush=True)
            out = run.root / "checkpoints" / f"iter_{k}"
            trained = ray.get(self.learner.train.remote(k, prev["policy"], ref, prev["refiner"], pairs, examples, str(out)))
            ev, judge = self.evaluate(k, trained["actor"], trained["refiner"])
            self.commit(k, {"policy": trained["actor"], "refiner": trained["refiner"], "value": None,
                            "policy_version": k, "rollout": rstats, "train": {"dpo": trained["dpo"], "rft": trained["rft"]},
                            "eval": ev, "judge": judge, "wall_s": round(time.perf_counter() - t0, 1)})
        summary = run.write_summary()
        print(final_table(summary), flush=True)
        print(f"run directory: {run.root}", flush=True)
        return summary


def spar_table(k: int, manifest: dict) -> str:
    """Iteration k: actor strict/loose accuracy per method, judge accuracy, self-play facts."""
    lines = [f"== SPaR iteration {k} ==",
             f"{'method':<12} {'P(S)':>7} {'P(L)':>7} {'I(S)':>7} {'I(L)':>7} {'n':>5} {'gen_tokens':>11}"]
    for m, r in manifest["eval"].items():
        lines.append(f"{m:<12} {r['accuracy']:>7.3f} {r['prompt_loose']:>7.3f} {r['instruction_strict']:>7.3f} "
                     f"{r['instruction_loose']:>7.3f} {r['n']:>5} {r['generated_tokens']:>11}")
    j = manifest["judge"]
    lines.append(f"refiner judge accuracy vs checkers: {j['accuracy']:.3f} on {j['n']} held-out responses "
                 f"(says Yes {j['said_yes']:.2f}, truly Yes {j['truly_yes']:.2f})")
    ro = manifest.get("rollout")
    if ro:
        lines.append(f"self-play: {ro['prompts']} prompts, {ro['negatives']} refined trees, refinement success "
                     f"{ro['refine_success_self']:.3f} self-judged / {ro['refine_success_checker']:.3f} by checkers, "
                     f"judge agreement on samples {ro['judge_accuracy_samples']:.3f}, {ro['pairs']} pairs, "
                     f"{ro['refiner_examples']} refiner examples, {ro['generated_tokens']} tokens")
    return "\n".join(lines)
