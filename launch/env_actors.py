"""Ray actor pool for interactive environments (scale-out of `envs.interactive.EnvGroup`).

`EnvGroupActor` is the plain `EnvGroup` made remote (STYLE section 5: library classes stay
plain; only launch/ wraps them). `RayEnvPool` gives the agent loop (`search.agent.run_episodes`)
the same API as a local `EnvGroup`, with the envs sharded over actors so that games that hold
the GIL (TextWorld is pure Python) step in parallel processes.

Envs are shipped to the actors before their first reset (constructors only store arguments, so
they pickle); each actor then builds and owns its games.
"""
from __future__ import annotations

from typing import Any, Sequence

import ray

from envs.interactive import Env, EnvGroup, StepResult

__all__ = ["EnvGroupActor", "RayEnvPool"]

EnvGroupActor = ray.remote(num_cpus=1)(EnvGroup)


class RayEnvPool:
    """`EnvPool` over `num_actors` Ray actors; env i lives on actor i % num_actors.

    Every method takes pool indices. Split: the indices are grouped by actor and each actor gets
    one call with its local indices (all actors run at once). Gather: `ray.get` on all calls,
    then the results are put back in the order of `indices`.
    """

    def __init__(self, envs: Sequence[Env], num_actors: int, *, num_cpus_per_actor: float = 1.0):
        if num_actors < 1:
            raise ValueError("num_actors must be >= 1")
        num_actors = min(num_actors, len(envs))
        shards = [list(envs[a::num_actors]) for a in range(num_actors)]
        self._actors = [EnvGroupActor.options(num_cpus=num_cpus_per_actor).remote(s) for s in shards]
        self._n = len(envs)
        self._where = [(i % num_actors, i // num_actors) for i in range(len(envs))]  # (actor, local)

    def __len__(self) -> int:
        return self._n

    def _scatter(self, method: str, indices: Sequence[int], args: Sequence[Any] | None) -> list[Any]:
        groups: dict[int, list[int]] = {}
        for pos, i in enumerate(indices):
            groups.setdefault(self._where[i][0], []).append(pos)
        calls = {}
        for a, positions in groups.items():
            local = [self._where[indices[p]][1] for p in positions]
            call = getattr(self._actors[a], method)
            calls[a] = call.remote(local) if args is None else call.remote(local, [args[p] for p in positions])
        out: list[Any] = [None] * len(indices)
        for a, res in zip(calls, ray.get(list(calls.values()))):
            for p, r in zip(groups[a], res):
                out[p] = r
        return out

    def ids(self) -> list[tuple[str, str]]:
        per_actor = ray.get([a.ids.remote() for a in self._actors])
        return [per_actor[a][j] for a, j in self._where]

    def reset(self, indices: Sequence[int], seeds: Sequence[int | None]) -> list[StepResult]:
        return self._scatter("reset", indices, seeds)

    def step(self, indices: Sequence[int], actions: Sequence[str]) -> list[StepResult]:
        return self._scatter("step", indices, actions)

    def expert_actions(self, indices: Sequence[int]) -> list[str]:
        return self._scatter("expert_actions", indices, None)

    def episode_stats(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return self._scatter("episode_stats", indices, None)

    def close(self) -> None:
        ray.get([a.close.remote() for a in self._actors])
        for a in self._actors:
            ray.kill(a)
        self._actors = []
