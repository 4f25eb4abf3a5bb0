"""Evaluate a trained ONI agent (an RLlib checkpoint from `launch/iterate.py`) on its NetHack/MiniHack task.

    python -m launch.evaluate --task nethack --model runs/oni_minihack/checkpoints/agent_20 --episodes 50

`--model` is an agent checkpoint directory (`RUN/checkpoints/agent_k`: RLlib's algorithm
checkpoint plus `agent_env.json`, the task it was trained on). The agent's RLModule is loaded
from `learner_group/learner/rl_module/default_policy` and plays `--episodes` games seeded
`seed, seed+1, ...`, greedily (argmax of its logits) unless `--sample`. Reported: mean/median
in-game score (NLE bottom line), episode return (the env's own reward), steps, and the success
rate (NLE's TASK_SUCCESSFUL end status: MiniHack goals, Staircase/Oracle tasks).
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

__all__ = ["is_agent_checkpoint", "load_agent", "play_episodes", "run"]

_MODULE = Path("learner_group") / "learner" / "rl_module" / "default_policy"
_BL_SCORE = 9
_TASK_SUCCESSFUL = 2


def is_agent_checkpoint(path: str | Path) -> bool:
    return (Path(path) / "agent_env.json").exists()


def load_agent(path: str | Path):
    """(RLModule, AgentEnvConfig) of an agent checkpoint directory."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    from envs.nethack import AgentEnvConfig
    p = Path(path)
    if not is_agent_checkpoint(p) or not (p / _MODULE).exists():
        raise ValueError(f"{p} is not an ONI agent checkpoint (no agent_env.json or {_MODULE})")
    return RLModule.from_checkpoint(str(p / _MODULE)), AgentEnvConfig(**json.loads((p / "agent_env.json").read_text()))


def play_episodes(module, env_cfg, episodes: int, seed: int = 0, *, sample: bool = False) -> list[dict]:
    """Play `episodes` games; returns per-episode {"return", "steps", "score", "won"}."""
    import numpy as np
    import torch

    from envs.nethack_rl import make_agent_env
    from ray.rllib.core.columns import Columns
    env = make_agent_env(env_cfg)
    rng = torch.Generator().manual_seed(seed)
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        ret, steps, score, status, done = 0.0, 0, 0, 0, False
        while not done:
            batch = {Columns.OBS: {key: torch.from_numpy(np.asarray(v)[None]) for key, v in obs.items()}}
            with torch.no_grad():
                logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS][0]
            action = (torch.multinomial(torch.softmax(logits, -1), 1, generator=rng).item() if sample
                      else int(logits.argmax()))
            obs, r, term, trunc, info = env.step(action)
            ret, steps, done = ret + float(r), steps + 1, term or trunc
            score = max(score, int(obs["blstats"][_BL_SCORE]))
            status = info.get("end_status", status)
        out.append({"return": ret, "steps": steps, "score": score, "won": status == _TASK_SUCCESSFUL})
    env.close()
    return out


def run(args) -> dict:
    t0 = time.perf_counter()
    module, env_cfg = load_agent(args.model)
    eps = play_episodes(module, env_cfg, args.episodes, args.seed, sample=getattr(args, "sample", False))
    wall = time.perf_counter() - t0

    def stat(key):
        xs = [e[key] for e in eps]
        return statistics.fmean(xs), statistics.median(xs)

    payload = {"task": "nethack", "env": env_cfg.task, "model": str(args.model), "episodes": len(eps),
               "seed": args.seed, "policy": "sample" if getattr(args, "sample", False) else "greedy"}
    for key in ("score", "return", "steps"):
        payload[f"mean_{key}"], payload[f"median_{key}"] = stat(key)
    payload.update(success_rate=sum(e["won"] for e in eps) / len(eps), wall_seconds=wall, per_episode=eps,
                   finished_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    out = Path(args.out) if args.out else Path("runs/eval") / f"{Path(str(args.model)).name}_nethack.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    print(f"{'env':<28} {'episodes':>8} {'score mean/median':>18} {'return mean/median':>19} "
          f"{'steps mean/median':>18} {'success':>8}")
    print(f"{env_cfg.task:<28} {len(eps):>8} {payload['mean_score']:>9.1f}/{payload['median_score']:<8.1f} "
          f"{payload['mean_return']:>9.2f}/{payload['median_return']:<9.2f} "
          f"{payload['mean_steps']:>9.1f}/{payload['median_steps']:<8.1f} {payload['success_rate']:>8.3f}")
    print(f"wall {wall:.1f} s; wrote {out}", file=sys.stderr)
    return payload
