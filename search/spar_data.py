"""SPaR's training data from judgments and refinement trees (algorithms.md 4.2 steps 4, 6, 7).

- `select_negatives` (step 4): keep prompts where at least one sampled response was judged "No"
  by majority; pick one such response per prompt at random, with its majority critique.
- `actor_pairs` (step 6): a tree whose search ended at a node with v > gate gives the DPO pair
  (chosen = refined response, rejected = the original failing response), as a `StepPair` with
  an empty prefix (response-level pair, no label smoothing).
- `refiner_examples` (step 7): supervised targets for the refiner (RFT),
  (a) refinement demonstrations: [parent's judge prompt, parent's critique, refine request] ->
      the successful node's full refinement output, at most `max_refinements` (4,000);
  (b) critique demonstrations from tree nodes with non-unanimous votes: judge prompt -> majority
      critique, at most `max_critiques_high` (1,500) with 0.5 < v < 1 and `max_critiques_low`
      (1,000) with 0 < v < 0.5;
  (c) judgment demonstrations from the actor-sample judging with split votes: judge prompt ->
      majority critique, at most `max_judgments_no` (500) "No" and `max_judgments_yes` (2,500) "Yes".
  Then deduplicated by prompt (first kept) and shuffled (seeded).
Caps take the first examples in the order given (prompt order), as the released
`process_data.py` does after its own shuffle.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from reasoner.records import StepPair
from search.refine import Judgment, RefineConfig, RefineTree, judge_prompt, refine_prompt

__all__ = ["SparDataConfig", "RefinerExample", "select_negatives", "actor_pairs", "refiner_examples"]


@dataclass
class SparDataConfig:
    """Caps of SPaR's refiner data (the `spar_data` block of a recipe; the paper's numbers)."""
    max_refinements: int = 4000
    """(a) refinement demonstrations."""
    max_critiques_high: int = 1500
    """(b) tree critiques with 0.5 < v < 1."""
    max_critiques_low: int = 1000
    """(b) tree critiques with 0 < v < 0.5."""
    max_judgments_no: int = 500
    """(c) split-vote "No" judgments of actor samples."""
    max_judgments_yes: int = 2500
    """(c) split-vote "Yes" judgments of actor samples."""


@dataclass(frozen=True, slots=True)
class RefinerExample:
    """One supervised example for the refiner: `prompt` -> `target`; kind in refinement|critique|judgment."""
    kind: str
    prompt: str
    target: str
    problem_id: str = ""


def select_negatives(judgments: Sequence[Sequence[Judgment]], rng: random.Random) -> list[int | None]:
    """Per prompt, the index of one response judged "No" by majority (random among them), or None."""
    out = []
    for row in judgments:
        bad = [k for k, j in enumerate(row) if j.label == 0]
        out.append(rng.choice(bad) if bad else None)
    return out


def actor_pairs(trees: Sequence[RefineTree], prompts: Sequence[str], problem_ids: Sequence[str], *,
                policy_version: int, gate: float = 0.5) -> list[StepPair]:
    """DPO pairs (refined > original) from the trees that found a node with value > gate."""
    pairs = []
    for tree, prompt, pid in zip(trees, prompts, problem_ids):
        best = tree.nodes[tree.best]
        if not tree.solved or best.value <= gate or best.response == tree.nodes[0].response:
            continue
        pairs.append(StepPair(problem_id=pid, policy_version=policy_version, depth=0, prompt=prompt, prefix="",
                              chosen=best.response, rejected=tree.nodes[0].response, q_chosen=float(best.value),
                              q_rejected=float(tree.nodes[0].value), n_chosen=0, n_rejected=0, weight=0.0))
    return pairs


def refiner_examples(trees: Sequence[RefineTree], tree_ids: Sequence[str],
                     judged: Sequence[tuple[str, str, Judgment, str]], cfg: SparDataConfig,
                     refine_cfg: RefineConfig, *, seed: int = 0) -> list[RefinerExample]:
    """The refiner's RFT data (a)+(b)+(c) with the caps, deduplicated by prompt and shuffled.

    Args:
        trees: refinement trees, with `tree_ids` their problem ids.
        judged: (instruction, response, judgment, problem id) of every judged actor sample.
    """
    refinements, high, low, no, yes = [], [], [], [], []
    for tree, pid in zip(trees, tree_ids):
        if tree.solved:
            node = tree.nodes[tree.best]
            parent = tree.nodes[node.parent]
            refinements.append(RefinerExample("refinement", refine_prompt(tree.instruction, parent.response,
                                                                          parent.critique, refine_cfg),
                                              node.refinement, pid))
        for node in tree.nodes[1:]:
            j = node.judgment
            if j is None or j.label is None or not node.critique:
                continue
            ex = RefinerExample("critique", judge_prompt(tree.instruction, node.response, refine_cfg), node.critique, pid)
            if 0.5 < j.value < 1.0:
                high.append(ex)
            elif 0.0 < j.value < 0.5:
                low.append(ex)
    for instruction, response, j, pid in judged:
        if j.label is None or j.unanimous or not j.critique:
            continue
        ex = RefinerExample("judgment", judge_prompt(instruction, response, refine_cfg), j.critique, pid)
        (yes if j.label == 1 else no).append(ex)
    chosen = (refinements[:cfg.max_refinements] + high[:cfg.max_critiques_high] + low[:cfg.max_critiques_low]
              + no[:cfg.max_judgments_no] + yes[:cfg.max_judgments_yes])
    seen, out = set(), []
    for ex in chosen:
        if ex.prompt not in seen:
            seen.add(ex.prompt)
            out.append(ex)
    random.Random(seed).shuffle(out)
    return out
