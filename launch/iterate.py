"""The main job: collect (MCTS) -> learn (step-DPO / OREO) -> evaluate, iterated, on Ray.
(`iterate.recipe=oni` runs the ONI agent job instead: launch/oni_job.py, configs/oni_minihack.yaml.)

    python launch/iterate.py --config configs/arith_tiny.yaml                  # embedded local Ray
    python launch/iterate.py --config configs/arith_smoke.yaml iterate.iterations=2
    python launch/iterate.py --config configs/spar_tiny.yaml                   # SPaR (iterate.recipe=spar)
    ray job submit --working-dir . -- python launch/iterate.py --config configs/arith_smoke.yaml \\
        --run-dir /abs/path/runs/smoke                                          # on a running cluster

With `task.name: alfworld` the loop plays ALFWorld games instead (`launch/alfworld_job.py`:
behaviour cloning, rollouts, OREO / RFT / DPO, greedy and value-guided best-of-K evaluation).

Iteration 0 is the starting policy: `model.policy`, or SFT from scratch on the synthetic task
when it is empty; it is only evaluated. Each later iteration k:
1. rollout: the policy workers search `iterate.problems_per_iteration` fresh training problems
   with batched step-level MCTS (chunks of `iterate.chunk_size`, retried if a worker dies) and
   return step pairs, graded trajectories and traces;
2. learn: the learner trains step-DPO on the pairs (reference = the iteration-0 policy) and/or
   OREO on the trajectories (the value, and the policy when `iterate.policy_learner=oreo`);
3. reload: the workers load the new weights in place;
4. evaluate: held-out problems with every method in `eval.methods` (value methods once a value
   exists), counting generated tokens;
5. commit: the iteration's manifest is written last (`launch.run_dir`); summary.json, plots and
   TensorBoard are refreshed. Rerunning the same command after a crash resumes after the last
   committed iteration.

With `iterate.recipe=spar` the same loop runs SPaR's actor/refiner self-play instead
(`launch.spar_job`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

# `python launch/iterate.py` (also under `ray job submit`) puts launch/ on sys.path, not the repo.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python launch/iterate.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML preset, e.g. configs/arith_tiny.yaml")
    ap.add_argument("--run-dir", help="run directory (default: iterate.run_dir or runs/<config stem>); "
                                      "use an absolute path under `ray job submit`")
    ap.add_argument("--allow-config-change", action="store_true",
                    help="resume a run directory even though the config differs from its snapshot")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. iterate.iterations=2")
    return ap


class Job:
    """The single controller: owns the loop, calls worker groups, writes the run directory."""

    def __init__(self, cfg, run, *, quiet: bool = False):
        import ray

        from launch.actors import make_learner, make_rollout_workers
        from launch.ray_setup import check_resources
        self.cfg, self.run, self.quiet = cfg, run, quiet
        check_resources(cfg.workers, ray.cluster_resources())  # else Ray waits forever
        self.workers = make_rollout_workers(cfg)
        self.learner = make_learner(cfg)
        self.writer = None

    # ------------------------------------------------------------------ helpers
    def _bar(self, total: int, desc: str):
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=desc, unit="prob", disable=self.quiet, dynamic_ncols=True)

    def _tb(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.run.tensorboard))
        return self.writer

    def _pool_map(self, calls: list[tuple[str, tuple]], desc: str, sizes: list[int]) -> list:
        """Run `(method, args)` calls over the workers (one in flight per worker); results in call order."""
        import ray
        bar, results, t0, tokens = self._bar(sum(sizes), desc), [None] * len(calls), time.perf_counter(), 0
        pending, free, nxt = {}, list(range(len(self.workers))), 0
        while nxt < len(calls) or pending:
            while free and nxt < len(calls):
                w = free.pop()
                method, args = calls[nxt]
                pending[getattr(self.workers[w], method).remote(*args)] = (nxt, w)
                nxt += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            i, w = pending.pop(done[0])
            results[i] = ray.get(done[0])  # a worker error surfaces here, naming worker and problems
            free.append(w)
            out = results[i]
            tokens += (out.stats if hasattr(out, "stats") else out).get("generated_tokens", 0)
            dt = time.perf_counter() - t0
            bar.update(sizes[i])
            bar.set_postfix(prob_s=f"{bar.n / dt:.2f}", tok_s=f"{tokens / dt:.0f}", refresh=False)
        bar.close()
        return results

    # ------------------------------------------------------------------ phases
    def starting_policy(self) -> tuple[str, str | None, dict]:
        """(policy path, value path, info) of iteration 0: the given policy or SFT from scratch."""
        import ray
        if self.cfg.model.policy:
            return self.cfg.model.policy, self.cfg.model.value or None, {"source": "model.policy"}
        out = self.run.root / "checkpoints" / "sft"
        print(f"[iteration 0] SFT of the tiny policy from scratch -> {out} ({self.cfg.sft.steps} steps)", flush=True)
        info = ray.get(self.learner.sft.remote(str(out)))
        return str(out), self.cfg.model.value or None, {"source": "sft", **info}

    def rollout(self, k: int, policy: str, value: str | None) -> tuple[list, list, list, dict]:
        from envs.tasks import load_problems
        cfg = self.cfg.iterate
        problems = load_problems(self.cfg.task, "train", cfg.problems_per_iteration,
                                 offset=(k - 1) * cfg.problems_per_iteration)
        chunks = [problems[i:i + cfg.chunk_size] for i in range(0, len(problems), cfg.chunk_size)]
        outs = self._pool_map([("rollout", (c, policy, k - 1, value)) for c in chunks],
                              f"[iteration {k}] rollout (MCTS)", [len(c) for c in chunks])
        pairs = [p for o in outs for p in o.pairs]
        trajs = [t for o in outs for t in o.trajectories]
        traces = [t for o in outs for t in o.traces]
        keys = ("problems", "committed_correct", "pairs", "trajectories", "positive_trajectories",
                "generated_tokens", "model_calls", "simulations")
        stats = {key: sum(o.stats[key] for o in outs) for key in keys}
        stats.update({key: round(sum(o.stats[key] for o in outs), 3) for key in ("model_s", "tree_s", "wall_s")})
        return pairs, trajs, traces, stats

    def evaluate(self, k: int, policy: str, value: str | None) -> dict:
        """Every eval method (value methods only with a value) over the held-out set."""
        import json

        from configs.schema import SearchValue
        from envs.tasks import load_problems
        from launch.evaluation import EvalMethod, parse_method
        n = self.cfg.eval.num_problems or None
        task = self.cfg.task
        if self.cfg.eval.task:
            import dataclasses

            from envs.tasks import TaskName
            task = dataclasses.replace(task, name=TaskName(self.cfg.eval.task), test_path="")
        heldout = load_problems(task, "test", n)
        shards = [heldout[i::len(self.workers)] for i in range(len(self.workers))]
        shards = [s for s in shards if s]
        results = {}
        for method in self.cfg.eval.methods:
            kind, _ = parse_method(method)
            if value is None and self.cfg.eval.value == SearchValue.LEARNED and kind in (EvalMethod.BEST_OF_N,
                                                                                         EvalMethod.BEAM):
                continue
            outs = self._pool_map([("evaluate", (s, method, policy, k, value)) for s in shards],
                                  f"[iteration {k}] eval {method}", [len(s) for s in shards])
            correct, total = sum(o["correct"] for o in outs), sum(o["n"] for o in outs)
            results[method] = {"accuracy": correct / max(1, total), "n": total,
                               "generated_tokens": sum(o["generated_tokens"] for o in outs),
                               "wall_s": round(max(o["wall_s"] for o in outs), 2)}
            path = self.run.eval_dir(k) / f"{method.replace('@', '_at_')}.responses.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                for o in outs:
                    for r in o["records"]:
                        f.write(json.dumps({"problem_id": r.problem_id, "response": r.response,
                                            "extracted": r.extracted, "reference": r.reference,
                                            "correct": r.correct, "generated_tokens": r.generated_tokens}) + "\n")
        return results

    def learn(self, k: int, policy: str, ref: str, value: str | None, pairs, trajs) -> dict:
        import ray
        out = self.run.root / "checkpoints" / f"iter_{k}"
        print(f"[iteration {k}] learn: {len(pairs)} step pairs, {len(trajs)} trajectories", flush=True)
        return ray.get(self.learner.train.remote(k, policy, ref, value, pairs, trajs, str(out)))

    # ------------------------------------------------------------------ bookkeeping
    def commit(self, k: int, manifest: dict) -> None:
        from launch.plots import plot_summary
        from launch.tables import iteration_table
        self.run.commit(k, manifest)
        summary = self.run.write_summary()
        plot_summary(summary, self.run.root / "plots")
        tb = self._tb()
        for method, res in manifest.get("eval", {}).items():
            tb.add_scalar(f"eval/{method}/accuracy", res["accuracy"], k)
            tb.add_scalar(f"eval/{method}/generated_tokens", res["generated_tokens"], k)
        for key, v in manifest.get("rollout", {}).items():
            tb.add_scalar(f"rollout/{key}", v, k)
        tb.flush()
        print(iteration_table(k, manifest), flush=True)

    def run_all(self) -> dict:
        from launch.tables import final_table
        from reasoner.records import write_records
        run, cfg = self.run, self.cfg
        last = run.last_committed()
        if last is None:
            policy, value, info = self.starting_policy()
            self.commit(0, {"policy": policy, "value": value, "policy_version": 0, "start": info,
                            "eval": self.evaluate(0, policy, value)})
            last = 0
        else:
            print(f"resuming {run.root} after committed iteration {last}", flush=True)
        ref = run.read_manifest(0)["policy"]
        for k in range(last + 1, cfg.iterate.iterations + 1):
            prev = run.read_manifest(k - 1)
            t0 = time.perf_counter()
            pairs, trajs, traces, rstats = self.rollout(k, prev["policy"], prev["value"])
            for kind, recs in (("pairs", pairs), ("trajectories", trajs), ("traces", traces)):
                if recs:
                    write_records(run.records(k, kind), recs)
            trained = self.learn(k, prev["policy"], ref, prev["value"], pairs, trajs)
            ev = self.evaluate(k, trained["policy"], trained["value"])
            self.commit(k, {"policy": trained["policy"], "value": trained["value"], "policy_version": k,
                            "rollout": rstats, "train": {"step_dpo": trained["step_dpo"], "oreo": trained["oreo"]},
                            "eval": ev, "wall_s": round(time.perf_counter() - t0, 1)})
        summary = run.write_summary()
        print(final_table(summary), flush=True)
        print(f"run directory: {run.root}", flush=True)
        return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from configs.schema import Recipe
    from envs.tasks import TaskName
    from launch.seeding import pin_threads, seed_everything
    pin_threads()
    from launch.config import ConfigError, load_config, to_yaml
    from launch.ray_setup import ResourceShortfall, init_ray
    from launch.run_dir import RunDir
    try:
        cfg = load_config(args.config, args.overrides)
        root = args.run_dir or cfg.iterate.run_dir or str(Path("runs") / Path(args.config).stem)
        run = RunDir(root)
        run.check_config(to_yaml(cfg), allow_change=args.allow_config_change)
    except (ConfigError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    removed = run.clear_uncommitted()
    if removed:
        print(f"discarded uncommitted iteration(s) {removed} of {run.root}; redoing them", flush=True)
    seed_everything(cfg.seed)
    ray = init_ray(cfg.ray)
    job_class = Job
    if cfg.iterate.recipe == Recipe.ONI:
        from launch.oni_job import ONIJob as job_class
    elif cfg.iterate.recipe == Recipe.SPAR:
        from launch.spar_job import SparJob as job_class
    elif TaskName(cfg.task.name) == TaskName.ALFWORLD:   # agent episodes, not problems
        from launch.alfworld_job import AlfworldJob as job_class
    try:
        job_class(cfg, run, quiet=args.quiet).run_all()
    except ResourceShortfall as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # worker errors arrive wrapped by Ray; keep the useful line
        msg = str(e).strip().splitlines()
        print(f"error: {msg[-1] if msg else type(e).__name__}", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
