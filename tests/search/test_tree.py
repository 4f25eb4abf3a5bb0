"""The struct-of-arrays Tree (search/tree.py): allocation, vectorised expansion, growth, paths."""
import numpy as np
import pytest

from search.tree import Tree


def test_empty_tree_shapes_and_sentinels():
    t = Tree.empty(3, 5, 2)
    assert (t.batch_size, t.capacity, t.max_children) == (3, 5, 2)
    assert t.visits.shape == t.q.shape == t.is_terminal.shape == (3, 5)
    assert t.children.shape == (3, 5, 2) and (t.children == Tree.UNVISITED).all()
    assert (t.parent == Tree.NO_PARENT).all() and t.num_nodes.tolist() == [1, 1, 1]
    assert t.step_text == [[""], [""], [""]]
    assert t.visits.dtype == np.int32 and t.q.dtype == np.float64 and t.is_terminal.dtype == np.bool_


def test_add_children_across_trees_and_parents():
    t = Tree.empty(2, 8, 3)
    t.raw_value[1, 0] = 0.5
    ids = t.add_children(np.array([0, 1, 0, 1]), np.array([0, 0, 0, 0]), np.array([.1, .2, .3, .4]),
                         np.array([.7, .9, .2, .5]), np.array([False, True, False, False]),
                         ["a", "b", "c", "d"], [(1,), (2,), (3,), (4,)])
    assert ids.tolist() == [1, 1, 2, 2]
    assert t.child_ids(0, 0) == [1, 2] and t.child_ids(1, 0) == [1, 2]
    assert t.num_nodes.tolist() == [3, 3]
    np.testing.assert_allclose(t.reward[1, 1:3], [0.9 - 0.5, 0.5 - 0.5])     # r = v(child) - v(parent)
    np.testing.assert_array_equal(t.q[:, 1:3], t.reward[:, 1:3])              # fresh child: Q = r
    assert t.depth[0, 1] == 1 and t.parent[1, 2] == 0 and t.is_terminal[1, 1]
    assert t.step_text[0] == ["", "a", "c"] and t.step_tokens[1] == [(), (2,), (4,)]
    deeper = t.add_children(np.array([0]), np.array([2]), np.ones(1), np.ones(1), np.zeros(1, bool), ["e"], [()])
    assert deeper.tolist() == [3] and t.depth[0, 3] == 2
    assert t.path_to(0, 3) == [0, 2, 3] and t.steps_to(0, 3) == ["c", "e"] and t.response(0, 3) == "ce"


def test_grow_when_full_keeps_contents():
    t = Tree.empty(1, 2, 4)
    t.add_children(np.zeros(1), np.zeros(1), np.ones(1), np.ones(1), np.zeros(1, bool), ["a"], [()])
    t.visits[0, 1] = 7
    t.add_children(np.zeros(3), np.zeros(3), np.ones(3), np.ones(3), np.zeros(3, bool), ["b", "c", "d"], [()] * 3)
    assert t.capacity >= 5 and t.num_nodes[0] == 5 and t.visits[0, 1] == 7
    assert t.child_ids(0, 0) == [1, 2, 3, 4]
    t.grow(9)
    assert t.capacity == 9 and t.parent[0, 8] == Tree.NO_PARENT and (t.children[0, 5:] == Tree.UNVISITED).all()


def test_too_many_children_is_an_error():
    t = Tree.empty(1, 8, 2)
    with pytest.raises(ValueError, match="K=2"):
        t.add_children(np.zeros(3), np.zeros(3), np.ones(3), np.ones(3), np.zeros(3, bool), ["a", "b", "c"], [()] * 3)


def test_copy_is_deep():
    t = Tree.empty(1, 4, 2)
    t.add_children(np.zeros(1), np.zeros(1), np.ones(1), np.ones(1), np.zeros(1, bool), ["a"], [()])
    c = t.copy()
    c.visits[0, 1] = 3
    c.step_text[0].append("x")
    assert t.visits[0, 1] == 0 and t.step_text[0] == ["", "a"]
