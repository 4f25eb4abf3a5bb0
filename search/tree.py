"""`Tree`: a batch of step-level search trees stored as preallocated NumPy arrays.

One `Tree` holds B independent trees (one per problem) of capacity N nodes and at most K children
per node (mctx's struct-of-arrays layout; peers.md section 4.1). Node 0 of every tree is the
question (the empty response); a node's step is the text that leads into it from its parent.
Every per-node number lives in an array `[B, N]`; the only edge array is `children [B, N, K]`,
because each node has exactly one parent, so edge quantities (prior, reward, Q, N(s, a)) are
stored at the child. Step texts and token ids live in Python side lists indexed `[b][node]`.

The statistics follow MCTS-DPO (arXiv 2405.00451; algorithms.md section 3.3):

- `raw_value[b, n]` is the node evaluation v(s) (self-evaluation, learned value, or outcome at
  terminals), `reward[b, n]` is the edge reward r(s, a) = v(s') - v(s), the increment;
- `q[b, n]` is Q(s, a) = r(s, a) + gamma * V(s') for the edge into n;
- `value[b, n]` is V(s) = sum_a max(1, N(s,a)) Q(s,a) / sum_a max(1, N(s,a)) over its children.

The issue's "value sums" are replaced by `value`: MCTS-DPO's V is a visit-weighted mean of the
children's current Q, recomputed on backup, not a running sum of returns, so a sum would have to
be rebuilt from the children anyway.

Arrays grow (doubling N) when an expansion would overflow, so the initial capacity
`num_simulations * K + 1` (STYLE section 3) is a starting size, not a hard limit.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from reasoner.steps import join_steps

__all__ = ["Tree"]

_NODE_FIELDS_INT = ("visits", "pending", "parent", "depth", "num_children")
_NODE_FIELDS_FLOAT = ("value", "q", "reward", "raw_value", "prior")


@dataclass
class Tree:
    """B search trees of capacity N with at most K children per node.

    Attributes (B trees, N node slots, K child slots):
        visits: [B, N] int32, N(s): simulations backed up through the node.
        pending: [B, N] int32, simulations in flight through the edge into the node (virtual loss).
        value: [B, N] float64, backed-up V(s); 0 while the node has never been an inner node.
        q: [B, N] float64, Q(parent, node) of the edge into the node.
        reward: [B, N] float64, r(parent, node) = raw_value[node] - raw_value[parent].
        raw_value: [B, N] float64, v(s) from the ValueFn (0 at the root).
        prior: [B, N] float64, PUCT prior of the edge into the node (length-normalised step prob).
        parent: [B, N] int32, parent node id, `NO_PARENT` at the root and in unused slots.
        depth: [B, N] int32, number of steps from the question (root = 0).
        is_terminal: [B, N] bool, the response ends at this node (EOS, answer line or step cap).
        num_children: [B, N] int32, children already attached (0 = not expanded).
        children: [B, N, K] int32, child node ids; `UNVISITED` marks an empty slot.
        num_nodes: [B] int32, node slots in use per tree (the next free id).
        step_text: [B][num_nodes] str, the step leading into each node ("" at the root).
        step_tokens: [B][num_nodes] tuple of token ids of that step.
    """
    ROOT: ClassVar[int] = 0
    NO_PARENT: ClassVar[int] = -1
    UNVISITED: ClassVar[int] = -1

    visits: np.ndarray
    pending: np.ndarray
    value: np.ndarray
    q: np.ndarray
    reward: np.ndarray
    raw_value: np.ndarray
    prior: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    is_terminal: np.ndarray
    num_children: np.ndarray
    children: np.ndarray
    num_nodes: np.ndarray
    step_text: list[list[str]] = field(default_factory=list)
    step_tokens: list[list[tuple[int, ...]]] = field(default_factory=list)

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, batch: int, capacity: int, max_children: int) -> "Tree":
        """B trees holding only their roots, with room for `capacity` nodes each."""
        if batch < 1 or capacity < 1 or max_children < 1:
            raise ValueError(f"need batch, capacity, max_children >= 1, got {batch}, {capacity}, {max_children}")
        shape = (batch, capacity)
        ints = {name: np.zeros(shape, np.int32) for name in _NODE_FIELDS_INT}
        ints["parent"].fill(cls.NO_PARENT)
        floats = {name: np.zeros(shape, np.float64) for name in _NODE_FIELDS_FLOAT}
        return cls(**ints, **floats,
                   is_terminal=np.zeros(shape, np.bool_),
                   children=np.full((batch, capacity, max_children), cls.UNVISITED, np.int32),
                   num_nodes=np.ones(batch, np.int32),
                   step_text=[[""] for _ in range(batch)],
                   step_tokens=[[()] for _ in range(batch)])

    @property
    def batch_size(self) -> int:
        return self.visits.shape[0]

    @property
    def capacity(self) -> int:
        return self.visits.shape[1]

    @property
    def max_children(self) -> int:
        return self.children.shape[2]

    def copy(self) -> "Tree":
        """A deep copy (arrays and side lists)."""
        arrays = {f.name: getattr(self, f.name).copy() for f in fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        return Tree(**arrays, step_text=[list(x) for x in self.step_text],
                    step_tokens=[list(x) for x in self.step_tokens])

    def grow(self, capacity: int) -> None:
        """Enlarge every tree to `capacity` node slots (keeps all contents)."""
        extra = capacity - self.capacity
        if extra <= 0:
            return
        for name in _NODE_FIELDS_INT + _NODE_FIELDS_FLOAT + ("is_terminal",):
            old = getattr(self, name)
            fill = self.NO_PARENT if name == "parent" else 0
            setattr(self, name, np.concatenate([old, np.full((old.shape[0], extra), fill, old.dtype)], axis=1))
        pad = np.full((self.batch_size, extra, self.max_children), self.UNVISITED, np.int32)
        self.children = np.concatenate([self.children, pad], axis=1)

    # ------------------------------------------------------------------ expansion
    def add_children(self, tree: np.ndarray, parent: np.ndarray, prior: np.ndarray,
                     raw_value: np.ndarray, is_terminal: np.ndarray,
                     texts: list[str], tokens: list[tuple[int, ...]]) -> np.ndarray:
        """Attach M new children (vectorised over trees and parents).

        Each child gets reward = raw_value - raw_value[parent], Q = reward (MCTS-DPO initialises
        a fresh child's Q to parent.V + r with parent.V = 0 for a leaf just expanded), V = 0,
        no visits, and depth = parent depth + 1.

        Args:
            tree: [M] tree index of each child.
            parent: [M] parent node id of each child.
            prior: [M] PUCT prior of each new edge.
            raw_value: [M] v(child) from the ValueFn.
            is_terminal: [M] whether the child ends the response.
            texts, tokens: [M] the child's step text and token ids.

        Returns:
            [M] the new node ids.
        """
        tree = np.asarray(tree, np.int64)
        parent = np.asarray(parent, np.int64)
        m = tree.shape[0]
        if m == 0:
            return np.zeros(0, np.int32)
        rank_in_tree = _rank_within_groups(tree)
        rank_in_parent = _rank_within_groups(tree * self.capacity + parent)
        new_ids = self.num_nodes[tree] + rank_in_tree
        slots = self.num_children[tree, parent] + rank_in_parent
        if slots.max() >= self.max_children:
            raise ValueError(f"a node would get more than K={self.max_children} children")
        need = int(new_ids.max()) + 1
        if need > self.capacity:
            self.grow(max(need, 2 * self.capacity))
        self.parent[tree, new_ids] = parent
        self.depth[tree, new_ids] = self.depth[tree, parent] + 1
        self.prior[tree, new_ids] = prior
        self.raw_value[tree, new_ids] = raw_value
        self.reward[tree, new_ids] = np.asarray(raw_value, np.float64) - self.raw_value[tree, parent]
        self.q[tree, new_ids] = self.reward[tree, new_ids]
        self.value[tree, new_ids] = 0.0
        self.visits[tree, new_ids] = 0
        self.pending[tree, new_ids] = 0
        self.is_terminal[tree, new_ids] = is_terminal
        self.children[tree, parent, slots] = new_ids
        np.add.at(self.num_children, (tree, parent), 1)
        np.add.at(self.num_nodes, tree, 1)
        for b, text, toks in zip(tree.tolist(), texts, tokens):
            self.step_text[b].append(text)
            self.step_tokens[b].append(tuple(toks))
        return new_ids.astype(np.int32)

    # ------------------------------------------------------------------ reading
    def child_ids(self, b: int, node: int) -> list[int]:
        """Ids of the children of `node` in tree `b`, in slot order."""
        return self.children[b, node, :self.num_children[b, node]].tolist()

    def path_to(self, b: int, node: int) -> list[int]:
        """Node ids from the root down to `node` (inclusive)."""
        path = [node]
        while self.parent[b, path[-1]] != self.NO_PARENT:
            path.append(int(self.parent[b, path[-1]]))
        return path[::-1]

    def steps_to(self, b: int, node: int) -> list[str]:
        """The steps of the response that ends at `node`."""
        return [self.step_text[b][n] for n in self.path_to(b, node)[1:]]

    def response(self, b: int, node: int) -> str:
        """The response text from the question down to `node` (steps keep their delimiters)."""
        return join_steps(self.steps_to(b, node))


def _rank_within_groups(keys: np.ndarray) -> np.ndarray:
    """For each entry, how many earlier entries share its key (a stable cumulative count)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    rank_sorted = np.arange(len(keys)) - np.repeat(starts, sizes)
    rank = np.empty(len(keys), np.int64)
    rank[order] = rank_sorted
    return rank
