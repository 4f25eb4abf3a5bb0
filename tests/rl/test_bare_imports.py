"""The learners must run on a bare GPU machine with only torch + transformers: importing them (and
the CLI module) must not pull in TRL, peft, Ray or OmegaConf."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_learner_modules_import_without_trl_peft_ray_omegaconf():
    code = ("import sys; import rl.losses, rl.data, rl.training, rl.learners.step_dpo, rl.learners.oreo, "
            "reasoner.value_model, reasoner.lora, launch.train; "
            "print(sorted(m for m in ('trl', 'peft', 'ray', 'omegaconf', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_learners_benchmark_imports_without_ray_omegaconf_trl():
    """benchmarks/learners.py (--device cuda on a bare GPU machine): every module it imports, at the top or
    inside a function (read from its source), loads without TRL, peft, Ray or OmegaConf."""
    import ast
    tree = ast.parse((ROOT / "benchmarks" / "learners.py").read_text())
    mods = sorted({a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
                  | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0})
    assert {"rl.learners.oreo", "rl.learners.step_dpo", "rl.learners.sft", "search.mcts"} <= set(mods)
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {mods!r}]; "
            "print(sorted(m for m in ('trl', 'peft', 'ray', 'omegaconf', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
