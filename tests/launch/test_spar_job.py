"""The SPaR recipe of the main job end to end on Ray (loopback): smoke run, and resume after a kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoner.records import StepPair, read_records
from search.spar_data import RefinerExample

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
       "RAY_USAGE_STATS_ENABLED": "0"}


def _cmd(run: Path, *overrides: str) -> list[str]:
    return [sys.executable, "launch/iterate.py", "--config", "configs/spar_smoke.yaml", "--run-dir", str(run),
            "--quiet", *overrides]


def _check(run: Path, iterations: int) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    assert [it["iteration"] for it in summary["iterations"]] == list(range(iterations + 1))
    for it in summary["iterations"]:
        for m in ("greedy", "refine@1"):
            r = it["eval"][m]
            assert r["n"] == 8 and 0.0 <= r["accuracy"] <= r["prompt_loose"] <= 1.0 and r["generated_tokens"] > 0
        assert it["judge"]["n"] == 8 and 0.0 <= it["judge"]["accuracy"] <= 1.0
    for k in range(1, iterations + 1):
        ro = summary["iterations"][k]["rollout"]
        assert ro["prompts"] == 8 and ro["samples"] == 24 and ro["generated_tokens"] > 0
        assert 0.0 <= ro["refine_success_checker"] <= 1.0
        recs = run / f"iter_{k:03d}" / "records"
        if (recs / "pairs.parquet").exists():
            pairs = read_records(recs / "pairs.parquet", StepPair)
            assert {p.policy_version for p in pairs} == {k - 1} and all(p.chosen != p.rejected for p in pairs)
        if (recs / "refiner_examples.parquet").exists():
            ex = read_records(recs / "refiner_examples.parquet", RefinerExample)
            assert len({e.prompt for e in ex}) == len(ex)
        manifest = json.loads((run / f"iter_{k:03d}" / "manifest.json").read_text())
        assert Path(manifest["policy"]).exists() and Path(manifest["refiner"]).exists()
    assert (run / "plots" / "accuracy_per_iteration.png").exists() and any((run / "tensorboard").iterdir())
    return summary


def test_spar_smoke_run(tmp_path):
    t0 = time.time()
    proc = subprocess.run(_cmd(tmp_path / "run"), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SPaR iteration 1" in proc.stdout and "refiner judge accuracy" in proc.stdout
    summary = _check(tmp_path / "run", 1)
    assert (tmp_path / "run" / "checkpoints" / "sft" / "model.safetensors").exists()
    assert summary["iterations"][1]["train"]["dpo"] is None or summary["iterations"][1]["train"]["dpo"]["steps"] == 2
    print(f"SPaR smoke run: {time.time() - t0:.0f} s")


def test_spar_resume_after_the_driver_is_killed(tmp_path):
    run = tmp_path / "run"
    cmd = _cmd(run, "iterate.iterations=2")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 400
        while not (run / "iter_001" / "manifest.json").exists():
            assert proc.poll() is None and time.time() < deadline, "iteration 1 never committed"
            time.sleep(0.5)
        first = json.loads((run / "iter_001" / "manifest.json").read_text())
        while not (run / "iter_002").exists():
            assert time.time() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (run / "iter_002" / "manifest.json").exists()
    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout and "SPaR iteration 2" in again.stdout
    _check(run, 2)
    assert json.loads((run / "iter_001" / "manifest.json").read_text()) == first
