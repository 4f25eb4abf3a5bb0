"""The compiled tree core and its pure-Python twin agree exactly on random trees (STYLE section 6).

Random trees of awkward sizes (a lone root, K = 1 chains, full fan-out, many trees) go through the
same select -> backup -> commit rounds with both implementations; every array and every choice must
be identical, bit for bit. Skipped pieces: none; when the extension is not built, the comparison
tests skip and `test_twin_used_when_extension_missing` still runs.
"""
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search import tree_py
from search.core import TreeCore, compiled_core, load_core
from search.tree import Tree

compiled = compiled_core()
needs_ext = pytest.mark.skipif(compiled is None, reason="cython_ext.tree_core is not built")


def random_tree(rng: np.random.Generator, batch: int, nodes: int, k: int) -> Tree:
    """B trees of `nodes` nodes each with random shape, statistics and terminal leaves."""
    t = Tree.empty(batch, max(nodes, 1), k)
    for b in range(batch):
        for n in range(1, nodes):
            open_ = [p for p in range(n) if t.num_children[b, p] < k and not t.is_terminal[b, p]]
            if not open_:
                break
            p = int(rng.choice(open_))
            t.add_children(np.array([b]), np.array([p]), rng.random(1), rng.normal(size=1),
                           np.array([rng.random() < 0.2]), ["s"], [()])
        used = t.num_nodes[b]
        t.visits[b, :used] = rng.integers(0, 6, used)
        t.pending[b, :used] = rng.integers(0, 2, used)
        t.q[b, :used] = rng.normal(size=used)
        t.value[b, :used] = rng.normal(size=used)
        # a few exact ties, so tie-breaking is exercised
        t.q[b, :used:3] = 0.5
        t.prior[b, :used:4] = 0.25
    t.pending[:, Tree.ROOT] = 0
    return t


def assert_same(a: Tree, b: Tree) -> None:
    for name in ("visits", "pending", "value", "q", "reward", "raw_value", "prior", "parent", "depth",
                 "is_terminal", "num_children", "children", "num_nodes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def run_rounds(core: TreeCore, t: Tree, rng_seed: int, rounds: int, per_round: int, depth_limit: int):
    """select -> backup -> commit rounds; returns every path, length and choice made."""
    rng = np.random.default_rng(rng_seed)
    log = []
    for _ in range(rounds):
        rows = rng.integers(0, t.batch_size, per_round).astype(np.int32)
        starts = np.array([rng.integers(0, t.num_nodes[b]) for b in rows], np.int32)
        paths = np.full((per_round, depth_limit + 2), -1, np.int32)
        paths[:, 0] = starts
        lengths = np.ones(per_round, np.int32)
        cap = (t.depth[rows, starts] + depth_limit).astype(np.int32)
        core.select_leaves(t, rows, paths, lengths, cap, c_puct=1.3, virtual_loss=0.7)
        log.append((paths.copy(), lengths.copy()))
        core.backup_paths(t, rows, paths, lengths, discount=0.9)
        log.append(core.commit_children(t, rows, starts, use_spread=bool(rng.random() < 0.7)))
    return log


@needs_ext
@pytest.mark.parametrize("batch,nodes,k", [(1, 1, 1), (1, 2, 1), (1, 9, 1), (3, 17, 2), (2, 64, 5),
                                           (7, 5, 3), (5, 101, 4), (1, 300, 8)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_twin_matches_cython_on_awkward_sizes(batch, nodes, k, seed):
    rng = np.random.default_rng(seed)
    a = random_tree(rng, batch, nodes, k)
    b = a.copy()
    log_c = run_rounds(TreeCore(use_twin=False), a, seed, rounds=6, per_round=2 * batch + 1, depth_limit=4)
    log_p = run_rounds(TreeCore(use_twin=True), b, seed, rounds=6, per_round=2 * batch + 1, depth_limit=4)
    assert_same(a, b)
    for x, y in zip(log_c, log_p):
        if isinstance(x, tuple):
            np.testing.assert_array_equal(x[0], y[0])
            np.testing.assert_array_equal(x[1], y[1])
        else:
            np.testing.assert_array_equal(x, y)


@needs_ext
@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 4), nodes=st.integers(1, 40), k=st.integers(1, 6),
       seed=st.integers(0, 2**31 - 1), depth_limit=st.integers(1, 6))
def test_twin_matches_cython_hypothesis(batch, nodes, k, seed, depth_limit):
    rng = np.random.default_rng(seed)
    a = random_tree(rng, batch, nodes, k)
    b = a.copy()
    log_c = run_rounds(TreeCore(), a, seed, rounds=3, per_round=3, depth_limit=depth_limit)
    log_p = run_rounds(TreeCore(use_twin=True), b, seed, rounds=3, per_round=3, depth_limit=depth_limit)
    assert_same(a, b)
    for x, y in zip(log_c, log_p):
        if isinstance(x, tuple):
            np.testing.assert_array_equal(x[0], y[0])
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("use_twin", [True, False])
def test_select_then_backup_releases_virtual_loss(use_twin):
    if not use_twin and compiled is None:
        pytest.skip("extension not built")
    rng = np.random.default_rng(5)
    t = random_tree(rng, 3, 30, 3)
    t.pending[:] = 0
    core = TreeCore(use_twin=use_twin)
    rows = np.array([0, 0, 1, 2, 2, 2], np.int32)
    paths = np.full((6, 8), -1, np.int32)
    paths[:, 0] = Tree.ROOT
    lengths = np.ones(6, np.int32)
    visits_before = t.visits.copy()
    core.select_leaves(t, rows, paths, lengths, np.full(6, 7, np.int32), c_puct=1.0, virtual_loss=1.0)
    assert t.pending.sum() == int((lengths - 1).sum())
    core.backup_paths(t, rows, paths, lengths)
    assert t.pending.sum() == 0
    # every node on every path got exactly one visit per path through it
    expect = visits_before.copy()
    for r in range(6):
        for n in paths[r, :lengths[r]]:
            expect[rows[r], n] += 1
    np.testing.assert_array_equal(t.visits, expect)


def test_twin_used_when_extension_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cython_ext.tree_core", None)  # makes the import fail
    assert compiled_core() is None
    assert load_core() is tree_py
    assert TreeCore().name == "python"


def test_use_twin_flag_forces_python():
    assert TreeCore(use_twin=True).name == "python"
    assert load_core(use_twin=True) is tree_py


def test_select_rejects_arrays_it_cannot_update_in_place():
    t = Tree.empty(1, 4, 2)
    with pytest.raises(TypeError, match="int32"):
        TreeCore(use_twin=True).select_leaves(t, np.zeros(1), np.zeros((1, 3), np.int64), np.ones(1, np.int32),
                                              np.ones(1), c_puct=1.0, virtual_loss=0.0)
