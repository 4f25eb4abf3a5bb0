"""The ALFWorld path of the main job (`launch/iterate.py` with `task.name: alfworld`).

    python launch/iterate.py --config configs/alfworld_tiny.yaml
    python launch/iterate.py --config configs/alfworld_smoke.yaml         # 4 training games, < 3 min
    ray job submit --working-dir . -- python launch/iterate.py --config configs/alfworld_tiny.yaml --run-dir /abs/runs/a

OREO on ALFWorld (algorithms.md 2.3, 2.5, 2.7, 2.9), iterated:
0. the starting policy: `model.policy`, or the tiny model of `model.tiny` with a closed-vocabulary
   tokenizer, behaviour-cloned on the walkthrough trajectories of `alfworld_task.expert_games`
   training games (`launch.alfworld_data`); evaluated only.
k. rollout: `alfworld_task.games_per_iteration` training games (fresh each iteration, cycling
   through a seeded shuffle), `rollouts_per_game` episodes each at `rollout_temperature` with the
   current policy, <= `alfworld.max_steps` turns, a turn with no "Action:" ends the episode as a
   failure (`agent.unparsed: end`), reward 1 on success; chunks of games go to the rollout actors
   (one process each: ALFWorld is GIL-bound), retried if an actor dies;
   learn: `iterate.agent_learner` = oreo (policy + value; `oreo.variant: step` makes one agent turn
   one action, observation tokens never are), rft (fine-tune on the successes) or dpo (won vs lost
   trajectories of a game, <= 5 pairs) -- the three rows of OREO's table O2 at equal rollouts;
   evaluate: every method of `eval.methods` (greedy; best_of_k@K once a critic exists) on
   valid_seen and valid_unseen (`alfworld_task.eval_games` of each, 0 = all 140 / 134);
   commit: the manifest is written last; rerunning the same command resumes after it.

The manifest's "eval" maps "<method>/<seen or unseen>" to {"accuracy" (success rate), "n", "env_steps",
"generated_tokens", "wall_s"}, so the run's summary, plots and final table read as the math recipes'.
"""
from __future__ import annotations

import time

import ray

from launch.agent_workers import AgentLearner, AgentWorker
from launch.ray_setup import worker_env

__all__ = ["AlfworldJob", "AgentWorkerActor", "AgentLearnerActor", "iteration_table"]

AgentWorkerActor = ray.remote(AgentWorker)
AgentLearnerActor = ray.remote(AgentLearner)

EVAL_SPLITS = ("valid_seen", "valid_unseen")


def _options(group, cfg) -> dict:
    return dict(num_cpus=group.num_cpus, num_gpus=group.num_gpus, max_restarts=group.max_restarts,
                max_task_retries=group.max_restarts, runtime_env={"env_vars": worker_env(cfg.ray, cfg.generator)})


class AlfworldJob:
    """The single controller of the ALFWorld loop; see the module docstring."""

    def __init__(self, cfg, run, *, quiet: bool = False):
        from envs.alfworld import find_games
        from envs.alfworld_games import sample_games
        from launch.alfworld_data import data_root
        self.cfg, self.run, self.quiet = cfg, run, quiet
        task = cfg.alfworld_task
        root = data_root(task)                                  # unpacks the train archive once
        self.train_games = sample_games(find_games(root, "train"), 0, task.seed + 1)
        self.eval_games = {s: sorted(sample_games(find_games(root, s), task.eval_games, task.seed), key=lambda g: g.name)
                           for s in EVAL_SPLITS if (root / "json_2.1.1" / s).is_dir()}
        g = cfg.workers.rollout
        self.workers = [AgentWorkerActor.options(**_options(g, cfg)).remote(cfg, f"agent-{i}") for i in range(g.count)]
        self.learner = AgentLearnerActor.options(**_options(cfg.workers.learner, cfg)).remote(cfg, "agent-learner")
        self.writer = None

    # ------------------------------------------------------------------ helpers
    def _pool_map(self, calls: list[tuple[str, tuple]], desc: str, sizes: list[int]) -> list:
        """Run `(method, args)` calls over the workers, one in flight per worker; results in call order."""
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(sizes), desc=desc, unit="game", disable=self.quiet, dynamic_ncols=True)
        results, pending, free, nxt = [None] * len(calls), {}, list(range(len(self.workers))), 0
        while nxt < len(calls) or pending:
            while free and nxt < len(calls):
                w = free.pop()
                method, args = calls[nxt]
                pending[getattr(self.workers[w], method).remote(*args)] = (nxt, w)
                nxt += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            i, w = pending.pop(done[0])
            results[i] = ray.get(done[0])
            free.append(w)
            bar.update(sizes[i])
        bar.close()
        return results

    @staticmethod
    def _chunks(items: list, n: int) -> list[list]:
        return [items[i:i + n] for i in range(0, len(items), n)]

    # ------------------------------------------------------------------ phases
    def starting_policy(self) -> tuple[str, dict]:
        out = self.run.root / "checkpoints" / "bc"
        print(f"[iteration 0] behaviour cloning on walkthroughs -> {out}", flush=True)
        return str(out), ray.get(self.learner.bc.remote(str(out)))

    def rollout(self, k: int, policy: str) -> tuple[list, dict]:
        task = self.cfg.alfworld_task
        n, total = task.games_per_iteration, len(self.train_games)
        games = [self.train_games[((k - 1) * n + i) % total] for i in range(n)]
        chunks = self._chunks(games, max(1, -(-n // max(1, len(self.workers)))))
        t0 = time.perf_counter()
        outs = self._pool_map([("rollout", (c, policy, k - 1)) for c in chunks], f"[iteration {k}] rollout",
                              [len(c) for c in chunks])
        trajs = [t for o in outs for t in o["trajectories"]]
        stats = {key: sum(o["stats"][key] for o in outs)
                 for key in ("episodes", "won", "env_steps", "parse_failures", "generated_tokens")}
        stats.update(games=len(games), wall_s=round(time.perf_counter() - t0, 2))
        stats["env_steps_per_s"] = round(stats["env_steps"] / max(stats["wall_s"], 1e-9), 2)
        return trajs, stats

    def evaluate(self, k: int, policy: str, value: str | None) -> dict:
        from launch.evaluation import EvalMethod, parse_method
        results = {}
        for method in self.cfg.eval.methods:
            kind, _ = parse_method(method)
            if kind == EvalMethod.BEST_OF_K and value is None:
                continue
            for split, games in self.eval_games.items():
                shards = [s for s in (games[i::len(self.workers)] for i in range(len(self.workers))) if s]
                t0 = time.perf_counter()
                outs = self._pool_map([("evaluate", (s, method, policy, k, value)) for s in shards],
                                      f"[iteration {k}] eval {method} {split}", [len(s) for s in shards])
                won, n = sum(o["won"] for o in outs), sum(o["episodes"] for o in outs)
                results[f"{method}/{split.removeprefix('valid_')}"] = {
                    "accuracy": won / max(1, n), "n": n, "env_steps": sum(o["env_steps"] for o in outs),
                    "generated_tokens": sum(o["generated_tokens"] for o in outs),
                    "wall_s": round(time.perf_counter() - t0, 2)}
        return results

    # ------------------------------------------------------------------ bookkeeping
    def commit(self, k: int, manifest: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from launch.plots import plot_summary
        self.run.commit(k, manifest)
        plot_summary(self.run.write_summary(), self.run.root / "plots")
        if self.writer is None:
            self.writer = SummaryWriter(str(self.run.tensorboard))
        for name, res in manifest.get("eval", {}).items():
            self.writer.add_scalar(f"eval/{name}/success", res["accuracy"], k)
        for key, v in manifest.get("rollout", {}).items():
            self.writer.add_scalar(f"rollout/{key}", v, k)
        self.writer.flush()
        print(iteration_table(k, manifest), flush=True)

    def run_all(self) -> dict:
        from launch.tables import final_table
        from reasoner.records import write_records
        run, cfg = self.run, self.cfg
        last = run.last_committed()
        if last is None:
            policy, info = self.starting_policy()
            self.commit(0, {"policy": policy, "value": cfg.model.value or None, "policy_version": 0,
                            "start": info, "eval": self.evaluate(0, policy, cfg.model.value or None)})
            last = 0
        else:
            print(f"resuming {run.root} after committed iteration {last}", flush=True)
        ref = run.read_manifest(0)["policy"]
        for k in range(last + 1, cfg.iterate.iterations + 1):
            prev = run.read_manifest(k - 1)
            t0 = time.perf_counter()
            trajs, rstats = self.rollout(k, prev["policy"])
            write_records(run.records(k, "trajectories"), trajs)
            print(f"[iteration {k}] learn ({cfg.iterate.agent_learner.value}): {len(trajs)} trajectories, "
                  f"{rstats['won']} won", flush=True)
            trained = ray.get(self.learner.train.remote(k, prev["policy"], ref, prev["value"], trajs,
                                                        str(run.root / "checkpoints" / f"iter_{k}")))
            ev = self.evaluate(k, trained["policy"], trained["value"])
            self.commit(k, {"policy": trained["policy"], "value": trained["value"], "policy_version": k,
                            "rollout": rstats, "train": trained, "eval": ev,
                            "wall_s": round(time.perf_counter() - t0, 1)})
        summary = run.write_summary()
        print(final_table(summary), flush=True)
        print(f"run directory: {run.root}", flush=True)
        return summary


def iteration_table(k: int, manifest: dict) -> str:
    """Success per method and split of iteration k, with its rollout and training facts."""
    lines = [f"== iteration {k} (policy v{manifest.get('policy_version', k)}) ==",
             f"{'method/split':<28} {'success':>8} {'n':>5} {'env_steps':>10} {'gen_tokens':>11} {'wall_s':>8}"]
    for name, r in manifest.get("eval", {}).items():
        lines.append(f"{name:<28} {r['accuracy']:>8.3f} {r['n']:>5} {r['env_steps']:>10} "
                     f"{r['generated_tokens']:>11} {r['wall_s']:>8.1f}")
    ro = manifest.get("rollout")
    if ro:
        lines.append(f"rollout: {ro['games']} games, {ro['episodes']} episodes, {ro['won']} won, "
                     f"{ro['env_steps']} env steps ({ro['env_steps_per_s']}/s), {ro['parse_failures']} parse failures")
    train = manifest.get("train") or {}
    shown = {key: (round(v, 4) if isinstance(v, float) else v) for key, v in train.items()
             if key in ("algo", "steps", "loss", "value_loss", "policy_loss", "margin", "trajectories", "pairs",
                        "no_data", "seconds")}
    if shown:
        lines.append(f"train: {shown}")
    return "\n".join(lines)
