"""Unpaired, outcome-labelled trajectories harvested from MCTS trees (for OREO).

Every terminal node of a search tree is a complete attempt with a checkable outcome, so an MCTS
tree is also a source of unpaired labelled trajectories, not only of step pairs
(algorithms.md section 6, "natural composition points"). This module walks each tree's terminal
nodes, rebuilds their step sequences from the parent chain, grades them (R in {0, 1}, the
system-wide reward), drops duplicates, and keeps a balanced subset per problem as OREO's 7B
recipe does (algorithms.md 2.5: at most k positives and k negatives, #pos <= #neg, but at least
one positive when any exists).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from envs.base import Problem
from reasoner.records import Trajectory
from search.tree import Tree

__all__ = ["TrajectoryConfig", "terminal_paths", "trajectories_from_result"]


@dataclass
class TrajectoryConfig:
    """Which tree leaves become OREO trajectories (the `trajectories` block of a recipe)."""
    max_positive: int = 4
    """Correct trajectories kept per problem, at most."""
    max_negative: int = 4
    """Incorrect trajectories kept per problem, at most."""
    balance: bool = True
    """Keep #positive <= #negative (but at least one positive when any exists), as OREO's 7B data."""

    def __post_init__(self) -> None:
        if self.max_positive < 0 or self.max_negative < 0:
            raise ValueError("trajectories.max_positive and max_negative must be >= 0")


def terminal_paths(tree: Tree, b: int) -> list[list[int]]:
    """Node ids from the question to every terminal node of tree `b` (question first), in id order."""
    paths = []
    for node in range(1, int(tree.num_nodes[b])):
        if not tree.is_terminal[b, node]:
            continue
        path = [node]
        while tree.parent[b, path[-1]] != Tree.NO_PARENT:
            path.append(int(tree.parent[b, path[-1]]))
        paths.append(path[::-1])
    return paths


def _select(pos: list[Trajectory], neg: list[Trajectory], cfg: TrajectoryConfig) -> list[Trajectory]:
    pos, neg = pos[:cfg.max_positive], neg[:cfg.max_negative]
    if cfg.balance and len(pos) > len(neg):
        pos = pos[:max(1, len(neg))]
    return pos + neg


def trajectories_from_result(result, prompts: Sequence[str], problems: Sequence[Problem],
                             cfg: TrajectoryConfig | None = None, *, policy_version: int = 0,
                             grader: Callable[[str, str], bool] | None = None) -> list[Trajectory]:
    """Graded, de-duplicated trajectories of every tree of a `search.mcts.MCTSResult`.

    Args:
        result: the MCTS result (its `tree`).
        prompts, problems: [B] what was searched, in order.
        cfg: how many to keep per problem.
        policy_version: the policy that grew the trees (written into every record).
        grader: `grade(response, reference) -> bool` (default `envs.grading.grade`).

    Returns:
        Trajectories with `source="mcts"`, reward R in {0, 1}, empty observations.
    """
    cfg = cfg or TrajectoryConfig()
    if grader is None:
        from envs.grading import grade as grader
    tree: Tree = result.tree
    out: list[Trajectory] = []
    for b, (prompt, problem) in enumerate(zip(prompts, problems)):
        seen, pos, neg = set(), [], []
        for path in terminal_paths(tree, b):
            steps = tuple(tree.step_text[b][n] for n in path[1:])
            response = "".join(steps)
            if not steps or response in seen:
                continue
            seen.add(response)
            reward = 1.0 if grader(response, problem.answer) else 0.0
            traj = Trajectory(problem_id=problem.id, policy_version=policy_version, source="mcts", prompt=prompt,
                              steps=steps, observations=("",) * len(steps), reward=reward)
            (pos if reward else neg).append(traj)
        out.extend(_select(pos, neg, cfg))
    return out
