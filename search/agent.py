"""LLM agent rollouts in interactive text environments (ALFWorld, NetHack/MiniHack).

The loop (ReAct, Yao et al. 2023; OREO's ALFWorld agent, algorithms.md sections 2.7 and 2.9):

    reset every env -> prompt_i = fmt.initial_prompt(first observation)
    while some env is live:
        turns  = policy.act(context of every live env)       # ONE batched Generator call
        (step text, action) = fmt.split_turn(turn)           # parse "Action: ..." / a menu name
        results = pool.step(live envs, actions)              # envs stepped in parallel
        record step text and fmt.observation(result)

Invalid actions are handled as the papers do, by the environment: ALFWorld answers "Nothing
happens.", NetHack ignores the action (a no-op); both count it. A turn with no parseable action
is, by default, sent as an empty command (so it is an invalid, counted step); with
`UnparsedAction.END` it ends the episode as a failure instead (OREO's evaluation script).

Every episode becomes a `reasoner.records.Trajectory`: prompt = the initial prompt, steps = the
agent's turns, observations = the text after each turn, reward R = 1 if the env reports the goal
won else 0, optional `step_rewards` = the env reward of every step (NetHack: score deltas).

Policies (`Policy`): `LLMPolicy` (any `Generator`), `ExpertPolicy` (the env's expert, e.g.
ALFWorld's hand-coded one), `RandomPolicy` (a uniformly random admissible action). All go
through the same loop, so the expert's score checks the harness itself.

Pools (`EnvPool`): `envs.interactive.EnvGroup` runs the envs in this process (sequentially or on
a thread pool); `launch.env_actors.RayEnvPool` spreads them over Ray actors with the same API.
"""
from __future__ import annotations

import enum
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from envs.interactive import StepResult, TurnFormat
from reasoner.generation import Generator, SamplingParams
from reasoner.records import Trajectory

__all__ = ["UnparsedAction", "AgentConfig", "Policy", "EnvPool", "LLMPolicy", "ExpertPolicy",
           "RandomPolicy", "Episode", "run_episodes", "summarize_episodes"]


class UnparsedAction(str, enum.Enum):
    """What happens to a turn whose action cannot be parsed."""
    INVALID = "invalid"   # send an empty command: the env answers it as an invalid, counted step
    END = "end"           # end the episode there, as a failure


@dataclass
class AgentConfig:
    """Agent rollouts (the `agent` block of a recipe)."""
    max_tokens: int = 128
    """New tokens per turn, at most."""
    temperature: float = 0.0
    """Sampling temperature of each turn (0 = greedy, as in the ALFWorld evaluations)."""
    top_p: float = 1.0
    """Nucleus mass kept when sampling."""
    unparsed: UnparsedAction = UnparsedAction.INVALID
    """A turn without a parseable action: an invalid step (default) or the end of the episode."""
    step_rewards: bool = False
    """Store every step's env reward in Trajectory.step_rewards (NetHack score deltas)."""
    policy_version: int = 0
    """Written into every Trajectory."""
    source: str = "agent"
    """Trajectory.source label ("agent", "expert", "random", ...)."""

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("agent.max_tokens must be >= 1")
        self.unparsed = UnparsedAction(self.unparsed)


class EnvPool(Protocol):
    """A batch of envs addressed by index (EnvGroup locally, RayEnvPool over actors)."""

    def __len__(self) -> int: ...
    def ids(self) -> list[tuple[str, str]]: ...
    def reset(self, indices: Sequence[int], seeds: Sequence[int | None]) -> list[StepResult]: ...
    def step(self, indices: Sequence[int], actions: Sequence[str]) -> list[StepResult]: ...
    def expert_actions(self, indices: Sequence[int]) -> list[str]: ...
    def episode_stats(self, indices: Sequence[int]) -> list[dict[str, Any]]: ...


class Policy(Protocol):
    """Chooses the next turn of every live env at once."""

    def act(self, contexts: Sequence[str], results: Sequence[StepResult],
            indices: Sequence[int]) -> list[str]:
        """Raw turn texts, one per live env.

        Args:
            contexts: [B] what the model continues (`fmt.context`).
            results: [B] the latest observation of each env.
            indices: [B] the envs' indices in the pool.
        """
        ...


class LLMPolicy:
    """Turns from a `Generator`: one batched `generate` call per round, n = 1 per env."""

    def __init__(self, generator: Generator, fmt: TurnFormat, cfg: AgentConfig):
        self.generator = generator
        self.params = SamplingParams(n=1, max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                                     top_p=cfg.top_p, stop=fmt.stop)

    def act(self, contexts, results, indices) -> list[str]:
        return [c[0].text for c in self.generator.generate(list(contexts), self.params)]


class ExpertPolicy:
    """Turns that take the env's expert action (ALFWorld: the hand-coded expert or walkthrough)."""

    def __init__(self, pool: EnvPool, fmt: TurnFormat):
        self.pool = pool
        self.fmt = fmt

    def act(self, contexts, results, indices) -> list[str]:
        return [self.fmt.turn_for_action(a) for a in self.pool.expert_actions(indices)]


class RandomPolicy:
    """Turns that take a uniformly random action from each env's admissible list."""

    def __init__(self, fmt: TurnFormat, seed: int = 0):
        self.fmt = fmt
        self.rng = random.Random(seed)

    def act(self, contexts, results, indices) -> list[str]:
        turns = []
        for r in results:
            if not r.actions:
                raise ValueError("RandomPolicy needs envs that list their admissible actions")
            turns.append(self.fmt.turn_for_action(self.rng.choice(r.actions)))
        return turns


@dataclass(frozen=True, slots=True)
class Episode:
    """One finished episode: the trajectory the learners read and the env's statistics."""
    trajectory: Trajectory
    stats: dict[str, Any]    # env.episode_stats() + parse_failures


def run_episodes(policy: Policy, pool: EnvPool, fmt: TurnFormat, cfg: AgentConfig, *,
                 seeds: Sequence[int | None] | None = None) -> list[Episode]:
    """Play one episode in every env of `pool` and return them in pool order.

    Args:
        policy: chooses the turns (batched over all live envs each round).
        pool: the envs; each is reset with `seeds[i]` (None: the env's default).
        fmt: the env family's turn format (ReAct for ALFWorld, menu for NetHack).
        cfg: sampling and bookkeeping settings.

    Returns:
        [len(pool)] episodes, in pool order.
    """
    n = len(pool)
    everyone = list(range(n))
    seeds = list(seeds) if seeds is not None else [None] * n
    last = pool.reset(everyone, seeds)
    prompts = [fmt.initial_prompt(r) for r in last]
    steps: list[list[str]] = [[] for _ in everyone]
    obs: list[list[str]] = [[] for _ in everyone]
    rewards: list[list[float]] = [[] for _ in everyone]
    parse_failures = [0] * n
    live = everyone
    while live:
        contexts = [fmt.context(prompts[i], steps[i], obs[i]) for i in live]
        turns = policy.act(contexts, [last[i] for i in live], live)
        if len(turns) != len(live):
            raise ValueError(f"policy returned {len(turns)} turns for {len(live)} live envs")
        to_step, actions = [], []
        for i, turn in zip(live, turns):
            step_text, action = fmt.split_turn(turn)
            steps[i].append(step_text)
            if action is None:
                parse_failures[i] += 1
                if cfg.unparsed == UnparsedAction.END:
                    obs[i].append("")
                    rewards[i].append(0.0)
                    continue
                action = ""
            to_step.append(i)
            actions.append(action)
        for i, r in zip(to_step, pool.step(to_step, actions) if to_step else []):
            obs[i].append(fmt.observation(r))
            rewards[i].append(r.reward)
            last[i] = r
        live = [i for i in to_step if not last[i].done]
    ids = pool.ids()
    episodes = []
    for i, stats in enumerate(pool.episode_stats(everyone)):
        stats = {**stats, "parse_failures": parse_failures[i]}
        traj = Trajectory(problem_id=ids[i][0], policy_version=cfg.policy_version, source=cfg.source,
                          prompt=prompts[i], steps=tuple(steps[i]), observations=tuple(obs[i]),
                          reward=1.0 if stats["won"] else 0.0,
                          step_rewards=tuple(rewards[i]) if cfg.step_rewards else ())
        episodes.append(Episode(traj, stats))
    return episodes


_NUMERIC = ("score", "depth", "max_depth", "turns", "return")


def summarize_episodes(stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Success rate overall and per task type, average steps and invalid actions, and the mean
    and median of the numeric statistics every episode has (NetHack: score, depth, max_depth,
    turns; all envs: return).
    """
    if not stats:
        raise ValueError("no episodes to summarize")
    by_type: dict[str, list[dict]] = defaultdict(list)
    for s in stats:
        by_type[s["task_type"]].append(s)
    out: dict[str, Any] = {
        "episodes": len(stats),
        "success_rate": sum(s["won"] for s in stats) / len(stats),
        "per_type": {t: {"episodes": len(v), "success_rate": sum(s["won"] for s in v) / len(v),
                         "avg_steps": sum(s["steps"] for s in v) / len(v)}
                     for t, v in sorted(by_type.items())},
        "avg_steps": sum(s["steps"] for s in stats) / len(stats),
        "avg_invalid": sum(s["invalid"] for s in stats) / len(stats),
        "avg_parse_failures": sum(s.get("parse_failures", 0) for s in stats) / len(stats),
    }
    for key in _NUMERIC:
        if all(key in s for s in stats):
            values = [float(s[key]) for s in stats]
            out[f"mean_{key}"] = statistics.fmean(values)
            out[f"median_{key}"] = statistics.median(values)
    return out
