"""Throughput of the tree core: select + backup updates per second, Cython vs the Python twin.

    python benchmarks/tree_core.py            # full run (~1-2 min)
    python benchmarks/tree_core.py --quick    # under a minute

One "update" is one simulation's PUCT walk from the root to a leaf (with virtual loss) plus its
backup along the parent chain (the per-simulation tree work of step-level MCTS; DESIGN
"Performance principles"). Trees are full K-ary trees of a fixed depth, batched B at a time,
and every round selects `leaves_per_tree` paths per tree in one core call and backs them up in
another, as `search.mcts` does. Writes benchmarks/results/tree_core.json with top-level keys
`cython_updates_per_s`, `python_updates_per_s` and `ratio` (target: ratio >= 30).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.core import TreeCore, compiled_core  # noqa: E402
from search.tree import Tree  # noqa: E402

from benchmarks.results_path import results_path  # noqa: E402


def build_trees(batch: int, k: int, depth: int, seed: int) -> Tree:
    """B full K-ary trees of the given depth with random priors and node values."""
    rng = np.random.default_rng(seed)
    nodes = sum(k ** d for d in range(depth + 1))
    tree = Tree.empty(batch, nodes, k)
    frontier = np.zeros((batch, 1), np.int64)                      # [B, F] node ids per tree
    for _ in range(depth):
        f = frontier.shape[1]
        rows = np.repeat(np.arange(batch), f * k)                  # [B * F * K]
        parents = np.repeat(frontier, k, axis=1).reshape(-1)       # [B * F * K]
        m = len(rows)
        ids = tree.add_children(rows, parents, rng.random(m), rng.random(m), np.zeros(m, bool),
                                [""] * m, [()] * m)
        frontier = ids.reshape(batch, f * k)
    return tree


def measure(core: TreeCore, tree: Tree, leaves_per_tree: int, seconds: float) -> tuple[float, int]:
    """Run select+backup rounds for about `seconds`; returns (updates per second, updates)."""
    batch = tree.batch_size
    rows = np.repeat(np.arange(batch, dtype=np.int32), leaves_per_tree)
    cap = np.full(len(rows), 1 << 20, np.int32)
    paths = np.zeros((len(rows), 64), np.int32)
    lengths = np.ones(len(rows), np.int32)
    updates, start = 0, time.perf_counter()
    while True:
        paths[:, 0] = Tree.ROOT
        lengths[:] = 1
        core.select_leaves(tree, rows, paths, lengths, cap, c_puct=1.0, virtual_loss=1.0)
        core.backup_paths(tree, rows, paths, lengths, discount=1.0)
        updates += len(rows)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return updates / elapsed, updates


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (under a minute)")
    ap.add_argument("--batch", type=int, default=64, help="trees per batch")
    ap.add_argument("--k", type=int, default=4, help="children per node")
    ap.add_argument("--depth", type=int, default=5, help="tree depth")
    ap.add_argument("--leaves-per-tree", type=int, default=4)
    ap.add_argument("--out", default=None, help="JSON output (default: results/tree_core.json; --quick: a temp file)")
    args = ap.parse_args(argv)
    if compiled_core() is None:
        print("cython_ext.tree_core is not built: run `python setup.py build_ext --inplace`", file=sys.stderr)
        return 1
    seconds = 2.0 if args.quick else 10.0
    results = {}
    for name, use_twin in (("cython", False), ("python", True)):
        tree = build_trees(args.batch, args.k, args.depth, seed=0)
        core = TreeCore(use_twin=use_twin)
        measure(core, tree, args.leaves_per_tree, 0.2)  # warm-up
        results[name] = measure(core, tree, args.leaves_per_tree, seconds)
    ratio = results["cython"][0] / results["python"][0]
    out = {
        "cython_updates_per_s": round(results["cython"][0], 1),
        "python_updates_per_s": round(results["python"][0], 1),
        "ratio": round(ratio, 2),
        "target_ratio": 30,
        "config": {"batch": args.batch, "k": args.k, "depth": args.depth,
                   "leaves_per_tree": args.leaves_per_tree, "seconds_per_impl": seconds,
                   "quick": args.quick, "nodes_per_tree": int(sum(args.k ** d for d in range(args.depth + 1)))},
        "updates": {"cython": results["cython"][1], "python": results["python"][1]},
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }
    print(f"{'core':<8} {'updates/s':>14}")
    print(f"{'cython':<8} {out['cython_updates_per_s']:>14,.0f}")
    print(f"{'python':<8} {out['python_updates_per_s']:>14,.0f}")
    print(f"ratio {out['ratio']:.1f}x (target >= 30)")
    path = results_path("tree_core", quick=args.quick, out=args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
