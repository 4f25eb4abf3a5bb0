"""Pure-Python twin of `cython_ext.tree_core`: same functions, same signatures, same results.

This is the slow, obviously correct reference (STYLE section 6). `search.core` uses it when the
extension is not built or when a config forces it; `tests/search/test_core_twin.py` asserts that
both produce identical arrays and choices on seeded random trees.

All three functions work in place on the arrays of a `search.tree.Tree` (see its docstring for
shapes), batched over R requests, each naming its tree in `tree[r]`. Requests are processed in
order, so virtual loss added by request r steers request r + 1 of the same tree.

Formulas (MCTS-DPO, arXiv 2405.00451; algorithms.md section 3.3), for a child a of node s:

    PUCT(s, a) = Q(s,a) - vl * P(a) + c * prior(a) * sqrt(N(s) + P'(s)) / (1 + N(s,a) + P(a))

where P counts in-flight simulations (virtual loss; P = 0 recovers the paper's rule) and P'(s)
excludes the walk's own mark on s: every node a walk passes below its first one carries that
walk's pending mark, and counting it would make the sequential search use sqrt(N(s) + 1) below
the root but sqrt(N(s)) at the root. With one walk in flight P' = 0 everywhere: the paper's
sqrt(N(s)) exactly. On backup

    Q(s,a) = r(s,a) + gamma * V(s'),   V(s) = sum_a max(1, N(s,a)) Q(s,a) / sum_a max(1, N(s,a)).

Ties go to the lowest child slot in both implementations.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["select_leaves", "backup_paths", "commit_children"]


def select_leaves(children: np.ndarray, num_children: np.ndarray, depth: np.ndarray,
                  is_terminal: np.ndarray, visits: np.ndarray, pending: np.ndarray,
                  q: np.ndarray, prior: np.ndarray, tree: np.ndarray, paths: np.ndarray,
                  lengths: np.ndarray, depth_cap: np.ndarray, *, c_puct: float,
                  virtual_loss: float) -> None:
    """Walk each request's path down by PUCT to a leaf, adding virtual loss on the way.

    Request r continues from its last node `paths[r, lengths[r] - 1]` (a fresh simulation has
    `paths[r, 0] = root, lengths[r] = 1`) and stops at a node that is not expanded, terminal,
    at `depth >= depth_cap[r]`, or when the path row is full. Every node appended gets
    `pending += 1`. A node's own mark from this walk (every path node after the first) is left
    out of its parent count.

    Args:
        children: [B, N, K] int32; num_children, depth, visits: [B, N] int32;
        is_terminal: [B, N] bool/uint8; q, prior: [B, N] float64.
        pending: [B, N] int32, updated in place.
        tree: [R] tree index of each request.
        paths: [R, D] int32 node ids, extended in place.
        lengths: [R] int32 path lengths, updated in place.
        depth_cap: [R] int32 absolute depth at which a walk stops (root depth + depth limit).
        c_puct: exploration weight c.
        virtual_loss: Q penalty per in-flight simulation.
    """
    max_len = paths.shape[1]
    for r in range(tree.shape[0]):
        b = int(tree[r])
        length = int(lengths[r])
        node = int(paths[r, length - 1])
        own = 1 if length > 1 else 0          # this walk's pending mark on `node`
        while (num_children[b, node] > 0 and not is_terminal[b, node]
               and depth[b, node] < depth_cap[r] and length < max_len):
            parent_n = int(visits[b, node]) + int(pending[b, node]) - own
            sqrt_n = math.sqrt(parent_n)
            best, best_score = -1, 0.0
            for k in range(int(num_children[b, node])):
                c = int(children[b, node, k])
                pend = int(pending[b, c])
                score = (float(q[b, c]) - virtual_loss * pend
                         + c_puct * float(prior[b, c]) * sqrt_n / (1.0 + int(visits[b, c]) + pend))
                if best < 0 or score > best_score:
                    best, best_score = c, score
            paths[r, length] = best
            length += 1
            pending[b, best] += 1
            node, own = best, 1
        lengths[r] = length


def backup_paths(children: np.ndarray, num_children: np.ndarray, parent: np.ndarray,
                 visits: np.ndarray, pending: np.ndarray, q: np.ndarray, value: np.ndarray,
                 reward: np.ndarray, tree: np.ndarray, paths: np.ndarray, lengths: np.ndarray,
                 *, discount: float) -> None:
    """Back up each request's path from its leaf to its first node (the search root).

    Every node on the path, leaf first: if it has children, V = visit-weighted mean of their Q
    (weights max(1, N)), else V stays (0 for a node never expanded); N += 1; if it has a parent,
    Q = r + gamma * V. Every node but the first gets pending -= 1 (the virtual loss
    `select_leaves` added).

    Args:
        children: [B, N, K] int32; num_children, parent: [B, N] int32; reward: [B, N] float64.
        visits, pending: [B, N] int32, updated in place.
        q, value: [B, N] float64, updated in place.
        tree, paths, lengths: as in `select_leaves` (paths[r, :lengths[r]] root first).
        discount: gamma (1 in MCTS-DPO).
    """
    for r in range(tree.shape[0]):
        b = int(tree[r])
        for i in range(int(lengths[r]) - 1, -1, -1):
            node = int(paths[r, i])
            if num_children[b, node] > 0:
                num, den = 0.0, 0.0
                for k in range(int(num_children[b, node])):
                    c = int(children[b, node, k])
                    w = float(max(1, int(visits[b, c])))
                    num += w * float(q[b, c])
                    den += w
                value[b, node] = num / den
            visits[b, node] += 1
            if i > 0:
                pending[b, node] -= 1
            if parent[b, node] >= 0:
                q[b, node] = float(reward[b, node]) + discount * float(value[b, node])


def commit_children(children: np.ndarray, num_children: np.ndarray, visits: np.ndarray,
                    q: np.ndarray, value: np.ndarray, tree: np.ndarray, roots: np.ndarray,
                    out: np.ndarray, *, use_spread: bool) -> None:
    """Pick the child each search root commits to (MCTS-DPO's temperature-0 rule).

    The key is N(a) * (1 + spread(a)), where spread(a) is max minus min visit count among a's
    children (0 without children, or when `use_spread` is off), tie-broken by Q(s,a), then
    V(a), then the lowest slot.

    Args:
        children: [B, N, K] int32; num_children, visits: [B, N] int32; q, value: [B, N] float64.
        tree: [R] tree index; roots: [R] root node of each request.
        out: [R] int32, receives the chosen child id (or -1 when the root has no children).
    """
    for r in range(tree.shape[0]):
        b, root = int(tree[r]), int(roots[r])
        best, best_key = -1, None
        for k in range(int(num_children[b, root])):
            c = int(children[b, root, k])
            spread = 0
            if use_spread and num_children[b, c] > 0:
                grand = [int(visits[b, int(children[b, c, j])]) for j in range(int(num_children[b, c]))]
                spread = max(grand) - min(grand)
            key = (int(visits[b, c]) * (1 + spread), float(q[b, c]), float(value[b, c]))
            if best_key is None or key > best_key:
                best, best_key = c, key
        out[r] = best
