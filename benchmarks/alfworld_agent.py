"""ALFWorld agent: BC vs RFT vs DPO vs OREO (+ value-guided best-of-K), success on seen/unseen games.

    python benchmarks/alfworld_agent.py                      # full: 134 unseen + 140 seen games
    python benchmarks/alfworld_agent.py --quick --out /tmp/a.json

OREO's table O2 in miniature (algorithms.md 2.8), with the tiny from-scratch agent of
configs/alfworld_tiny.yaml:
1. bc: behaviour cloning on the walkthroughs of `--expert-games` training games.
2. one round of rollouts of the BC policy on `--rollout-games` fresh training games (5 per game,
   temperature 1, <= 40 steps, a turn without "Action:" ends the episode as a failure);
3. from BC, on those same rollouts (equal rollouts): rft (fine-tune on the successes), dpo
   (won vs lost trajectories of a game, <= 5 pairs), oreo (step-level policy + value);
4. evaluate every policy greedy on valid_unseen and valid_seen, and oreo_best_of_k: the OREO
   policy choosing among K sampled turns per step by its critic.
Rollouts and evaluation run on `--workers` Ray actors (one process each); the environment-steps
rate of the rollouts is measured with 1 actor and with `--workers` actors on the same games (the
speed-up). Writes `benchmarks/results/alfworld_agent.json` (or `--out`):
`{"methods": {name: {"unseen", "seen", "env_steps"}}, "env_steps_per_s": {...}, ...}`.
Needs $ALFWORLD_DATA (shared/data/alfworld with train_games.tar.xz).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHODS = ("bc", "rft", "dpo", "oreo", "oreo_best_of_k")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small budgets (minutes); never writes the committed JSON")
    ap.add_argument("--out", help="result JSON (default benchmarks/results/alfworld_agent.json; --quick: a temp file)")
    ap.add_argument("--expert-games", type=int, default=None, help="walkthroughs for BC (default 3553; quick 320)")
    ap.add_argument("--rollout-games", type=int, default=None, help="training games rolled out (default 256; quick 16)")
    ap.add_argument("--eval-games", type=int, default=None, help="games per eval split (0 = all; quick 16)")
    ap.add_argument("--bc-epochs", type=int, default=None, help="BC epochs (default 2; quick 4)")
    ap.add_argument("--k", type=int, default=5, help="candidates per step for best-of-K")
    ap.add_argument("--workers", type=int, default=2, help="rollout/eval actors (processes)")
    ap.add_argument("--work-dir", default="runs/bench_alfworld", help="checkpoints and caches")
    ap.add_argument("--cache-dir", default="runs/alfworld_cache", help="train games + expert trajectory cache")
    return ap


def _config(args):
    from launch.config import load_config
    quick = args.quick
    pick = lambda given, full, small: given if given is not None else (small if quick else full)  # noqa: E731
    overrides = [f"alfworld_task.expert_games={pick(args.expert_games, 0, 320)}",
                 f"alfworld_task.eval_games={pick(args.eval_games, 0, 16)}",
                 f"alfworld_task.games_per_iteration={pick(args.rollout_games, 256, 16)}",
                 f"alfworld_task.cache_dir={args.cache_dir}",
                 f"agent_bc.epochs={pick(args.bc_epochs, 2, 4)}",
                 f"workers.rollout.count={args.workers}", "agent_bc.save_every=25"]
    return load_config(ROOT / "configs" / "alfworld_tiny.yaml", overrides)


def _evaluate(job, k_iter: int, policy: str, value: str | None, method: str) -> dict:
    """Success on both splits and the env steps it took."""
    job.cfg = dataclasses.replace(job.cfg, eval=dataclasses.replace(job.cfg.eval, methods=[method]))
    res = job.evaluate(k_iter, policy, value)
    return {"unseen": res[f"{method}/unseen"]["accuracy"], "seen": res[f"{method}/seen"]["accuracy"],
            "env_steps": res[f"{method}/unseen"]["env_steps"] + res[f"{method}/seen"]["env_steps"],
            "games": {"unseen": res[f"{method}/unseen"]["n"], "seen": res[f"{method}/seen"]["n"]},
            "wall_s": round(res[f"{method}/unseen"]["wall_s"] + res[f"{method}/seen"]["wall_s"], 1)}


def _rollout_rate(job, policy: str, workers: list, games: int) -> float:
    """Env steps/s of rollouts of `games` training games with the actors `workers`."""
    keep = job.workers
    job.workers = workers
    job.cfg = dataclasses.replace(job.cfg, alfworld_task=dataclasses.replace(job.cfg.alfworld_task,
                                                                             games_per_iteration=games))
    try:
        _, stats = job.rollout(1, policy)
    finally:
        job.workers = keep
    return stats["env_steps"] / stats["wall_s"]


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    from launch.seeding import pin_threads
    pin_threads()
    import ray

    from launch.agent_workers import AgentLearner
    from launch.alfworld_job import AlfworldJob
    from launch.run_dir import RunDir
    cfg = _config(args)
    work = Path(args.work_dir)
    t_start = time.perf_counter()
    learner = AgentLearner(cfg)
    bc = work / "bc"
    if not (bc / "learner_info.json").exists():              # before Ray: BC resumes from bc/state
        print(f"BC on {cfg.alfworld_task.expert_games or 'all'} training games' walkthroughs", flush=True)
        learner.bc(str(bc), processes=args.workers)
    # every finished phase is kept in work/partial.json, so a rerun after a crash continues
    partial_path = work / "partial.json"
    partial = json.loads(partial_path.read_text()) if partial_path.exists() else {"methods": {}, "trained": {}}

    def keep() -> None:
        partial_path.write_text(json.dumps(partial, indent=2))

    ray.init(num_cpus=max(2, args.workers + 1), include_dashboard=False, object_store_memory=300_000_000)
    job = AlfworldJob(cfg, RunDir(work / "run"), quiet=False)
    results = partial["methods"]
    if "bc" not in results:
        results["bc"] = _evaluate(job, 0, str(bc), None, "greedy")
        keep()
    print("bc", results["bc"], flush=True)

    from reasoner.records import Trajectory, read_records, write_records
    n_roll = cfg.alfworld_task.games_per_iteration
    roll_path = work / "rollouts.parquet"
    if "rollouts" not in partial:
        trajs, partial["rollouts"] = job.rollout(1, str(bc))
        write_records(roll_path, trajs)
        keep()
    trajs, rstats = read_records(roll_path, Trajectory), partial["rollouts"]
    print(f"rollouts: {rstats}", flush=True)
    policies = partial["trained"]
    for algo in ("rft", "dpo", "oreo"):
        if algo not in policies:
            learner.cfg = dataclasses.replace(cfg, iterate=dataclasses.replace(cfg.iterate, agent_learner=algo))
            policies[algo] = learner.train(1, str(bc), str(bc), None, trajs, str(work / algo))
            keep()
        if algo not in results:
            results[algo] = {**_evaluate(job, 1, policies[algo]["policy"], None, "greedy"),
                             "no_data": policies[algo]["no_data"]}
            keep()
        print(algo, results[algo], flush=True)
    if "oreo_best_of_k" not in results:
        results["oreo_best_of_k"] = _evaluate(job, 1, policies["oreo"]["policy"], policies["oreo"]["value"],
                                              f"best_of_k@{args.k}")
        keep()
    print("oreo_best_of_k", results["oreo_best_of_k"], flush=True)

    speed_games = max(2, min(4, n_roll))
    one = _rollout_rate(job, str(bc), job.workers[:1], speed_games)
    many = _rollout_rate(job, str(bc), job.workers, speed_games)
    payload = {"methods": results,
               "env_steps_per_s": {"1_actor": round(one, 2), f"{len(job.workers)}_actors": round(many, 2),
                                   "speedup": round(many / one, 2), "games": speed_games},
               "rollouts": rstats, "quick": args.quick, "k": args.k,
               "expert_games": cfg.alfworld_task.expert_games, "rollout_games": n_roll,
               "eval_games": cfg.alfworld_task.eval_games or "all", "bc_epochs": cfg.agent_bc.epochs,
               "cpu_count": os.cpu_count(), "wall_s": round(time.perf_counter() - t_start, 1),
               "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    default = ROOT / "benchmarks" / "results" / "alfworld_agent.json"
    out = Path(args.out) if args.out else (Path("/tmp/alfworld_agent_quick.json") if args.quick else default)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"{'method':<16} {'unseen':>7} {'seen':>7} {'env_steps':>10}")
    for name in METHODS:
        r = results[name]
        print(f"{name:<16} {r['unseen']:>7.3f} {r['seen']:>7.3f} {r['env_steps']:>10}")
    print(f"rollout env steps/s: 1 actor {one:.1f}, {len(job.workers)} actors {many:.1f} ({many / one:.2f}x); wrote {out}")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
