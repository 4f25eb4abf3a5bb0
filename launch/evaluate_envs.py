"""Evaluate an agent on ALFWorld or NetHack/MiniHack and write the results as JSON.

    python -m launch.evaluate_envs --task alfworld --split valid_unseen --model expert
    python -m launch.evaluate_envs --task alfworld --split valid_unseen --model random --seed 0
    python -m launch.evaluate_envs --task alfworld --model runs/sft --limit 20 --out r.json
    python -m launch.evaluate_envs --task alfworld --model runs/x/policy --value runs/x/value --method best_of_k@5
    python -m launch.evaluate_envs --task nethack --env NetHackScore-v0 --model random --episodes 20
    python -m launch.evaluate_envs --task nethack --env MiniHack-Room-5x5-v0 --model PATH
    python -m launch.evaluate_envs --task nethack --model runs/oni_minihack/checkpoints/agent_20 --episodes 50

`--model` is `expert` (ALFWorld's hand-coded expert), `walkthrough` (the games' stored
solutions), `random` (a uniformly random admissible action) or an HF checkpoint directory
(greedy ReAct turns for ALFWorld, an action menu for NetHack), or for NetHack a trained ONI agent
checkpoint (`RUN/checkpoints/agent_k`; its own task, `launch.evaluate_agent`). All but the ONI
agent run through the same agent
loop (`search.agent.run_episodes`), so the expert's success rate checks the harness.
`--method best_of_k@K` (with `--value`) samples K turns per step and executes the one the critic
values most (`search.agent_best_of_k`; OREO's ALFWorld search, temperature 1 unless given).
A checkpoint that records its prompt (`agent_format.json`, written by the ALFWorld job) is
prompted that way; others get ReAct's instruction and one-shot example.

ALFWorld reads games from `--data-dir` (default `$ALFWORLD_DATA`); reports success rate overall
and for each of the six task types, and average steps (40-step budget). NetHack plays
`--episodes` games seeded `seed, seed+1, ...`; reports mean/median score and depth. The JSON
holds `success_rate`, `per_type` and the rest of the summary; `--records` writes every episode
as a `Trajectory` (jsonl or parquet) for offline training. Envs run `--batch-size` at a time,
stepped on `--threads` threads or over `--ray-actors` Ray actors.
Errors (missing data, bad model path) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = ["main", "run"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m launch.evaluate_envs", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, choices=["alfworld", "nethack"])
    ap.add_argument("--model", required=True, help="expert | walkthrough | random | HF checkpoint dir")
    ap.add_argument("--method", default="greedy", help="greedy | best_of_k@K (needs --value)")
    ap.add_argument("--value", help="value-model directory (best_of_k)")
    ap.add_argument("--split", default="valid_unseen", help="ALFWorld split: valid_unseen, valid_seen, train")
    ap.add_argument("--data-dir", default=None, help="ALFWorld data root (default $ALFWORLD_DATA)")
    ap.add_argument("--env", default="NetHackScore-v0", help="NetHack/MiniHack gymnasium id")
    ap.add_argument("--limit", type=int, default=None, help="ALFWorld: the first N games")
    ap.add_argument("--episodes", type=int, default=10, help="NetHack: episodes (seeds seed..seed+N-1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=None, help="steps per episode (ALFWorld 40, NetHack 1000)")
    ap.add_argument("--goal", default="task", choices=["task", "score", "depth"], help="NetHack success")
    ap.add_argument("--goal-threshold", type=int, default=0, help="NetHack score/depth for success")
    ap.add_argument("--batch-size", type=int, default=16, help="envs in flight at once")
    ap.add_argument("--threads", type=int, default=0, help="step envs on a thread pool of this size")
    ap.add_argument("--ray-actors", type=int, default=0, help="step envs on this many Ray actors")
    ap.add_argument("--max-tokens", type=int, default=128, help="new tokens per agent turn")
    ap.add_argument("--temperature", type=float, default=None,
                    help="sampling temperature of the turns (default 0; best_of_k: 1)")
    ap.add_argument("--device", default="auto", help="torch device for --model PATH")
    ap.add_argument("--max-model-len", type=int, default=4096,
                    help="longest prompt + turn in tokens for --model PATH (a 40-turn ReAct episode needs ~3k)")
    ap.add_argument("--out", help="result JSON path (default runs/eval/<model>_<task>.json)")
    ap.add_argument("--sample", action="store_true", help="ONI agent: sample actions instead of argmax")
    ap.add_argument("--records", help="write every episode as a Trajectory (.jsonl or .parquet)")
    return ap


def _envs_and_format(args):
    """(envs, turn format, seeds) for the task."""
    if args.task == "alfworld":
        from envs.alfworld import AlfworldConfig, AlfworldEnv, ExpertKind, ReActFormat, find_games
        expert = {"expert": ExpertKind.HANDCODED, "walkthrough": ExpertKind.WALKTHROUGH}.get(args.model,
                                                                                          ExpertKind.NONE)
        cfg = AlfworldConfig(data_dir=args.data_dir or os.environ.get("ALFWORLD_DATA", ""), expert=expert,
                             max_steps=args.max_steps or 40)
        games = find_games(cfg.data_dir, args.split, limit=args.limit)
        fmt = ReActFormat()
        if args.model not in ("expert", "walkthrough", "random"):
            from launch.alfworld_data import turn_format_of
            fmt = turn_format_of(args.model)
        return [AlfworldEnv(g, cfg) for g in games], fmt, [args.seed] * len(games)
    from envs.nethack import MenuFormat, NetHackConfig, NetHackEnv
    if args.model in ("expert", "walkthrough"):
        raise ValueError("NetHack has no expert: use --model random or a checkpoint")
    cfg = NetHackConfig(task=args.env, max_steps=args.max_steps or 1000, goal=args.goal,
                        goal_threshold=args.goal_threshold)
    envs = [NetHackEnv(cfg, episode=k) for k in range(args.episodes)]
    return envs, MenuFormat(args.env), [args.seed + k for k in range(args.episodes)]


def _best_of_k(method: str) -> int | None:
    """K of "best_of_k@K" (5 for a bare "best_of_k"), None for "greedy"."""
    from launch.evaluation import EvalMethod, parse_method
    kind, k = parse_method(method)
    if kind == EvalMethod.GREEDY:
        return None
    if kind != EvalMethod.BEST_OF_K:
        raise ValueError(f"interactive tasks support --method greedy or best_of_k@K, not {method!r}")
    return k or 5


def _policy(args, pool, fmt, agent_cfg, generator, value=None):
    from search.agent import ExpertPolicy, LLMPolicy, RandomPolicy
    if args.model in ("expert", "walkthrough"):
        return ExpertPolicy(pool, fmt)
    if args.model == "random":
        return RandomPolicy(fmt, seed=args.seed)
    k = _best_of_k(args.method)
    if k is not None:
        from search.agent_best_of_k import BestOfKPolicy
        temperature = 1.0 if args.temperature is None else args.temperature
        return BestOfKPolicy(generator, value, fmt, agent_cfg, k=k, temperature=temperature)
    return LLMPolicy(generator, fmt, agent_cfg)


def _pool(args, envs):
    if args.ray_actors > 0:
        from launch.env_actors import RayEnvPool
        return RayEnvPool(envs, args.ray_actors)
    from envs.interactive import EnvGroup
    return EnvGroup(envs, num_threads=args.threads)


def _print_table(summary: dict) -> None:
    print(f"{'type':<34} {'n':>5} {'success':>8} {'avg_steps':>10}")
    for t, s in summary["per_type"].items():
        print(f"{t:<34} {s['episodes']:>5} {s['success_rate']:>8.3f} {s['avg_steps']:>10.2f}")
    print(f"{'overall':<34} {summary['episodes']:>5} {summary['success_rate']:>8.3f} {summary['avg_steps']:>10.2f}")
    for key in ("score", "depth", "max_depth"):
        if f"mean_{key}" in summary:
            print(f"{key}: mean {summary[f'mean_{key}']:.2f}  median {summary[f'median_{key}']:.2f}")


def run(args) -> dict:
    """Evaluate and write the JSON; returns the payload."""
    from search.agent import AgentConfig, run_episodes, summarize_episodes
    t0 = time.perf_counter()
    envs, fmt, seeds = _envs_and_format(args)
    source = args.model if args.model in ("expert", "walkthrough", "random") else "agent"
    k = _best_of_k(args.method)
    if k is not None and (source != "agent" or not args.value):
        raise ValueError("--method best_of_k needs a checkpoint --model and a critic --value")
    agent_cfg = AgentConfig(max_tokens=args.max_tokens, temperature=args.temperature or 0.0,
                            step_rewards=args.task == "nethack", source=source)
    generator = value = None
    if k is not None:
        from reasoner.loading import resolve_device
        from reasoner.value_model import ValueModel
        value = ValueModel.from_pretrained(args.value, device=resolve_device(args.device))
    if source == "agent":
        from reasoner.generation import GeneratorConfig
        from reasoner.loading import build_generator
        generator = build_generator(GeneratorConfig(device=args.device, seed=args.seed,
                                                    max_model_len=args.max_model_len), args.model)
    episodes = []
    for start in range(0, len(envs), args.batch_size):
        batch = envs[start:start + args.batch_size]
        pool = _pool(args, batch)
        try:
            episodes += run_episodes(_policy(args, pool, fmt, agent_cfg, generator, value), pool, fmt, agent_cfg,
                                     seeds=seeds[start:start + args.batch_size])
        finally:
            pool.close()
        print(f"[{len(episodes)}/{len(envs)}] success so far "
              f"{sum(e.stats['won'] for e in episodes) / len(episodes):.3f}", file=sys.stderr)
    wall = time.perf_counter() - t0
    summary = summarize_episodes([e.stats for e in episodes])
    total_steps = sum(e.stats["steps"] for e in episodes)
    payload = {"task": args.task, "split": args.split if args.task == "alfworld" else args.env,
               "model": str(args.model), "method": args.method, "seed": args.seed, **summary, "wall_seconds": wall,
               "env_steps": total_steps, "steps_per_second": total_steps / wall,
               "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    if generator is not None:
        st = generator.stats
        payload.update(model_calls=st.calls, generated_tokens=st.generated_tokens, model_seconds=st.seconds)
    tag = "" if args.method == "greedy" else "_" + args.method.replace("@", "_at_")
    out = Path(args.out) if args.out else Path("runs/eval") / f"{Path(str(args.model)).name}_{args.task}{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    if args.records:
        from reasoner.records import write_records
        write_records(args.records, [e.trajectory for e in episodes])
    _print_table(summary)
    print(f"wall {wall:.1f} s, {total_steps} env steps; wrote {out}")
    return payload


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from envs.base import TaskError
    from reasoner.loading import CheckpointError
    if args.ray_actors > 0:
        import ray
        if not ray.is_initialized():
            ray.init(include_dashboard=False)
    try:
        if args.task == "nethack" and Path(args.model).is_dir() and not (Path(args.model) / "config.json").exists():
            from launch.evaluate_agent import run as run_agent
            run_agent(args)
        else:
            run(args)
    except (TaskError, CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
