"""The ONI job end to end on MiniHack (configs/oni_smoke.yaml: 3 x 1024 env steps with ONI on):
killed after its first committed iteration, resumed by rerunning the same command, then the
trained agent is evaluated. About 2 min on 2 idle cores (two job starts), 5.5 min under heavy load."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("minihack", reason="needs the envs extra")
pytest.importorskip("ray.rllib", reason="needs the oni extra")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def test_oni_smoke_run_resumes_after_kill_and_evaluates(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "launch/iterate.py", "--config", "configs/oni_smoke.yaml", "--run-dir", str(run), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 420
        while not (run / "iter_001" / "manifest.json").exists():
            assert proc.poll() is None and time.time() < deadline, "iteration 1 never committed"
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = json.loads((run / "iter_001" / "manifest.json").read_text())
    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=480)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout and "distilling" not in again.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert [it["iteration"] for it in summary["iterations"]] == [0, 1, 2, 3]
    assert json.loads((run / "iter_001" / "manifest.json").read_text()) == first   # committed work kept
    steps = [it["metrics"]["env_steps"] for it in summary["iterations"][1:]]
    assert steps[0] >= 1024 and steps[0] < steps[1] < steps[2] and steps[2] >= 3072   # resumed, not restarted
    last = summary["iterations"][-1]["metrics"]
    assert last["messages_seen"] > 0 and last["labels"] > 0 and 0.0 <= last["label_coverage"] <= 1.0
    labels = json.loads((run / "iter_003" / "labels.json").read_text())
    assert len(labels) == last["labels"] and set(labels.values()) <= {0, 1}
    assert (run / "plots" / "oni_returns.png").stat().st_size > 1000
    assert any((run / "tensorboard").iterdir())
    agent = run / "checkpoints" / "agent_3"
    out = tmp_path / "eval.json"
    ev = subprocess.run([sys.executable, "-m", "launch.evaluate", "--task", "nethack", "--model", str(agent),
                         "--episodes", "2", "--out", str(out)], cwd=ROOT, env=ENV, capture_output=True, text=True,
                        timeout=120)
    assert ev.returncode == 0, ev.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["env"] == "MiniHack-KeyRoom-S5-v0" and res["episodes"] == 2 and len(res["per_episode"]) == 2
    assert res["mean_steps"] > 0 and "median_score" in res and 0.0 <= res["success_rate"] <= 1.0
