"""Step-level MCTS, batched across problems (MCTS-DPO, Xie et al., arXiv 2405.00451).

A node is a reasoning step (algorithms.md 3.2-3.3). One `StepMCTS.search` call runs B trees
in lock-step rounds. In each round the tree core (`search.core`, Cython or twin) walks up to
`leaves_per_tree` simulations per tree down to leaves (virtual loss keeps them apart), all
unexpanded leaves of all trees go to ONE `Generator.generate` call (one per distinct width),
all new children to ONE `ValueFn.values` call, and the finished paths are backed up in one core
call. Per node:

    prior      p(a|s) = exp( sum_j log pi(a_j|.) / |a|^lambda )                  (lambda = 1.25)
    reward     r(s,a) = v(s') - v(s)          (v = ValueFn output, 0 at the question)
    select     argmax_a Q(s,a) + c * p(a|s) * sqrt(N(s)) / (1 + N(s,a))            (c = 1)
    backup     Q(s,a) = r(s,a) + gamma * V(s'),  V(s) = sum_a max(1,N(s,a)) Q(s,a) / sum_a max(1,N(s,a))
    commit     argmax_a N(a) * (1 + spread of N over a's children), ties by Q then V

Since r telescopes, Q(s,a) is the (visit-weighted) value of the leaves reached below a minus
v(s): siblings are ranked by where their subtrees lead.

Follows the paper and the code (YuxiXie/MCTS-DPO @ fb23437, mcts.py / search_config.py):
- expansion samples `first_num_candidates` (b1) steps at the question, `num_candidates` (b2)
  below, stopping at the step delimiter (`reasoner.steps`); exact duplicate steps are dropped;
- no "visit unvisited children first" rule: a fresh child enters PUCT with N = 0 and
  Q = parent.V + r = r (the parent is a leaf just expanded, V = 0), so below a node with no
  visits yet (sqrt(N) = 0) the walk follows the largest reward increment;
- a simulation expands the leaf, then keeps descending by PUCT into the new children and
  expanding until a terminal or the depth limit, and backs up once (the code's `iterate`,
  whose intermediate backups are commented out at fb23437); `rollout_to_depth_limit=False`
  gives AlphaZero's one expansion per simulation instead;
- 4x simulations at the first decision; depth limit measured from the current root; after the
  simulations the root commits to one child (rule above, temperature 0), keeps its subtree and
  searches again, until a terminal step;
- node values from a `search.evaluators.ValueFn`: self-evaluation with MCTS-DPO's depth
  penalty, the grader's outcome at terminals during training, or a learned value.

Differs, and why:
- Outcome reward R in {0, 1} (system-wide convention, algorithms.md 8.3) instead of +-1, and by
  default a terminal's value is R itself (`TerminalValue.OUTCOME`) rather than R + C: every
  value is then an estimate of P(correct) in [0, 1], the scale a learned value (OREO critic)
  has, so it plugs in unchanged. `TerminalValue.OUTCOME_PLUS_ESTIMATE` gives the code's R + C.
  No x1.25 bonus for correct paths that leave the reference, no multiple-choice scores.
- The root gets one visit per simulation (the code adds one at the start of `iterate` and one in
  the backup, i.e. sqrt(2) more exploration at the root only).
- The code's "inherit the parent's value when C == 0" is dropped: it catches a failed verdict
  parse, and our C (two-option probability, see evaluators) is never exactly 0.
- No BERTScore near-duplicate filter; one sampling temperature (the code mixes 1.0 and a
  configured temperature at random below the root).
- Batched, with virtual loss: `leaves_per_tree > 1` lets several simulations of one tree wait
  for expansions in the same round; `leaves_per_tree = 1` is the sequential algorithm exactly,
  only batched over problems (`tests/search/test_mcts.py::test_batched_equals_serial`).
  Simulations are launched one per tree per walk, so one that ends without a model call (at a
  terminal or the depth limit) is backed up before the next selects: virtual loss only marks
  simulations that really wait. Simulations that reach the same unexpanded leaf share its
  expansion.
- Reference steps are injected as extra candidates (code default: on) only with
  `reference_guidance=True`, a training-only switch; test-time search refuses it
  (`search.value_guided`). Likewise reference-reading ValueFns.
- `root_selection=gumbel` (not in MCTS-DPO): sequential halving with Gumbel top-k at the root
  and Gumbel MuZero's final choice (`search.gumbel`); PUCT below the root.
- `token_budget` (test-time): once a problem has generated that many tokens, its search stops,
  commits down the tree it has, and finishes an unfinished path with one greedy completion.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

from envs.base import Problem
from reasoner.generation import Completion, FinishReason, Generator, SamplingParams
from reasoner.records import SearchTrace, TraceStep
from reasoner.steps import StepFormat, join_steps, split_steps
from search import gumbel as gumbel_root
from search.core import TreeCore
from search.evaluators import SearchState, ValueFn
from search.ledger import Ledger, SearchStats
from search.tree import Tree

__all__ = ["RootSelection", "MCTSConfig", "MCTSResult", "StepMCTS", "step_text", "step_prior"]

_FREE, _SELECT, _WAIT = 0, 1, 2   # simulation slot states


class RootSelection(str, enum.Enum):
    """How simulations leave the search root."""
    PUCT = "puct"
    """PUCT everywhere; commit by visit count (MCTS-DPO)."""
    GUMBEL = "gumbel"
    """Sequential halving with Gumbel top-k at the root, PUCT below (`search.gumbel`)."""


@dataclass
class MCTSConfig:
    """Step-level MCTS (the `mcts` block of a recipe); defaults follow MCTS-DPO's scripts."""
    num_simulations: int = 16
    """Simulations per decision (MCTS-DPO n_iters; 64 in its training scripts, 5 in eval)."""
    first_decision_multiplier: int = 4
    """Simulations at the first decision = num_simulations * this (MCTS-DPO: 4)."""
    c_puct: float = 1.0
    """Exploration weight c of PUCT (MCTS-DPO w_exp)."""
    length_penalty: float = 1.25
    """lambda in the prior exp(sum log p / |a|^lambda)."""
    num_candidates: int = 2
    """Steps sampled per expansion below the question (b2)."""
    first_num_candidates: int = 4
    """Steps sampled at the question node (b1, the first expansion width)."""
    depth_limit: int = 3
    """Simulations stop this many steps below the current root."""
    max_steps: int = 12
    """A node this many steps deep is terminal (absolute cap on the response)."""
    max_step_tokens: int = 64
    """New tokens per sampled step, at most."""
    temperature: float = 1.0
    """Sampling temperature of expansions."""
    discount: float = 1.0
    """gamma in Q = r + gamma * V."""
    virtual_loss: float = 1.0
    """Q penalty per in-flight simulation through an edge (matters when leaves_per_tree > 1)."""
    leaves_per_tree: int = 1
    """Simulations of one tree in flight per round (1 = the sequential algorithm)."""
    rollout_to_depth_limit: bool = True
    """MCTS-DPO: a simulation keeps expanding to a terminal or the depth limit; False: one expansion."""
    use_spread: bool = True
    """Commit key N * (1 + visit spread among the child's children) (MCTS-DPO consider_diversity)."""
    terminal_markers: list[str] = field(default_factory=lambda: ["####"])
    """A step containing one of these ends the response (the answer line)."""
    reference_guidance: bool = False
    """TRAINING ONLY: inject the next reference-solution step as a candidate on the reference path."""
    token_budget: int = 0
    """Generated tokens per problem after which its search stops and finishes greedily (0 = none)."""
    finish_tokens: int = 256
    """Max tokens of the greedy completion that finishes a budget-stopped search."""
    seed: int = 0
    """Seed of the sampling calls (each round's call gets a seed derived from it)."""
    use_twin: bool = False
    """Force the pure-Python tree core even when the Cython extension is built."""
    root_selection: RootSelection = RootSelection.PUCT
    """puct (MCTS-DPO) or gumbel (sequential halving with Gumbel top-k at the root, Gumbel MuZero)."""
    gumbel_considered: int = 16
    """Gumbel root: root children considered (m of Gumbel top-k)."""
    gumbel_scale: float = 1.0
    """Gumbel root: scale of the Gumbel noise (0 = deterministic top-k by prior and Q)."""

    def __post_init__(self) -> None:
        for name in ("num_simulations", "first_decision_multiplier", "num_candidates",
                     "first_num_candidates", "depth_limit", "max_steps", "max_step_tokens",
                     "leaves_per_tree", "finish_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"mcts.{name} must be >= 1, got {getattr(self, name)}")
        if self.c_puct < 0 or self.virtual_loss < 0 or self.temperature < 0 or self.token_budget < 0:
            raise ValueError("mcts.c_puct, virtual_loss, temperature and token_budget must be >= 0")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"mcts.discount must be in (0, 1], got {self.discount}")
        self.root_selection = RootSelection(self.root_selection)
        if self.gumbel_considered < 1 or self.gumbel_scale < 0:
            raise ValueError("mcts.gumbel_considered must be >= 1 and gumbel_scale >= 0")

    @property
    def max_children(self) -> int:
        """K of the tree arrays: the wider expansion, plus one slot for a reference step."""
        return max(self.num_candidates, self.first_num_candidates) + int(self.reference_guidance)


@dataclass
class MCTSResult:
    """What one batched search produced.

    Attributes:
        traces: [B] per-problem answer, committed steps and cost.
        tree: the B search trees (statistics as they ended).
        committed: [B] node ids of the committed path, question first.
        simulations: [B] simulations run per problem.
        stats: totals of the batched call.
    """
    traces: list[SearchTrace]
    tree: Tree
    committed: list[list[int]]
    simulations: list[int]
    stats: SearchStats


class _Candidate(NamedTuple):
    text: str
    tokens: tuple[int, ...]
    prior: float
    terminal: bool


class _Leaf(NamedTuple):
    tree: int
    node: int
    depth: int
    prefix: str      # the response that ends at the leaf


def step_text(c: Completion) -> str:
    """The step a completion produced: its text plus the delimiter it stopped at (reasoner.steps)."""
    return c.text + (c.stop_reason or "") if c.finish_reason == FinishReason.STOP else c.text


def step_prior(logprobs: Sequence[float], length_penalty: float) -> float:
    """exp(sum log p / L^lambda): MCTS-DPO's length-normalised step probability (1 for L = 0)."""
    if not logprobs:
        return 1.0
    return math.exp(sum(logprobs) / len(logprobs) ** length_penalty)


@dataclass
class _Run:
    """Mutable state of one batched search (B trees, S = B * L simulation slots)."""
    prompts: list[str]
    problems: list[Problem]
    tree: Tree
    ledger: Ledger
    root: np.ndarray                 # [B] current search root
    done: np.ndarray                 # [B] bool, committed to a terminal
    target: np.ndarray               # [B] simulations wanted at this decision
    launched: np.ndarray             # [B]
    finished: np.ndarray             # [B]
    total_sims: np.ndarray           # [B]
    slot_tree: np.ndarray            # [S]
    slot_state: np.ndarray           # [S] _FREE / _SELECT / _WAIT
    paths: np.ndarray                # [S, D] int32
    lengths: np.ndarray              # [S] int32
    reference: list[list[str]]       # [B] reference steps (training-only guidance) or []
    response: list[dict[int, str]]   # [B] {node: response ending there}, filled as nodes are added
    trace: list[list[TraceStep]] = field(default_factory=list)
    rounds: int = 0
    gumbel: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)   # (tree, root) -> [K] noise
    rng: np.random.Generator | None = None


class StepMCTS:
    """Batched step-level MCTS over a policy `Generator` and a `ValueFn`.

    Args:
        generator: the policy (sampling steps; scoring injected reference steps).
        value_fn: node evaluation (see `search.evaluators`).
        cfg: search settings.
        step_format: what a step is (stop strings); GSM8K-style lines by default.
    """

    def __init__(self, generator: Generator, value_fn: ValueFn, cfg: MCTSConfig | None = None,
                 step_format: StepFormat | None = None):
        self.generator = generator
        self.value_fn = value_fn
        self.cfg = cfg or MCTSConfig()
        self.fmt = step_format or StepFormat()
        self.core = TreeCore(use_twin=self.cfg.use_twin)

    # ------------------------------------------------------------------ driver
    def search(self, prompts: Sequence[str], problems: Sequence[Problem]) -> MCTSResult:
        """Search every problem to a terminal step, all trees batched.

        Args:
            prompts: [B] rendered prompts (the caller applies templates).
            problems: [B] the problems (passed to the ValueFn, e.g. for grading).

        Returns:
            An `MCTSResult` with one `SearchTrace` per problem.
        """
        if len(prompts) != len(problems):
            raise ValueError(f"{len(prompts)} prompts but {len(problems)} problems")
        run = self._start(list(prompts), list(problems))
        while not run.done.all():
            with run.ledger.round(np.flatnonzero(~run.done)):
                self._tree_phase(run)
                self._expand(run)
                self._commit_ready(run)
            run.rounds += 1
        return self._result(run)

    def _start(self, prompts: list[str], problems: list[Problem]) -> _Run:
        cfg, b = self.cfg, len(prompts)
        slots = b * cfg.leaves_per_tree
        capacity = cfg.num_simulations * cfg.max_children + 1
        refs = [split_steps(p.solution, self.fmt) if cfg.reference_guidance and p.solution else []
                for p in problems]
        return _Run(prompts=prompts, problems=problems, tree=Tree.empty(b, capacity, cfg.max_children),
                    ledger=Ledger(b), root=np.zeros(b, np.int64), done=np.zeros(b, bool),
                    target=np.full(b, cfg.num_simulations * cfg.first_decision_multiplier, np.int64),
                    launched=np.zeros(b, np.int64), finished=np.zeros(b, np.int64),
                    total_sims=np.zeros(b, np.int64),
                    slot_tree=np.repeat(np.arange(b), cfg.leaves_per_tree),
                    slot_state=np.zeros(slots, np.int8),
                    paths=np.full((slots, cfg.depth_limit + 1), -1, np.int32),
                    lengths=np.zeros(slots, np.int32), reference=refs,
                    response=[{Tree.ROOT: ""} for _ in range(b)], trace=[[] for _ in range(b)],
                    rng=np.random.default_rng(cfg.seed))

    def _over_budget(self, run: _Run) -> np.ndarray:
        """[B] bool: problems whose token budget is spent."""
        if not self.cfg.token_budget:
            return np.zeros(len(run.done), bool)
        return run.ledger.tokens >= self.cfg.token_budget

    # ------------------------------------------------------------------ tree phase
    def _tree_phase(self, run: _Run) -> None:
        """Launch, walk and settle simulations until every live one waits for an expansion."""
        over = self._over_budget(run)                      # [B] fixed during the tree phase
        while True:
            self._launch(run, over)
            sel = np.flatnonzero(run.slot_state == _SELECT)
            if len(sel) == 0:
                return
            if self.cfg.root_selection == RootSelection.GUMBEL:
                self._gumbel_root_moves(run, sel)
            rows = run.slot_tree[sel]
            paths, lengths = run.paths[sel], run.lengths[sel]
            cap = run.tree.depth[rows, run.root[rows]] + self.cfg.depth_limit
            self.core.select_leaves(run.tree, rows, paths, lengths, cap,
                                    c_puct=self.cfg.c_puct, virtual_loss=self.cfg.virtual_loss)
            run.paths[sel], run.lengths[sel] = paths, lengths
            tails = paths[np.arange(len(sel)), lengths - 1]
            complete = (run.tree.is_terminal[rows, tails] | (run.tree.depth[rows, tails] >= cap)
                        | (run.tree.num_children[rows, tails] > 0) | over[rows])
            run.slot_state[sel[~complete]] = _WAIT
            self._backup(run, sel[complete])

    def _gumbel_root(self, run: _Run, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(child ids, Gumbel noise) of tree b's current root; noise drawn once per decision."""
        t, root = run.tree, int(run.root[b])
        kids = t.children[b, root, :t.num_children[b, root]]
        if (b, root) not in run.gumbel:
            run.gumbel[(b, root)] = self.cfg.gumbel_scale * run.rng.gumbel(size=len(kids))
        return kids, run.gumbel[(b, root)]

    def _gumbel_root_moves(self, run: _Run, slots: np.ndarray) -> None:
        """Walks still at an expanded root take their first step by sequential halving (search.gumbel)."""
        t, cfg = run.tree, self.cfg
        for s in slots.tolist():
            b = int(run.slot_tree[s])
            if run.lengths[s] != 1 or t.num_children[b, run.root[b]] == 0 or t.is_terminal[b, run.root[b]]:
                continue
            kids, noise = self._gumbel_root(run, b)
            m = min(cfg.gumbel_considered, len(kids))
            seq = gumbel_root.considered_visit_sequence(m, int(run.target[b]))
            counts = (t.visits[b, kids] + t.pending[b, kids]).astype(np.int64)
            k = gumbel_root.halving_child(noise, t.prior[b, kids], t.q[b, kids], counts, seq, m)
            run.paths[s, 1] = kids[k]
            run.lengths[s] = 2
            t.pending[b, kids[k]] += 1

    def _commit_choice(self, run: _Run, rows: np.ndarray) -> np.ndarray:
        """The child each row's root commits to: MCTS-DPO's rule, or Gumbel's final choice."""
        if self.cfg.root_selection != RootSelection.GUMBEL:
            return self.core.commit_children(run.tree, rows, run.root[rows], use_spread=self._use_spread())
        t, out = run.tree, np.empty(len(rows), np.int64)
        for i, b in enumerate(rows.tolist()):
            kids, noise = self._gumbel_root(run, b)
            m = min(self.cfg.gumbel_considered, len(kids))
            out[i] = kids[gumbel_root.final_child(noise, t.prior[b, kids], t.q[b, kids],
                                                  t.visits[b, kids].astype(np.int64), m)]
        return out

    def _launch(self, run: _Run, over: np.ndarray) -> None:
        """Start one new simulation at the root of every tree with a free slot and target left.

        One per tree per walk: a simulation that ends without a model call (terminal or depth
        limit) is backed up before the next one selects, so virtual loss only ever marks
        simulations that really wait for an expansion.
        """
        b, leaves = len(run.done), self.cfg.leaves_per_tree
        can = ~run.done & ~over & (run.launched < run.target)                                   # [B]
        free = (run.slot_state == _FREE).reshape(b, leaves)                                     # [B, L]
        start = free & (np.cumsum(free, axis=1) == 1) & can[:, None]                            # [B, L]
        slots = np.flatnonzero(start.reshape(-1))
        if len(slots) == 0:
            return
        run.paths[slots, 0] = run.root[run.slot_tree[slots]]
        run.lengths[slots] = 1
        run.slot_state[slots] = _SELECT
        run.launched += start.sum(axis=1)

    def _backup(self, run: _Run, slots: np.ndarray) -> None:
        if len(slots) == 0:
            return
        self.core.backup_paths(run.tree, run.slot_tree[slots], run.paths[slots], run.lengths[slots],
                               discount=self.cfg.discount)
        run.slot_state[slots] = _FREE
        np.add.at(run.finished, run.slot_tree[slots], 1)
        np.add.at(run.total_sims, run.slot_tree[slots], 1)

    # ------------------------------------------------------------------ model phase
    def _expand(self, run: _Run) -> None:
        """Expand every leaf some simulation waits on: one sampling call per width, one value call."""
        wait = np.flatnonzero(run.slot_state == _WAIT)
        if len(wait) == 0:
            return
        tails = run.paths[wait, run.lengths[wait] - 1]
        keys = sorted(set(zip(run.slot_tree[wait].tolist(), tails.tolist())))
        depths = run.tree.depth[[b for b, _ in keys], [n for _, n in keys]].tolist()
        leaves = [_Leaf(b, n, d, run.response[b][n]) for (b, n), d in zip(keys, depths)]
        cands = self._sample(run, leaves)
        self._add_reference_steps(run, leaves, cands)
        self._attach(run, leaves, cands)
        if self.cfg.rollout_to_depth_limit:
            run.slot_state[wait] = _SELECT
        else:
            self._backup(run, wait)

    def _sample(self, run: _Run, leaves: list[_Leaf]) -> list[list[_Candidate]]:
        """Sample candidate steps for every leaf (grouped by expansion width), de-duplicated."""
        cfg = self.cfg
        widths = [cfg.first_num_candidates if leaf.depth == 0 else cfg.num_candidates for leaf in leaves]
        cands: list[list[_Candidate]] = [[] for _ in leaves]
        for group, width in enumerate(sorted(set(widths))):
            idx = [i for i, w in enumerate(widths) if w == width]
            who = [leaves[i].tree for i in idx]
            params = SamplingParams(n=width, max_tokens=cfg.max_step_tokens, temperature=cfg.temperature,
                                    stop=self.fmt.stop, seed=cfg.seed * 1_000_003 + 2 * run.rounds + group)
            with run.ledger.model_call(who, [width] * len(idx)):
                out = self.generator.generate([run.prompts[leaves[i].tree] + leaves[i].prefix for i in idx], params)
            for i, completions in zip(idx, out):
                run.ledger.tokens[leaves[i].tree] += sum(c.num_tokens for c in completions)
                cands[i] = self._candidates(completions, leaves[i].depth + 1)
        return cands

    def _candidates(self, completions: list[Completion], depth: int) -> list[_Candidate]:
        """Distinct steps of one leaf's completions, with priors and terminal flags."""
        cfg, seen, out = self.cfg, set(), []
        for c in completions:
            text = step_text(c)
            if text in seen:
                continue
            seen.add(text)
            terminal = (c.finish_reason == FinishReason.EOS or not text or depth >= cfg.max_steps
                        or any(m in text for m in cfg.terminal_markers))
            out.append(_Candidate(text, c.token_ids, step_prior(c.logprobs, cfg.length_penalty), terminal))
        return out

    def _add_reference_steps(self, run: _Run, leaves: list[_Leaf], cands: list[list[_Candidate]]) -> None:
        """Training-only: on the reference path, prepend the next reference step as a candidate."""
        todo = [i for i, leaf in enumerate(leaves)
                if leaf.depth < len(run.reference[leaf.tree])
                and leaf.prefix == join_steps(run.reference[leaf.tree][:leaf.depth])
                and all(c.text != run.reference[leaf.tree][leaf.depth] for c in cands[i])]
        if not todo:
            return
        steps = [run.reference[leaves[i].tree][leaves[i].depth] for i in todo]
        with run.ledger.model_call([leaves[i].tree for i in todo]):
            scored = self.generator.logprobs([run.prompts[leaves[i].tree] + leaves[i].prefix for i in todo], steps)
        for i, step, s in zip(todo, steps, scored):
            depth = leaves[i].depth + 1
            terminal = (depth == len(run.reference[leaves[i].tree]) or depth >= self.cfg.max_steps
                        or any(m in step for m in self.cfg.terminal_markers))
            cands[i].insert(0, _Candidate(step, s.token_ids, step_prior(s.logprobs, self.cfg.length_penalty),
                                          terminal))

    def _attach(self, run: _Run, leaves: list[_Leaf], cands: list[list[_Candidate]]) -> None:
        """Evaluate all new children in one ValueFn call and add them to the trees."""
        rows, parents, states, flat = [], [], [], []
        for leaf, cs in zip(leaves, cands):
            problem, prompt = run.problems[leaf.tree], run.prompts[leaf.tree]
            for c in cs:
                rows.append(leaf.tree)
                parents.append(leaf.node)
                flat.append(c)
                states.append(SearchState(problem, prompt, leaf.prefix + c.text, leaf.depth + 1, c.terminal))
        with run.ledger.model_call(rows):
            values = self.value_fn.values(states)
        ids = run.tree.add_children(np.array(rows), np.array(parents), np.array([c.prior for c in flat]),
                                    np.asarray(values, np.float64), np.array([c.terminal for c in flat]),
                                    [c.text for c in flat], [c.tokens for c in flat])
        for b, node, state in zip(rows, ids.tolist(), states):
            run.response[b][node] = state.response

    # ------------------------------------------------------------------ decisions
    def _commit_ready(self, run: _Run) -> None:
        """Commit every tree whose simulations are all done; re-root and reset its counters."""
        busy = (run.slot_state != _FREE).reshape(len(run.done), -1).any(axis=1)      # [B]
        over = self._over_budget(run)
        rows = np.flatnonzero(~run.done & ~busy & ((run.finished >= run.target) | over))
        if len(rows) == 0:
            return
        stopped = over[rows] | (run.tree.num_children[rows, run.root[rows]] == 0)
        if stopped.any():
            self._finish_greedy(run, rows[stopped])
        rows = rows[~stopped]
        chosen = self._commit_choice(run, rows)
        for b, c in zip(rows.tolist(), chosen.tolist()):
            self._commit(run, b, c)
            run.target[b] = self.cfg.num_simulations
            run.launched[b] = run.finished[b] = 0

    def _use_spread(self) -> bool:
        return self.cfg.use_spread and self.cfg.num_candidates > 1

    def _commit(self, run: _Run, b: int, child: int) -> None:
        t = run.tree
        siblings = [s for s in t.child_ids(b, int(run.root[b])) if s != child]
        run.trace[b].append(TraceStep(
            text=t.step_text[b][child], value=float(t.q[b, child]), visits=int(t.visits[b, child]),
            alternatives=tuple((t.step_text[b][s], float(t.q[b, s]), int(t.visits[b, s])) for s in siblings)))
        run.root[b] = child
        run.done[b] = bool(t.is_terminal[b, child])

    def _finish_greedy(self, run: _Run, rows: np.ndarray) -> None:
        """Budget spent: commit down the existing tree, then complete unfinished paths greedily."""
        t = run.tree
        open_rows = []
        for b in rows.tolist():
            while not t.is_terminal[b, run.root[b]] and t.num_children[b, run.root[b]] > 0:
                child = int(self.core.commit_children(t, np.array([b]), run.root[[b]],
                                                      use_spread=self._use_spread())[0])
                self._commit(run, b, child)
            if not run.done[b]:
                open_rows.append(b)
        if open_rows:
            prefixes = [run.response[b][int(run.root[b])] for b in open_rows]
            params = SamplingParams(n=1, max_tokens=self.cfg.finish_tokens, temperature=0.0)
            with run.ledger.model_call(open_rows):
                out = self.generator.generate([run.prompts[b] + p for b, p in zip(open_rows, prefixes)], params)
            for b, row in zip(open_rows, out):
                c = row[0]
                run.ledger.add_tokens(b, c.num_tokens)
                parent = int(run.root[b])
                node = int(t.add_children(np.array([b]), np.array([parent]), np.array([step_prior(c.logprobs, 1.0)]),
                                          t.raw_value[b, [parent]], np.array([True]), [c.text], [c.token_ids])[0])
                run.response[b][node] = run.response[b][parent] + c.text
                self._commit(run, b, node)
        run.done[rows] = True

    def _result(self, run: _Run) -> MCTSResult:
        traces, committed = [], []
        for b, problem in enumerate(run.problems):
            path = run.tree.path_to(b, int(run.root[b]))
            committed.append(path)
            traces.append(SearchTrace(
                problem_id=problem.id, method="mcts", response=run.response[b][int(run.root[b])],
                steps=tuple(run.trace[b]), generated_tokens=int(run.ledger.tokens[b]),
                model_calls=int(run.ledger.calls[b]), model_seconds=float(run.ledger.model_seconds[b]),
                tree_seconds=float(run.ledger.tree_seconds[b]), wall_seconds=run.ledger.wall_seconds(b)))
        return MCTSResult(traces=traces, tree=run.tree, committed=committed,
                          simulations=run.total_sims.tolist(), stats=run.ledger.totals())
