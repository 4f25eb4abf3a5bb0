"""The ALFWorld path of the main job end to end on Ray (loopback only), on the 4 smallest training
games of tests/data/alfworld: BC from walkthroughs, rollouts, OREO, greedy + best-of-K evaluation,
then a rerun that resumes (nothing left to do)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoner.records import Trajectory, read_records

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "alfworld"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def test_alfworld_smoke_job_runs_and_resumes(tmp_path):
    pytest.importorskip("alfworld", reason="needs the envs extra (alfworld, textworld[pddl])")
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "launch" / "iterate.py"), "--config", str(ROOT / "configs" / "alfworld_smoke.yaml"),
           "--run-dir", str(run), "--quiet", f"alfworld_task.source={DATA}", f"alfworld_task.cache_dir={tmp_path / 'cache'}",
           "ray.num_cpus=3"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    its = summary["iterations"]
    assert [it["iteration"] for it in its] == [0, 1]
    assert set(its[0]["eval"]) == {"greedy/unseen"}                     # no critic yet: no best-of-K
    assert set(its[1]["eval"]) == {"greedy/unseen", "best_of_k@2/unseen"}
    for res in its[1]["eval"].values():
        assert res["n"] == 2 and 0.0 <= res["accuracy"] <= 1.0 and res["generated_tokens"] > 0
    trajs = read_records(run / "iter_001" / "records" / "trajectories.parquet", Trajectory)
    assert len(trajs) == 8 and {t.policy_version for t in trajs} == {0} and {t.source for t in trajs} == {"rollout"}
    assert len({t.problem_id for t in trajs}) == 4 and all(t.problem_id.startswith("alfworld/train/") for t in trajs)
    manifest = json.loads((run / "iter_001" / "manifest.json").read_text())
    assert manifest["train"]["algo"] == "oreo" and manifest["train"]["trajectories"] == 8
    for key in ("policy", "value"):
        assert (Path(manifest[key]) / "config.json").exists()
    assert (Path(manifest["policy"]) / "agent_format.json").exists()
    assert (run / "plots" / "accuracy_per_iteration.png").stat().st_size > 1000
    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "resuming" in again.stdout
    print(f"alfworld smoke job: {wall:.0f} s wall")
