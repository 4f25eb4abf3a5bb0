"""PUCT's parent count below the root leaves out the walk's own pending mark (both tree cores).

A three-level tree: root -> A (just expanded, never visited) -> {c1, c2}. A sequential walk that
continues from A (path [root, A], A carrying this walk's pending mark) must use sqrt(N(A)) =
sqrt(0) = 0, so PUCT reduces to Q and picks c1 (Q 0.5, prior 0.1) over c2 (Q 0.4, prior 0.9).
Counting the own mark gives sqrt(1) and the scores 0.5 + 0.1 = 0.6 vs 0.4 + 0.9 = 1.3: the
wrong child. With a second walk in flight through A, sqrt(N + 1) = 1 is right and c2 wins.
"""
import numpy as np
import pytest

from search.core import TreeCore, compiled_core
from search.tree import Tree

CORES = [pytest.param(True, id="twin"),
         pytest.param(False, id="cython", marks=pytest.mark.skipif(compiled_core() is None,
                                                                   reason="cython_ext.tree_core is not built"))]


def three_level_tree(visits_a: int, pending_a: int) -> Tree:
    t = Tree.empty(1, 8, 2)
    a = t.add_children(np.array([0]), np.array([0]), np.array([1.0]), np.array([0.0]), np.array([False]),
                       ["A\n"], [()])[0]
    c1, c2 = t.add_children(np.array([0, 0]), np.array([a, a]), np.array([0.1, 0.9]), np.array([0.5, 0.4]),
                            np.array([True, True]), ["x\n", "y\n"], [(), ()])
    assert (a, c1, c2) == (1, 2, 3) and t.q[0, 2] == 0.5 and t.q[0, 3] == 0.4
    t.visits[0, 0], t.visits[0, a], t.pending[0, a] = 1, visits_a, pending_a
    return t


def walk_from_a(t: Tree, use_twin: bool) -> tuple[int, np.ndarray]:
    paths = np.array([[0, 1, -1, -1]], np.int32)
    lengths = np.array([2], np.int32)
    TreeCore(use_twin=use_twin).select_leaves(t, np.array([0], np.int32), paths, lengths,
                                              np.array([5], np.int32), c_puct=1.0, virtual_loss=1.0)
    return int(paths[0, 2]), lengths


@pytest.mark.parametrize("use_twin", CORES)
def test_own_pending_mark_is_not_a_visit(use_twin):
    t = three_level_tree(visits_a=0, pending_a=1)          # only this walk is in flight through A
    chosen, lengths = walk_from_a(t, use_twin)
    assert chosen == 2 and lengths[0] == 3                  # argmax Q, since sqrt(N(A)) = 0
    assert t.pending[0, 2] == 1 and t.pending[0, 1] == 1    # the new mark is added, A's kept


@pytest.mark.parametrize("use_twin", CORES)
def test_other_walks_still_count(use_twin):
    t = three_level_tree(visits_a=0, pending_a=2)          # this walk + one other in flight
    chosen, _ = walk_from_a(t, use_twin)
    # sqrt(0 + 1) = 1: c1 0.5 + 0.1 * 1 / 1 = 0.6 < c2 0.4 + 0.9 * 1 / 1 = 1.3
    assert chosen == 3


@pytest.mark.parametrize("use_twin", CORES)
def test_walk_from_root_uses_root_count(use_twin):
    # The same numbers one level up: a walk starting at the root (no own mark) with N(root) = 1.
    t = Tree.empty(1, 8, 2)
    t.add_children(np.array([0, 0]), np.array([0, 0]), np.array([0.1, 0.9]), np.array([0.5, 0.4]),
                   np.array([True, True]), ["x\n", "y\n"], [(), ()])
    t.visits[0, 0] = 1
    paths = np.array([[0, -1, -1]], np.int32)
    lengths = np.array([1], np.int32)
    TreeCore(use_twin=use_twin).select_leaves(t, np.array([0], np.int32), paths, lengths,
                                              np.array([5], np.int32), c_puct=1.0, virtual_loss=1.0)
    # sqrt(N(root)) = 1: node 1 scores 0.5 + 0.1 = 0.6, node 2 scores 0.4 + 0.9 = 1.3
    assert int(paths[0, 1]) == 2
