"""Golden small trees (tests/data/search_golden_trees.json): hand-computed select/backup/commit.

Each case lists its tree, the operations in order and the expected arrays, with the arithmetic
in a "why" field. Both tree-core implementations must reproduce them.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from search.core import TreeCore, compiled_core
from search.tree import Tree

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "data" / "search_golden_trees.json").read_text())
IMPLS = [True] + ([False] if compiled_core() is not None else [])


def build(case: dict) -> Tree:
    n = len(case["parent"])
    t = Tree.empty(1, n, case["k"])
    for node in range(1, n):
        t.add_children(np.array([0]), np.array([case["parent"][node]]), np.array([case["prior"][node]]),
                       np.zeros(1), np.array([bool(case["terminal"][node])]), [f"s{node}"], [()])
    t.q[0] = case["q"]
    t.reward[0] = case["reward"]
    t.value[0] = case.get("value", [0.0] * n)
    t.visits[0] = case["visits"]
    return t


@pytest.mark.parametrize("use_twin", IMPLS, ids=lambda x: "twin" if x else "cython")
@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: c["name"])
def test_golden_tree(case, use_twin):
    t, core = build(case), TreeCore(use_twin=use_twin)
    paths = lengths = rows = None
    for op in case["ops"]:
        if op["op"] == "select":
            r = len(op["starts"])
            rows = np.zeros(r, np.int32)
            paths = np.full((r, 8), -1, np.int32)
            paths[:, 0] = op["starts"]
            lengths = np.ones(r, np.int32)
            core.select_leaves(t, rows, paths, lengths, np.array(op["depth_cap"]), c_puct=op["c_puct"],
                               virtual_loss=op["virtual_loss"])
            assert [paths[i, :lengths[i]].tolist() for i in range(r)] == op["expect_paths"], op["why"]
            assert t.pending[0].tolist() == op["expect_pending"]
        elif op["op"] == "backup":
            core.backup_paths(t, rows, paths, lengths, discount=op["discount"])
            assert t.visits[0].tolist() == op["expect_visits"]
            assert t.pending[0].tolist() == op["expect_pending"]
            np.testing.assert_allclose(t.q[0], op["expect_q"], rtol=0, atol=1e-12, err_msg=op["why"])
            np.testing.assert_allclose(t.value[0], op["expect_value"], rtol=0, atol=1e-12, err_msg=op["why"])
        else:
            got = core.commit_children(t, np.zeros(1), np.array([op["root"]]), use_spread=op["use_spread"])
            assert got.tolist() == [op["expect"]], op["why"]
