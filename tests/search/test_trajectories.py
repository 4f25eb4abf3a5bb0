"""Trajectories harvested from MCTS trees: every graded terminal path, de-duplicated and balanced."""
from types import SimpleNamespace

import numpy as np

from envs.base import Problem
from search.trajectories import TrajectoryConfig, terminal_paths, trajectories_from_result
from search.tree import Tree


def _tree():
    """Question -> a ("1+1=2\\n") -> {a1 "#### 2" (right), a2 "#### 3" (wrong)}; -> b "#### 2" (right, terminal);
    -> c ("1+1=3\\n", not terminal)."""
    t = Tree.empty(1, 8, 3)
    texts = ["", "1+1=2\n", "#### 2", "#### 3", "#### 2", "1+1=3\n"]
    parents = [-1, 0, 1, 1, 0, 0]
    terminal = [False, False, True, True, True, False]
    for n, (txt, par, term) in enumerate(zip(texts, parents, terminal)):
        if n:
            t.parent[0, n], t.depth[0, n], t.is_terminal[0, n] = par, t.depth[0, par] + 1, term
            t.step_text[0].append(txt)
            t.step_tokens[0].append(())
    t.num_nodes[0] = len(texts)
    return t


def test_terminal_paths():
    assert terminal_paths(_tree(), 0) == [[0, 1, 2], [0, 1, 3], [0, 4]]


def test_graded_balanced_and_labelled():
    result = SimpleNamespace(tree=_tree())
    prob = Problem(id="p1", task="arith", question="1+1?", answer="2")
    out = trajectories_from_result(result, ["Q\n"], [prob], policy_version=3)
    assert [(t.steps, t.reward) for t in out] == [(("1+1=2\n", "#### 2"), 1.0), (("1+1=2\n", "#### 3"), 0.0)]
    assert all(t.policy_version == 3 and t.source == "mcts" and t.observations == ("", "")[:len(t.steps)]
               for t in out)
    # without balancing both correct paths are kept (#pos may exceed #neg)
    unbalanced = trajectories_from_result(result, ["Q\n"], [prob], TrajectoryConfig(balance=False))
    assert sorted(t.reward for t in unbalanced) == [0.0, 1.0, 1.0]
    # caps
    only_neg = trajectories_from_result(result, ["Q\n"], [prob], TrajectoryConfig(max_positive=0))
    assert [t.reward for t in only_neg] == [0.0]


def test_duplicates_are_dropped():
    t = _tree()
    t.step_text[0][3] = "#### 2"     # now two paths spell the same response
    out = trajectories_from_result(SimpleNamespace(tree=t), ["Q\n"], [Problem("p", "arith", "q", "2")],
                                   TrajectoryConfig(balance=False))
    assert len({t.response for t in out}) == len(out) == 2
    assert np.all([t.reward == 1.0 for t in out])
