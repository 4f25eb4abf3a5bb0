"""Tree core dispatch: the compiled `cython_ext.tree_core` when built, else the Python twin.

`TreeCore` binds one implementation and offers the core operations on a `search.tree.Tree`
(PUCT walk to leaves with virtual loss, backup, commit), batched over requests that each name
their tree. Both implementations have the same array-level functions and give identical results
(`tests/search/test_core_twin.py`); `use_twin=True` (e.g. `MCTSConfig.use_twin`) forces the twin.
The package works without the extension: build it with `python setup.py build_ext --inplace`.
"""
from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from search import tree_py
from search.tree import Tree

__all__ = ["TreeCore", "compiled_core", "load_core"]


def compiled_core() -> ModuleType | None:
    """The compiled extension module, or None when it is not built (or cannot be imported)."""
    try:
        return importlib.import_module("cython_ext.tree_core")
    except ImportError:
        return None


def load_core(use_twin: bool = False) -> ModuleType:
    """The module implementing the core: compiled unless `use_twin` or not built."""
    if use_twin:
        return tree_py
    return compiled_core() or tree_py


def _i32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.int32)


class TreeCore:
    """The core operations of step-level MCTS on a `Tree`, with one implementation bound.

    Args:
        use_twin: force the pure-Python twin even when the extension is built.
    """

    def __init__(self, use_twin: bool = False):
        self.impl = load_core(use_twin)

    @property
    def name(self) -> str:
        """'cython' or 'python'."""
        return "python" if self.impl is tree_py else "cython"

    def select_leaves(self, tree: Tree, rows: np.ndarray, paths: np.ndarray, lengths: np.ndarray,
                      depth_cap: np.ndarray, *, c_puct: float, virtual_loss: float) -> None:
        """Extend `paths[i]` (tree `rows[i]`) by PUCT down to a leaf; adds virtual loss.

        Args:
            tree: the trees (pending counts are updated in place).
            rows: [R] tree index per request.
            paths: [R, D] int32 node ids, root first; extended in place.
            lengths: [R] int32 path lengths, updated in place.
            depth_cap: [R] absolute depth where walks stop.
            c_puct: exploration weight; virtual_loss: Q penalty per in-flight simulation.
        """
        for name, arr in (("paths", paths), ("lengths", lengths)):
            if arr.dtype != np.int32 or not arr.flags.c_contiguous:
                raise TypeError(f"{name} must be a C-contiguous int32 array (it is updated in place)")
        self.impl.select_leaves(tree.children, tree.num_children, tree.depth,
                                tree.is_terminal.view(np.uint8), tree.visits, tree.pending,
                                tree.q, tree.prior, _i32(rows), paths, lengths, _i32(depth_cap),
                                c_puct=float(c_puct), virtual_loss=float(virtual_loss))

    def backup_paths(self, tree: Tree, rows: np.ndarray, paths: np.ndarray, lengths: np.ndarray,
                     *, discount: float = 1.0) -> None:
        """Back up every path `paths[i, :lengths[i]]` of tree `rows[i]`, releasing virtual loss."""
        self.impl.backup_paths(tree.children, tree.num_children, tree.parent, tree.visits,
                               tree.pending, tree.q, tree.value, tree.reward, _i32(rows),
                               _i32(paths), _i32(lengths), discount=float(discount))

    def commit_children(self, tree: Tree, rows: np.ndarray, roots: np.ndarray, *,
                        use_spread: bool = True) -> np.ndarray:
        """[R] the child each root `roots[i]` of tree `rows[i]` commits to (-1: no children)."""
        out = np.full(len(rows), -1, np.int32)
        self.impl.commit_children(tree.children, tree.num_children, tree.visits, tree.q,
                                  tree.value, _i32(rows), _i32(roots), out,
                                  use_spread=bool(use_spread))
        return out
