"""--quick benchmark runs never write over the committed full-run JSONs (benchmarks/results_path.py)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.results_path import RESULTS_DIR, results_path

ROOT = Path(__file__).resolve().parents[2]


def test_results_path_rules(tmp_path):
    assert results_path("tree_core", quick=False) == RESULTS_DIR / "tree_core.json"
    quick = results_path("tree_core", quick=True)
    assert quick.parent != RESULTS_DIR and quick.name == "tree_core.quick.json"
    assert quick.is_relative_to(Path(tempfile.gettempdir()))
    assert results_path("tree_core", quick=True, out=str(tmp_path / "x.json")) == tmp_path / "x.json"


def test_quick_tree_core_run_leaves_the_committed_json(tmp_path):
    committed = RESULTS_DIR / "tree_core.json"
    before = hashlib.sha256(committed.read_bytes()).hexdigest()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "benchmarks/tree_core.py", "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "reasoner-bench" / "tree_core.quick.json").exists()
    assert hashlib.sha256(committed.read_bytes()).hexdigest() == before
