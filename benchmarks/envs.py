"""Environment throughput: steps/s of ALFWorld, NLE and MiniHack, and the agent loop's overhead.

    python benchmarks/envs.py            # about 1-2 minutes on one core
    python benchmarks/envs.py --quick    # about 20 s

Rows (single process, one core):
- alfworld: `AlfworldEnv` with random admissible commands on one real game (TextWorld + ALFWorld
  wrappers; the cost is TextWorld re-deriving the admissible commands after every step), plus
  the time to build and reset a game.
- nle raw / nle env: `NetHackScore-v0` stepped through gymnasium directly, and through
  `NetHackEnv` (message decoding + text rendering + bookkeeping).
- minihack env: `NetHackEnv` on `MiniHack-Room-5x5-v0`.
- harness: `search.agent.run_episodes` with a random policy over 16 envs that cost nothing to
  step, i.e. the loop's own cost per env step (prompt building, parsing, records).

ALFWorld games come from --data-dir, else $ALFWORLD_DATA, else the test games in tests/data.
Writes benchmarks/results/envs.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.results_path import results_path  # noqa: E402

from envs.interactive import Env, EnvGroup, StepResult  # noqa: E402
from search.agent import AgentConfig, RandomPolicy, run_episodes  # noqa: E402


def bench_alfworld(data_dir: str, steps: int) -> dict:
    from envs.alfworld import AlfworldEnv, find_games
    game = find_games(data_dir, "valid_unseen", task_types=("pick_and_place_simple",))[0]
    rng = random.Random(0)
    t0 = time.perf_counter()
    env = AlfworldEnv(game)
    r = env.reset()
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        if r.done:
            r = env.reset()
        r = env.step(rng.choice(r.actions))
    dt = time.perf_counter() - t0
    env.close()
    return {"name": "alfworld (random admissible)", "steps": steps, "seconds": dt,
            "steps_per_s": steps / dt, "init_reset_s": init_s}


def bench_nle_raw(steps: int) -> dict:
    import gymnasium as gym
    import nle  # noqa: F401
    env = gym.make("NetHackScore-v0", observation_keys=("message", "blstats", "tty_chars"))
    env.unwrapped.seed(0, 0, reseed=False)
    env.reset()
    rng = random.Random(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(rng.randrange(env.action_space.n))
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t0
    env.close()
    return {"name": "nle raw gymnasium (NetHackScore-v0)", "steps": steps, "seconds": dt, "steps_per_s": steps / dt}


def bench_nethack_env(task: str, steps: int) -> dict:
    from envs.nethack import NetHackConfig, NetHackEnv
    env = NetHackEnv(NetHackConfig(task=task, max_steps=10**6))
    r = env.reset(seed=0)
    rng = random.Random(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        if r.done:
            r = env.reset(seed=rng.randrange(10**6))
        r = env.step(rng.choice(r.actions))
    dt = time.perf_counter() - t0
    env.close()
    return {"name": f"NetHackEnv text ({task})", "steps": steps, "seconds": dt, "steps_per_s": steps / dt}


class _FreeEnv(Env):
    """Costs nothing to step; ends after `max_steps`."""

    @property
    def env_id(self) -> str:
        return "free"

    def _reset(self, seed):
        return StepResult(text="You are in a room.\n\nYour task is to: wait.", actions=("wait", "look"))

    def _step(self, action):
        return StepResult(text="Nothing happens.", actions=("wait", "look"))


def bench_harness(steps_per_env: int, num_envs: int = 16) -> dict:
    from envs.alfworld import ReActFormat
    fmt = ReActFormat()
    pool = EnvGroup([_FreeEnv(steps_per_env) for _ in range(num_envs)])
    t0 = time.perf_counter()
    run_episodes(RandomPolicy(fmt, seed=0), pool, fmt, AgentConfig())
    dt = time.perf_counter() - t0
    steps = steps_per_env * num_envs
    return {"name": f"agent harness overhead ({num_envs} envs, ReAct)", "steps": steps, "seconds": dt,
            "steps_per_s": steps / dt, "us_per_step": 1e6 * dt / steps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="JSON output (default: results/envs.json; --quick: a temp file)")
    args = ap.parse_args(argv)
    k = 1 if args.quick else 5
    data_dir = args.data_dir or os.environ.get("ALFWORLD_DATA") or str(ROOT / "tests" / "data" / "alfworld")
    rows = [bench_alfworld(data_dir, 40 * k), bench_nle_raw(4000 * k),
            bench_nethack_env("NetHackScore-v0", 2000 * k), bench_nethack_env("MiniHack-Room-5x5-v0", 2000 * k),
            bench_harness(40 * k)]
    print(f"{'benchmark':<46} {'steps':>7} {'seconds':>8} {'steps/s':>10}")
    for r in rows:
        print(f"{r['name']:<46} {r['steps']:>7} {r['seconds']:>8.2f} {r['steps_per_s']:>10.1f}")
    print(f"alfworld build+reset of one game: {rows[0]['init_reset_s']:.2f} s; "
          f"harness overhead: {rows[-1]['us_per_step']:.0f} us per env step")
    out = results_path("envs", quick=args.quick, out=args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"quick": args.quick, "machine": platform.platform(), "python": platform.python_version(),
                               "cpu_count": os.cpu_count(), "rows": rows,
                               "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
