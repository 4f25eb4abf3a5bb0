"""ONI on RLlib: env throughput with labelling on vs off, labeller latency, and returns on a sparse MiniHack task.

    python benchmarks/oni.py                  # full: 3 seeds x 3 reward variants (~15 min on 2 cores)
    python benchmarks/oni.py --quick          # one seed, short runs; writes a temp file unless --out

What runs (configs/oni_minihack.yaml's agent, RLlib PPO on the new API stack, everything on CPU):
1. Speed: two algorithms built side by side in one Ray cluster, `off` (extrinsic-only PPO: no
   labeller, no label store) and `on` (ONI-Retrieval: the learner connector rewrites rewards,
   the labeller actor labels new messages through the Generator path with the distilled tiny
   LM); their `Algorithm.train` calls alternate, so both see the same machine load. Env steps/s
   = env steps sampled / wall time of the train calls (sampling + learning), after one warm-up call.
   On this CPU machine the labeller competes with the agent for the same 2 cores; with a GPU
   labeller (vLLM) or a remote endpoint it would not.
2. Labeller latency: of the messages first seen at least 10 s before the end of the `on` run,
   the share labelled within 10 s of first sight (`LabelStore.share_labelled_within`).
3. Returns: for each seed, PPO with `extrinsic` (c_ext * clipped env reward only),
   `oni_retrieval` and `oni_classification` rewards for the same env-step budget; the score is
   the env's own episode return averaged over the last 100 episodes (RLlib's smoothed
   `episode_return_mean`), mean and standard error over seeds.

The labeller is the tiny LM distilled from the heuristic annotator (rl/oni_distill.py), trained
once per benchmark run; its verdicts are our rule list's, not a real LLM's.
Writes benchmarks/results/oni.json: `steps_per_s_on`, `steps_per_s_off`, `label_coverage_10s`,
`task`, `returns` {extrinsic, oni_retrieval, oni_classification: {"mean", "se", "seeds"}} and details.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "oni.json"
VARIANTS = {"extrinsic": "none", "oni_retrieval": "retrieval", "oni_classification": "classification"}


def _job(cfg, kind: str, seed: int, tmp: Path):
    """An ONIJob for reward `kind` (its run directory only names its actors)."""
    from launch.oni_job import ONIJob
    from launch.run_dir import RunDir
    oni = dataclasses.replace(cfg.oni, reward=dataclasses.replace(cfg.oni.reward, kind=kind))
    run = RunDir(tmp / f"{kind}-{seed}-{time.monotonic_ns()}")
    return ONIJob(dataclasses.replace(cfg, oni=oni, seed=seed), run, quiet=True)


def _stop(job, algo) -> None:
    import ray
    algo.stop()
    job.stop_actors()
    for key in ("store", "labeller", "classifier"):
        if key in job.actors:
            ray.kill(job.actors[key])


def measure_speed(cfg, labeller: str, calls: int, tmp: Path) -> dict:
    """Alternate train() calls of an ONI-off and an ONI-on algorithm; env steps/s of each."""
    jobs = {"off": _job(cfg, "none", 0, tmp), "on": _job(cfg, "retrieval", 0, tmp)}
    algos, steps, secs, last = {}, {"off": 0, "on": 0}, {"off": 0.0, "on": 0.0}, {"off": 0, "on": 0}
    per_call: dict[str, list[float]] = {"off": [], "on": []}
    for name, job in jobs.items():
        job.start_actors(labeller, {})
        algos[name] = job.build_algo(0)
    for call in range(calls + 1):
        for name in ("off", "on"):
            t0 = time.perf_counter()
            r = algos[name].train()
            dt = time.perf_counter() - t0
            total = int(r["env_runners"]["num_env_steps_sampled_lifetime"])
            if call > 0:   # the first call warms up (module build, env start)
                steps[name] += total - last[name]
                secs[name] += dt
                per_call[name].append((total - last[name]) / dt)
            last[name] = total
    store, lab = jobs["on"].actor_stats()
    import ray
    coverage = ray.get(jobs["on"].actors["store"].stats.remote())["labelled_within_10s"]
    out = {f"steps_per_s_{n}": steps[n] / secs[n] for n in ("on", "off")}
    out.update(env_steps_per_variant=steps["on"], label_coverage_10s=coverage, store=store, labeller=lab,
               per_call_steps_per_s=per_call,
               median_ratio=statistics.median(per_call["on"]) / statistics.median(per_call["off"]),
               rewrite_us_per_transition=r.get("learners", {}).get("oni", {}).get("rewrite_us_per_transition"))
    for name in ("off", "on"):
        _stop(jobs[name], algos[name])
    return out


def train_variant(cfg, kind: str, seed: int, labeller: str, budget: int, tmp: Path) -> dict:
    """Train one reward variant for `budget` env steps; final smoothed extrinsic return and a curve."""
    job = _job(cfg, kind, seed, tmp)
    job.start_actors(labeller, {})
    algo = job.build_algo(0)
    curve, t0 = [], time.perf_counter()
    try:
        steps = 0
        while steps < budget:
            r = algo.train()
            er = r["env_runners"]
            steps = int(er["num_env_steps_sampled_lifetime"])
            curve.append((steps, float(er.get("episode_return_mean", float("nan")))))
        store, _ = job.actor_stats()
        oni = r.get("learners", {}).get("oni", {})
        return {"final_return": curve[-1][1], "episodes": int(er.get("num_episodes_lifetime", 0)),
                "env_steps": steps, "wall_s": round(time.perf_counter() - t0, 1), "curve": curve,
                "labels": store["labels"], "labels_positive": store["positive"],
                "label_coverage": oni.get("label_coverage", 0.0),
                "intrinsic_return": oni.get("intrinsic_return_mean", 0.0)}
    finally:
        _stop(job, algo)


def _mean_se(xs: list[float]) -> tuple[float, float]:
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one seed, short runs (a few minutes)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds for the return comparison (default 3; quick 1)")
    ap.add_argument("--budget", type=int, default=None, help="env steps per return run (default 30720; quick 6144)")
    ap.add_argument("--speed-calls", type=int, default=None, help="measured train() calls per speed variant")
    ap.add_argument("--out", help=f"result JSON (default {RESULTS}; --quick: a temp file)")
    ap.add_argument("overrides", nargs="*", help="config overrides for configs/oni_minihack.yaml, key=value")
    args = ap.parse_args(argv)
    from launch.seeding import pin_threads
    pin_threads()
    from launch.config import load_config
    from launch.ray_setup import init_ray
    from rl.oni_distill import DistillConfig, distill_labeller
    seeds = args.seeds or (1 if args.quick else 3)
    budget = args.budget or (6144 if args.quick else 30720)
    calls = args.speed_calls or (3 if args.quick else 8)
    cfg = load_config(ROOT / "configs" / "oni_minihack.yaml", list(args.overrides))
    out = Path(args.out) if args.out else (Path(tempfile.gettempdir()) / "oni_quick.json" if args.quick else RESULTS)
    tmp = Path(tempfile.mkdtemp(prefix="oni_bench_"))
    t_start = time.perf_counter()
    from launch.oni_job import env_messages
    dcfg = DistillConfig(steps=60 if args.quick else 200)
    t0 = time.perf_counter()
    dinfo = distill_labeller(tmp / "labeller", env_messages(cfg.oni.env.task, 3000), cfg=dcfg)
    print(f"distilled the tiny labeller in {time.perf_counter() - t0:.0f} s ({dinfo['examples']} examples)", flush=True)
    ray = init_ray(cfg.ray)
    try:
        speed = measure_speed(cfg, str(tmp / "labeller"), calls, tmp)
        print(f"env steps/s: ONI on {speed['steps_per_s_on']:.0f}, off {speed['steps_per_s_off']:.0f} "
              f"(ratio {speed['steps_per_s_on'] / speed['steps_per_s_off']:.2f}); labelled within 10 s: "
              f"{speed['label_coverage_10s']:.2f}", flush=True)
        runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
        for seed in range(seeds):
            for name, kind in VARIANTS.items():
                res = train_variant(cfg, kind, seed, str(tmp / "labeller"), budget, tmp)
                runs[name].append(res)
                print(f"seed {seed} {name:<19} return {res['final_return']:7.3f}  ({res['env_steps']} steps, "
                      f"{res['wall_s']} s, labels {res['labels']} (+{res['labels_positive']}))", flush=True)
    finally:
        ray.shutdown()
    returns = {}
    for name, rs in runs.items():
        m, se = _mean_se([r["final_return"] for r in rs])
        returns[name] = {"mean": m, "se": se, "seeds": len(rs), "per_seed": [r["final_return"] for r in rs]}
    payload = {"quick": args.quick, "task": cfg.oni.env.task,
               "steps_per_s_on": speed["steps_per_s_on"], "steps_per_s_off": speed["steps_per_s_off"],
               "on_off_ratio": speed["steps_per_s_on"] / speed["steps_per_s_off"],
               "label_coverage_10s": speed["label_coverage_10s"], "returns": returns,
               "budget_env_steps": budget, "speed": speed, "runs": runs, "distill": dinfo,
               "ppo": dataclasses.asdict(cfg.oni.ppo), "reward": dataclasses.asdict(cfg.oni.reward),
               "labeller": "tiny LM distilled from rl.oni_labels.heuristic_label (hf backend, CPU)",
               "machine": platform.platform(), "cpu_count": os.cpu_count(),
               "wall_s": round(time.perf_counter() - t_start, 1), "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\n{'variant':<20} {'return mean':>12} {'se':>8} {'seeds':>6}   ({cfg.oni.env.task}, {budget} env steps)")
    for name, r in returns.items():
        print(f"{name:<20} {r['mean']:>12.3f} {r['se']:>8.3f} {r['seeds']:>6}")
    print(f"env steps/s on {payload['steps_per_s_on']:.0f} / off {payload['steps_per_s_off']:.0f} "
          f"= {payload['on_off_ratio']:.2f} (target >= 0.9); labelled within 10 s {payload['label_coverage_10s']:.2f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
