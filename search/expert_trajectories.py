"""Expert trajectories from an environment's own expert, played through the agent loop, cached.

Behaviour cloning (and OREO's SFT stage, algorithms.md 2.5) needs expert episodes in exactly the
multi-turn format the agent later acts in. Here the env's expert (ALFWorld: the walkthrough
stored in each game, `AlfworldConfig.expert = walkthrough`) chooses every turn through
`search.agent.run_episodes` with `ExpertPolicy`, so the observations are the real
environment's text and the records are the same `Trajectory` records the learners read from
rollouts: prompt = `fmt.initial_prompt`, steps = "Action: ..." turns, observations =
"Observation: ..." text, reward 1 iff the game was won.

Playing is slow (ALFWorld: about 1.5 s to load a game and ~17 steps/s in one process), so the
result is cached: `cache_path` (parquet) plus `cache_path.key.json` holding the env ids and the
turn format's settings. A later call with the same envs and format reads the file instead of
playing; any difference plays again and rewrites the cache. Games are played `batch_size` at a
time, in `processes` worker processes (ALFWorld steps are GIL-bound, so threads do not help), and
every finished chunk is cached on its own (`parts_dir/<hash of its key>.parquet`), so an
interrupted run resumes, and a longer game list that starts with the same chunks reuses them.
"""
from __future__ import annotations

import json
import os
import hashlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Sequence

from envs.interactive import Env, EnvGroup, TurnFormat
from reasoner.records import Trajectory, read_records, write_records
from search.agent import AgentConfig, ExpertPolicy, run_episodes

__all__ = ["play_expert", "expert_trajectories", "cache_key"]


def cache_key(envs: Sequence[Env], fmt: TurnFormat, cfg: AgentConfig) -> dict:
    """What a cached file must match: env ids, the turn format's settings and the agent config."""
    settings = {k: v for k, v in sorted(vars(fmt).items()) if isinstance(v, (str, int, float, tuple, list))}
    return {"env_ids": [e.env_id for e in envs], "format": type(fmt).__name__, "format_settings": settings,
            "max_steps": [e.max_steps for e in envs][:1], "source": cfg.source}


def _part_path(parts_dir: Path | None, chunk: Sequence[Env], fmt: TurnFormat, cfg: AgentConfig) -> Path | None:
    """Cache file of one chunk: `<parts_dir>/<sha1 of the chunk's key>.parquet`."""
    if parts_dir is None:
        return None
    digest = hashlib.sha1(json.dumps(cache_key(chunk, fmt, cfg), sort_keys=True).encode()).hexdigest()[:16]
    return parts_dir / f"{digest}.parquet"


def play_expert(envs: Sequence[Env], fmt: TurnFormat, cfg: AgentConfig, *, batch_size: int = 16) -> list[Trajectory]:
    """Play one expert episode per env in this process, `batch_size` envs at a time; closes the envs."""
    out: list[Trajectory] = []
    for start in range(0, len(envs), batch_size):
        pool = EnvGroup(list(envs[start:start + batch_size]))
        try:
            out += [e.trajectory for e in run_episodes(ExpertPolicy(pool, fmt), pool, fmt, cfg)]
        finally:
            pool.close()
    return out


def expert_trajectories(envs: Sequence[Env], fmt: TurnFormat, *, cache_path: str | os.PathLike | None = None,
                        parts_dir: str | os.PathLike | None = None, batch_size: int = 16, processes: int = 1,
                        progress: bool = True) -> list[Trajectory]:
    """Expert trajectories of `envs` (one each, in env order), read from the cache when it matches.

    Args:
        envs: envs whose `expert_action` is configured (not yet reset, so they pickle).
        fmt: the turn format the agent will act in.
        cache_path: parquet file to read/write (None: no cache).
        parts_dir: where finished chunks are cached (default `<cache_path>.parts`; share one
            directory between game lists that start alike).
        batch_size: envs played together in one process.
        processes: worker processes (1 = play here).
        progress: show a progress bar over chunks.

    Returns:
        [len(envs)] trajectories with source "expert".
    """
    cfg = AgentConfig(source="expert")
    key = json.loads(json.dumps(cache_key(envs, fmt, cfg)))
    path = Path(cache_path) if cache_path is not None else None
    key_path = path.with_name(path.name + ".key.json") if path is not None else None
    if path is not None and path.exists() and key_path.exists() and json.loads(key_path.read_text()) == key:
        return read_records(path, Trajectory)
    chunks = [list(envs[i:i + batch_size]) for i in range(0, len(envs), batch_size)]
    if parts_dir is None and path is not None:
        parts_dir = path.with_name(path.name + ".parts")
    parts = [_part_path(Path(parts_dir) if parts_dir else None, c, fmt, cfg) for c in chunks]
    results: list[list[Trajectory] | None] = [read_records(p, Trajectory) if p is not None and p.exists() else None
                                              for p in parts]
    todo = [i for i, r in enumerate(results) if r is None]
    from tqdm.auto import tqdm
    bar = tqdm(total=len(envs), initial=len(envs) - sum(len(chunks[i]) for i in todo), desc="expert trajectories",
               unit="game", disable=not progress)

    def done(i: int, trajs: list[Trajectory]) -> None:
        results[i] = trajs
        if parts[i] is not None:
            write_records(parts[i], trajs)
        bar.update(len(chunks[i]))

    if processes <= 1:
        for i in todo:
            done(i, play_expert(chunks[i], fmt, cfg, batch_size=batch_size))
    else:
        with ProcessPoolExecutor(max_workers=processes) as ex:
            futures = {ex.submit(play_expert, chunks[i], fmt, cfg, batch_size=batch_size): i for i in todo}
            for f in as_completed(futures):
                done(futures[f], f.result())
    bar.close()
    trajs = [t for r in results for t in r]
    if path is not None:
        write_records(path, trajs)
        key_path.write_text(json.dumps(key))
    return trajs
