"""SPaR's judge and tree-search refinement, batched across prompts (algorithms.md 4.2-4.3).

Paper: Cheng et al., "SPaR: Self-Play with Tree-Search Refinement to Improve Instruction-Following
in Large Language Models" (arXiv 2412.11605); code: its `src/ToT/{bfs,dfs}.py`, `src/judge.py`.
One model (the refiner) judges and refines; everything goes through the `Generator` contract, so
the HF, vLLM and OpenAI-compatible backends all run it.

Judging (4.2 step 3, 4.3 "Evaluation"): the refiner answers the judge prompt `judge_samples`
(5) times at temperature 0.7; each verdict is parsed after the `Final Judgement:` marker, where
the first of Yes/No wins and anything else is -1 (ignored). The value of a response is
`v = #Yes / (#Yes + #No)` over parsable verdicts; a tie (including no parsable verdict) is judged
again, up to `tie_requeries` (3) more times; one critique that agrees with the majority is kept.
Judgments are cached by exact (instruction, response) text.

Refinement tree (4.3): the root is a failing response with its critique, value 0. Expanding a
node asks the refiner, with the judge prompt of the node, its critique and a refine request, for
`branch` (3) samples of "reflection, then the refined response between delimiters"; a sample
without a parsable span is redrawn up to `refine_retries` (3) times. Every new child is judged.
- BFS (default): for depth 1..`depth` (3), expand every frontier node; rank the new children by
  v; stop as soon as the best has v > `gate` (0.5); else the frontier becomes the `keep` (2)
  best (greedy). Worst case 3 + 6 + 6 = 15 refinements.
- DFS: expand the current node; return if its best child has v > gate; else recurse into its
  `keep` best children in value order, down to depth `depth`.
- No node passes: the result is the highest-value node (the driver emits no pair then).
- `budget` caps nodes per tree (the code's 1,000 is effectively unlimited).

Batching (as MCTS does): every round collects all trees' pending expansions into ONE
`generate` call, and all new children's judgments into ONE call (plus one per tie re-query).
DFS trees advance one expansion per round, in lock-step across prompts.

Differs, and why: prompts are plain text (one string: judge prompt + critique + refine request,
`RefineConfig`'s formats) instead of a 3-turn chat, so the tiny word-level models can read them;
a chat checkpoint can be given chat-formatted templates through the same config.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Sequence

from reasoner.generation import FinishReason, Generator, SamplingParams

__all__ = ["SearchMode", "RefineConfig", "Judgment", "RefineNode", "RefineTree", "parse_verdict",
           "parse_refinement", "majority", "Judge", "RefinementSearch", "judge_prompt", "refine_prompt",
           "refine_responses"]


class SearchMode(str, enum.Enum):
    BFS = "bfs"
    DFS = "dfs"


@dataclass
class RefineConfig:
    """SPaR judge and refinement-tree settings (the `refine` block of a recipe); defaults from the paper's code."""
    mode: SearchMode = SearchMode.BFS
    """bfs (the scripts' default) or dfs."""
    depth: int = 3
    """Deepest refinement level."""
    branch: int = 3
    """Refinements sampled per expanded node."""
    keep: int = 2
    """Children kept (BFS frontier) or recursed into (DFS), best value first."""
    gate: float = 0.5
    """A node passes when its value is strictly above this."""
    budget: int = 1000
    """Nodes per tree, at most (root included)."""
    judge_samples: int = 5
    """Judge verdicts per response (majority vote)."""
    tie_requeries: int = 3
    """Re-judge a tied response up to this many more times."""
    judge_temperature: float = 0.7
    """Sampling temperature of the judge."""
    refine_temperature: float = 0.7
    """Sampling temperature of refinements."""
    top_p: float = 1.0
    """Nucleus mass of judge and refine sampling."""
    judge_max_tokens: int = 2048
    """New tokens per judgment."""
    refine_max_tokens: int = 3072
    """New tokens per refinement."""
    refine_retries: int = 3
    """Redraws of a refinement whose delimited span cannot be parsed."""
    verdict_marker: str = "Final Judgement:"
    """The verdict is read after the last occurrence of this marker."""
    answer_open: str = "[ANSWER]"
    """Opening delimiter of the refined response."""
    answer_close: str = "[/ANSWER]"
    """Closing delimiter of the refined response (also the refinement's stop string)."""
    judge_format: str = ("Judge the response.\nInstruction: {instruction}\nResponse: {response}\n"
                         "Check each constraint, then give a final judgement.\n")
    """Judge prompt; must contain {instruction} and {response}."""
    refine_request: str = "\nRefine the response so that it meets every constraint.\n"
    """Appended after the judge prompt and the critique to ask for a refinement."""
    seed: int = 0
    """Base seed of the sampling calls."""

    def __post_init__(self) -> None:
        if self.depth < 1 or self.branch < 1 or self.keep < 1 or self.budget < 2:
            raise ValueError("refine: depth, branch, keep must be >= 1 and budget >= 2")
        if self.judge_samples < 1 or self.tie_requeries < 0 or self.refine_retries < 0:
            raise ValueError("refine: judge_samples >= 1, tie_requeries >= 0, refine_retries >= 0")
        if not 0.0 <= self.gate < 1.0:
            raise ValueError("refine: gate must be in [0, 1)")
        if "{instruction}" not in self.judge_format or "{response}" not in self.judge_format:
            raise ValueError("refine.judge_format must contain {instruction} and {response}")


# ---------------------------------------------------------------------- prompts and parsing
def judge_prompt(instruction: str, response: str, cfg: RefineConfig) -> str:
    """The judge prompt for one response."""
    return cfg.judge_format.replace("{instruction}", instruction).replace("{response}", response)


def refine_prompt(instruction: str, response: str, critique: str, cfg: RefineConfig) -> str:
    """Judge prompt of the node, its critique, and the refine request (one string)."""
    return judge_prompt(instruction, response, cfg) + critique + cfg.refine_request


_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def parse_verdict(text: str, marker: str = "Final Judgement:") -> int:
    """1 (Yes), 0 (No) or -1 (unparsable) from the text after the last `marker`; first of Yes/No wins."""
    at = text.rfind(marker)
    if at < 0:
        return -1
    m = _YES_NO.search(text[at + len(marker):])
    if m is None:
        return -1
    return 1 if m.group(1).lower() == "yes" else 0


def parse_refinement(text: str, cfg: RefineConfig) -> str | None:
    """The refined response between the delimiters (newlines next to them stripped), or None."""
    start = text.find(cfg.answer_open)
    if start < 0:
        return None
    end = text.find(cfg.answer_close, start + len(cfg.answer_open))
    if end < 0:
        return None
    span = text[start + len(cfg.answer_open):end].strip("\n")
    return span if span.strip() else None


def majority(verdicts: Sequence[int]) -> tuple[int | None, float | None]:
    """(majority label or None on a tie / nothing parsable, value #Yes / (#Yes + #No) or None)."""
    yes, no = sum(v == 1 for v in verdicts), sum(v == 0 for v in verdicts)
    if yes + no == 0:
        return None, None
    return (1 if yes > no else 0 if no > yes else None), yes / (yes + no)


# ---------------------------------------------------------------------- the judge
@dataclass(frozen=True)
class Judgment:
    """The refiner's judgment of one response."""
    verdicts: tuple[int, ...]        # every sampled verdict (1, 0, -1), re-queries included
    critiques: tuple[str, ...]       # the sampled judge outputs, aligned with verdicts
    label: int | None                # majority (1 pass, 0 fail), None on a tie / nothing parsable
    value: float                     # #Yes / (#Yes + #No); 0 when nothing parsable
    critique: str                    # one critique agreeing with the majority ("" if none)

    @property
    def unanimous(self) -> bool:
        return self.value in (0.0, 1.0)


class Judge:
    """Samples judgments in batches and caches them by exact (instruction, response)."""

    def __init__(self, generator: Generator, cfg: RefineConfig):
        self.generator, self.cfg = generator, cfg
        self.cache: dict[tuple[str, str], Judgment] = {}
        self.cache_hits = 0
        self.calls = 0

    def _sample(self, items: list[tuple[str, str]], round_: int) -> list[list[tuple[int, str]]]:
        cfg = self.cfg
        params = SamplingParams(n=cfg.judge_samples, max_tokens=cfg.judge_max_tokens, temperature=cfg.judge_temperature,
                                top_p=cfg.top_p, seed=cfg.seed + 7919 * self.calls + round_)
        self.calls += 1
        outs = self.generator.generate([judge_prompt(i, r, cfg) for i, r in items], params)
        return [[(parse_verdict(c.text, cfg.verdict_marker), c.text) for c in row] for row in outs]

    def judge(self, items: Sequence[tuple[str, str]]) -> list[Judgment]:
        """Judgments of (instruction, response) items: one generate call, plus one per tie re-query round."""
        todo = []
        for it in dict.fromkeys(items):
            if it in self.cache:
                self.cache_hits += 1
            else:
                todo.append(it)
        samples: dict[tuple[str, str], list[tuple[int, str]]] = {it: [] for it in todo}
        pending = todo
        for round_ in range(self.cfg.tie_requeries + 1):
            if not pending:
                break
            for it, got in zip(pending, self._sample(pending, round_)):
                samples[it].extend(got)
            pending = [it for it in pending if majority([v for v, _ in samples[it]])[0] is None]
        for it in todo:
            verdicts = tuple(v for v, _ in samples[it])
            texts = tuple(t for _, t in samples[it])
            label, value = majority(verdicts)
            target = label if label is not None else None
            critique = next((t for v, t in zip(verdicts, texts) if target is not None and v == target), "")
            self.cache[it] = Judgment(verdicts, texts, label, 0.0 if value is None else value, critique)
        return [self.cache[it] for it in items]


# ---------------------------------------------------------------------- the refinement tree
@dataclass
class RefineNode:
    """One response in a refinement tree."""
    response: str
    critique: str
    value: float
    depth: int
    parent: int                        # -1 at the root
    refinement: str = ""               # the refiner output that produced this node (with delimiters)
    judgment: Judgment | None = None   # None at the root (its judgment came from the actor stage)


@dataclass
class RefineTree:
    """The search over one failing response; `best` indexes `nodes`."""
    instruction: str
    nodes: list[RefineNode]
    best: int = 0
    solved: bool = False
    expansions: int = 0
    failed_refinements: int = 0
    # DFS bookkeeping: node ids still to expand, next on top
    stack: list[int] = field(default_factory=list)
    frontier: list[int] = field(default_factory=list)
    done: bool = False


class RefinementSearch:
    """BFS/DFS tree-search refinement over many failing responses at once (see module docstring)."""

    def __init__(self, generator: Generator, cfg: RefineConfig, judge: Judge | None = None):
        self.generator, self.cfg = generator, cfg
        self.judge = judge or Judge(generator, cfg)
        self.refine_calls = 0

    def _refine(self, requests: list[tuple[int, int]], trees: list[RefineTree]) -> list[list[tuple[str, str]]]:
        """`branch` parsed refinements (refined text, full output) per (tree, node) request, with retries."""
        cfg = self.cfg
        got: list[list[tuple[str, str]]] = [[] for _ in requests]
        need = [cfg.branch] * len(requests)
        for attempt in range(cfg.refine_retries + 1):
            idx = [i for i, k in enumerate(need) if k > 0]
            if not idx:
                break
            prompts, ns = [], sorted({need[i] for i in idx})
            for n in ns:   # one call per distinct width (normally one: everyone needs `branch`)
                group = [i for i in idx if need[i] == n]
                prompts = [refine_prompt(trees[t].instruction, trees[t].nodes[v].response, trees[t].nodes[v].critique, cfg)
                           for t, v in (requests[i] for i in group)]
                params = SamplingParams(n=n, max_tokens=cfg.refine_max_tokens, temperature=cfg.refine_temperature,
                                        top_p=cfg.top_p, stop=(cfg.answer_close,),
                                        seed=cfg.seed + 104729 * self.refine_calls + attempt)
                self.refine_calls += 1
                for i, row in zip(group, self.generator.generate(prompts, params)):
                    for c in row:
                        text = c.text + (cfg.answer_close if c.finish_reason == FinishReason.STOP
                                         and c.stop_reason == cfg.answer_close else "")
                        refined = parse_refinement(text, cfg)
                        if refined is None:
                            trees[requests[i][0]].failed_refinements += 1
                        elif need[i] > 0:
                            got[i].append((refined, text))
                            need[i] -= 1
        return got

    def _expand(self, trees: list[RefineTree], requests: list[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
        """Expand (tree, node) requests in one refine round and one judge round; returns new child ids."""
        cfg = self.cfg
        outs = self._refine(requests, trees)
        children: dict[tuple[int, int], list[int]] = {}
        to_judge: list[tuple[int, int]] = []
        for (t, v), rows in zip(requests, outs):
            tree = trees[t]
            tree.expansions += 1
            ids = []
            for refined, text in rows:
                if len(tree.nodes) >= cfg.budget:
                    break
                tree.nodes.append(RefineNode(refined, "", 0.0, tree.nodes[v].depth + 1, v, text))
                ids.append(len(tree.nodes) - 1)
                to_judge.append((t, ids[-1]))
            children[(t, v)] = ids
        judgments = self.judge.judge([(trees[t].instruction, trees[t].nodes[i].response) for t, i in to_judge])
        for (t, i), j in zip(to_judge, judgments):
            node = trees[t].nodes[i]
            node.judgment, node.value, node.critique = j, j.value, j.critique
        return children

    def _ranked(self, tree: RefineTree, ids: list[int]) -> list[int]:
        return sorted(ids, key=lambda i: (-tree.nodes[i].value, i))   # stable: earlier sample first on ties

    def _finish(self, tree: RefineTree, winner: int | None) -> None:
        tree.done = True
        if winner is not None:
            tree.best, tree.solved = winner, True
        else:
            tree.best = max(range(len(tree.nodes)), key=lambda i: (tree.nodes[i].value, -i))

    def search(self, instructions: Sequence[str], responses: Sequence[str], critiques: Sequence[str]) -> list[RefineTree]:
        """Refine every failing `responses[i]` (with its majority `critiques[i]`) for `instructions[i]`."""
        if not (len(instructions) == len(responses) == len(critiques)):
            raise ValueError("refine: instructions, responses and critiques differ in length")
        trees = [RefineTree(q, [RefineNode(r, c, 0.0, 0, -1)]) for q, r, c in zip(instructions, responses, critiques)]
        for tree in trees:
            tree.frontier, tree.stack = [0], [0]
        if self.cfg.mode == SearchMode.BFS:
            self._bfs(trees)
        else:
            self._dfs(trees)
        for tree in trees:
            if not tree.done:
                self._finish(tree, None)
        return trees

    def _bfs(self, trees: list[RefineTree]) -> None:
        cfg = self.cfg
        for _ in range(cfg.depth):
            requests = [(t, v) for t, tree in enumerate(trees) if not tree.done and len(tree.nodes) < cfg.budget
                        for v in tree.frontier]
            if not requests:
                return
            children = self._expand(trees, requests)
            for t, tree in enumerate(trees):
                if tree.done:
                    continue
                new = self._ranked(tree, [i for v in tree.frontier for i in children.get((t, v), [])])
                if new and tree.nodes[new[0]].value > cfg.gate:
                    self._finish(tree, new[0])
                else:
                    tree.frontier = new[:cfg.keep]
                    if not tree.frontier:
                        self._finish(tree, None)

    def _dfs(self, trees: list[RefineTree]) -> None:
        cfg = self.cfg
        while True:
            requests = []
            for t, tree in enumerate(trees):
                while tree.stack and not tree.done:
                    v = tree.stack.pop()
                    if tree.nodes[v].depth < cfg.depth and len(tree.nodes) < cfg.budget:
                        requests.append((t, v))
                        break
                if not tree.done and not tree.stack and not any(r[0] == t for r in requests):
                    self._finish(tree, None)
            if not requests:
                return
            children = self._expand(trees, requests)
            for t, v in requests:
                tree = trees[t]
                ranked = self._ranked(tree, children[(t, v)])
                if ranked and tree.nodes[ranked[0]].value > cfg.gate:
                    self._finish(tree, ranked[0])
                else:
                    tree.stack.extend(reversed(ranked[:cfg.keep]))   # best child on top


def refine_responses(refiner: Generator, cfg: RefineConfig, instructions: Sequence[str],
                     responses: Sequence[str]) -> list[str]:
    """Test-time refinement (SPaR's "+ tree search at inference"): judge every response; search the
    ones not judged passing; keep a search result only if the judge values it above the original."""
    judge = Judge(refiner, cfg)
    js = judge.judge(list(zip(instructions, responses)))
    fail = [i for i, j in enumerate(js) if j.label != 1]
    out = list(responses)
    trees = RefinementSearch(refiner, cfg, judge).search([instructions[i] for i in fail], [responses[i] for i in fail],
                                                         [js[i].critique for i in fail])
    for i, t in zip(fail, trees):
        if t.nodes[t.best].value > js[i].value:
            out[i] = t.nodes[t.best].response
    return out
