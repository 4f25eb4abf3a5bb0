"""Step-level preference pairs from search trees (MCTS-DPO, arXiv 2405.00451; algorithms.md 3.4, 8.8).

Walk the committed path from the question. At every node on it with two or more children, the
children are sibling steps after the same prefix (the committed steps so far, shared by both
sides). Each candidate is the child's step followed by its *forced continuation*: while a node
has exactly one child, that child's step is appended (the code's `post_tree_construct`). Then

    chosen   = the sibling with the highest Q (ties: more visits, then the earlier slot);
    rejected = the sibling with the lowest Q (paper, `RejectedChoice.WORST`; ties: fewer visits,
               then the later slot), or a uniformly random other sibling (the code's default
               `--choose_random`, `RejectedChoice.RANDOM`);
    weight   = eps = N_l / (max(1, N_w) + N_l), capped at 0.5 (label smoothing of the
               conservative DPO loss; the code's `calculate_preference_confidence`).

Pairs whose Q values are not separated by more than `min_q_gap` are skipped (the code keeps
ties; a tie carries no preference). At most `max_pairs_per_problem` pairs are kept, shallowest
first (the code's 8). Q and N are read from the tree as the search left it: the committed
child's statistics include the simulations run below it after it was committed (the code
snapshots them at commit time), i.e. they carry more information, not less.

The records are `reasoner.records.StepPair`s; write them with `reasoner.records.write_records`
(`.parquet` or `.jsonl`) for the step-DPO learner.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

from envs.base import Problem
from reasoner.records import StepPair
from reasoner.steps import join_steps
from search.tree import Tree

__all__ = ["RejectedChoice", "PairConfig", "extract_pairs", "pairs_from_result", "continuation",
           "label_smoothing"]


class RejectedChoice(str, Enum):
    """Which sibling becomes the rejected step."""
    WORST = "worst"
    """The lowest-Q sibling (the paper)."""
    RANDOM = "random"
    """A uniformly random sibling other than the chosen one (the code's default)."""


@dataclass
class PairConfig:
    """Pair extraction (the `pairs` block of a recipe)."""
    rejected: RejectedChoice = RejectedChoice.WORST
    """worst (paper) or random (MCTS-DPO code default)."""
    max_pairs_per_problem: int = 8
    """Keep at most this many pairs per tree, shallowest first."""
    min_q_gap: float = 0.0
    """Skip a pair unless Q(chosen) - Q(rejected) > this."""
    seed: int = 0
    """Seed of the random rejected choice (combined with the problem id)."""

    def __post_init__(self) -> None:
        self.rejected = RejectedChoice(self.rejected)
        if self.max_pairs_per_problem < 1:
            raise ValueError("pairs.max_pairs_per_problem must be >= 1")
        if self.min_q_gap < 0:
            raise ValueError("pairs.min_q_gap must be >= 0")


def label_smoothing(n_chosen: int, n_rejected: int) -> float:
    """eps = N_l / (max(1, N_w) + N_l), capped at 0.5."""
    return min(n_rejected / (max(1, n_chosen) + n_rejected), 0.5)


def continuation(tree: Tree, b: int, node: int) -> str:
    """The step into `node` plus the steps of its forced (single-child) continuation."""
    steps = [tree.step_text[b][node]]
    while tree.num_children[b, node] == 1:
        node = int(tree.children[b, node, 0])
        steps.append(tree.step_text[b][node])
    return join_steps(steps)


def _pick(tree: Tree, b: int, kids: list[int], cfg: PairConfig, rng: random.Random) -> tuple[int, int]:
    """(chosen, rejected) among sibling node ids."""
    q, n = tree.q[b], tree.visits[b]
    chosen = max(kids, key=lambda k: (q[k], n[k], -kids.index(k)))
    others = [k for k in kids if k != chosen]
    if cfg.rejected == RejectedChoice.RANDOM:
        return chosen, others[rng.randrange(len(others))]
    return chosen, min(others, key=lambda k: (q[k], n[k], -kids.index(k)))


def extract_pairs(tree: Tree, b: int, path: Sequence[int], *, prompt: str, problem_id: str,
                  cfg: PairConfig | None = None, policy_version: int = 0) -> list[StepPair]:
    """Preference pairs along one committed path of tree `b`.

    Args:
        tree: the search trees.
        b: which tree.
        path: committed node ids from the question (`Tree.ROOT`) down.
        prompt: the rendered prompt the policy saw.
        problem_id: recorded in every pair.
        cfg: extraction settings.
        policy_version: the policy that grew the tree.

    Returns:
        StepPairs, shallowest first.
    """
    cfg = cfg or PairConfig()
    rng = random.Random(f"{cfg.seed}/{problem_id}")
    pairs: list[StepPair] = []
    for i, node in enumerate(path[:-1]):
        kids = tree.child_ids(b, node)
        if len(kids) < 2:
            continue
        chosen, rejected = _pick(tree, b, kids, cfg, rng)
        q_w, q_l = float(tree.q[b, chosen]), float(tree.q[b, rejected])
        text_w, text_l = continuation(tree, b, chosen), continuation(tree, b, rejected)
        if q_w - q_l <= cfg.min_q_gap or not text_w or not text_l or text_w == text_l:
            continue
        n_w, n_l = int(tree.visits[b, chosen]), int(tree.visits[b, rejected])
        pairs.append(StepPair(problem_id=problem_id, policy_version=policy_version, depth=i, prompt=prompt,
                              prefix=join_steps([tree.step_text[b][n] for n in path[1:i + 1]]),
                              chosen=text_w, rejected=text_l, q_chosen=q_w, q_rejected=q_l,
                              n_chosen=n_w, n_rejected=n_l, weight=label_smoothing(n_w, n_l)))
        if len(pairs) == cfg.max_pairs_per_problem:
            break
    return pairs


def pairs_from_result(result, prompts: Sequence[str], problems: Sequence[Problem], cfg: PairConfig | None = None,
                      *, policy_version: int = 0, keep: Sequence[bool] | None = None) -> list[StepPair]:
    """All pairs of a `search.mcts.MCTSResult` (one search call over `problems`).

    Args:
        result: the MCTS result (its tree and committed paths).
        prompts, problems: [B] what was searched, in the same order.
        cfg: extraction settings.
        policy_version: the policy that grew the trees.
        keep: [B] optional filter, e.g. "the committed answer is correct" (the code's --filter).
    """
    out: list[StepPair] = []
    for b, (prompt, problem) in enumerate(zip(prompts, problems)):
        if keep is not None and not keep[b]:
            continue
        out.extend(extract_pairs(result.tree, b, result.committed[b], prompt=prompt, problem_id=problem.id,
                                 cfg=cfg, policy_version=policy_version))
    return out
