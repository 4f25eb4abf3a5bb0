"""The main job end to end on Ray (loopback only): `ray job submit`, resume after a kill, a dead actor.

Each test runs the smoke recipe (configs/arith_smoke.yaml); the resume and actor-failure tests
start from the committed tiny policy to skip SFT. Ray is bound to 127.0.0.1 and every cluster a
test starts is stopped by it.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from reasoner.records import SearchTrace, StepPair, Trajectory, read_records

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "tests" / "data" / "tiny_arith_policy"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
       "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_run(run: Path, iterations: int, problems: int) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    assert [it["iteration"] for it in summary["iterations"]] == list(range(iterations + 1))
    for it in summary["iterations"]:
        assert "greedy" in it["eval"] and 0.0 <= it["eval"]["greedy"]["accuracy"] <= 1.0
        assert it["eval"]["greedy"]["generated_tokens"] > 0
    for k in range(1, iterations + 1):
        traces = read_records(run / f"iter_{k:03d}" / "records" / "traces.parquet", SearchTrace)
        assert len(traces) == problems and len({t.problem_id for t in traces}) == problems
        trajs = read_records(run / f"iter_{k:03d}" / "records" / "trajectories.parquet", Trajectory)
        assert trajs and {t.policy_version for t in trajs} == {k - 1}
        if (run / f"iter_{k:03d}" / "records" / "pairs.parquet").exists():
            pairs = read_records(run / f"iter_{k:03d}" / "records" / "pairs.parquet", StepPair)
            assert len({(p.problem_id, p.depth) for p in pairs}) == len(pairs)
        manifest = json.loads((run / f"iter_{k:03d}" / "manifest.json").read_text())
        assert Path(manifest["policy"]).exists() and Path(manifest["value"]).exists()
    assert (run / "plots" / "accuracy_per_iteration.png").stat().st_size > 1000
    assert (run / "plots" / "accuracy_vs_tokens.png").stat().st_size > 1000
    assert any((run / "tensorboard").iterdir()) and (run / "config.yaml").exists()
    assert not list(run.rglob("*.tmp"))
    return summary


def _iterate_cmd(run: Path, *overrides: str) -> list[str]:
    return [sys.executable, "launch/iterate.py", "--config", "configs/arith_smoke.yaml", "--run-dir", str(run),
            "--quiet", f"model.policy={POLICY}", *overrides]


def _stop_cluster(*markers: str) -> None:
    """SIGKILL the processes of one test cluster (command line holds its temp dir or GCS address)
    and their children; `ray stop` would also stop every other Ray cluster on the machine."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes().decode(errors="replace")
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            procs[int(d)] = (cmd, ppid)
    found = {p for p, (cmd, _) in procs.items() if any(m in cmd for m in markers)} - {os.getpid()}
    todo = list(found)
    while todo:
        parent = todo.pop()
        for p, (_, ppid) in procs.items():
            if ppid == parent and p not in found:
                found.add(p)
                todo.append(p)
    for p in found:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_readme_cluster_commands_and_a_too_small_cluster(tmp_path):
    """The README's cluster commands (`make cluster`, `make submit`), as a new user runs them: the
    venv's `ray`/`python`, RAY_AUTH_MODE=token for both, a fresh HOME (no token yet). A 2-CPU
    cluster cannot hold the smoke recipe's 3 actors: the job stops at once with one line; with
    one rollout worker it runs to the end."""
    port, dash = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: unix socket paths are capped
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in ENV.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), MPLCONFIGDIR=str(tmp_path / "mpl"))
    make = ["make", "-s", f"VENV={BIN.parent}", f"RAY_PORT={port}", f"DASHBOARD_PORT={dash}", f"RAY_TEMP={temp}"]
    started = subprocess.run([*make, "cluster", "CPUS=2"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=180)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        assert (home / ".ray" / "auth_token").exists()  # token auth is on, with a token
        assert "192." not in started.stdout  # loopback only
        run = tmp_path / "run"
        short = subprocess.run([*make, "submit", "CONFIG=configs/arith_smoke.yaml", f"RUN_DIR={tmp_path / 'short'}"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert short.returncode != 0
        assert ("error: the Ray cluster has 2 CPUs but the workers block asks for 3 "
                "(workers.rollout 2 x 1 + workers.learner 1 x 1)") in short.stdout + short.stderr
        proc = subprocess.run([*make, "submit", "CONFIG=configs/arith_smoke.yaml", f"RUN_DIR={run}",
                               "ARGS=--quiet workers.rollout.count=1"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=500)
        assert proc.returncode == 0 and "succeeded" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "iteration" in proc.stdout  # the final table came back through the job logs
        summary = _check_run(run, iterations=1, problems=8)
        assert summary["iterations"][0]["eval"]["greedy"]["n"] == 16
        assert (run / "checkpoints" / "sft" / "model.safetensors").exists()  # SFT from scratch ran in the job
    finally:
        _stop_cluster(temp, f"127.0.0.1:{port}")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_after_the_driver_is_killed(tmp_path):
    run = tmp_path / "run"
    cmd = _iterate_cmd(run, "iterate.iterations=2")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while not (run / "iter_001" / "manifest.json").exists():
            assert proc.poll() is None and time.time() < deadline, "iteration 1 never committed"
            time.sleep(0.5)
        first = {p.name: _digest(p) for p in (run / "iter_001" / "records").iterdir()}
        while not (run / "iter_002").exists():   # iteration 2 has started writing
            assert time.time() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (run / "iter_002" / "manifest.json").exists(), "killed before iteration 2 committed"
    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout
    _check_run(run, iterations=2, problems=8)
    assert {p.name: _digest(p) for p in (run / "iter_001" / "records").iterdir()} == first
    # the two iterations searched different, fresh problems
    ids = [{t.problem_id for t in read_records(run / f"iter_00{k}" / "records" / "traces.parquet", SearchTrace)}
           for k in (1, 2)]
    assert not ids[0] & ids[1]
    # a finished run is not redone
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "resuming" in done.stdout and "rollout" not in done.stdout


def test_a_dead_rollout_actor_is_restarted_and_its_chunk_redone(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "killed.txt"
    cmd = [sys.executable, "tests/support/fault_iterate.py", str(marker), *_iterate_cmd(run)[2:]]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert marker.exists(), "the fault was injected (a rollout worker process died)"
    _check_run(run, iterations=1, problems=8)


def test_config_errors_and_config_drift(tmp_path):
    bad = subprocess.run([sys.executable, "launch/iterate.py", "--config", "configs/arith_smoke.yaml",
                          "--run-dir", str(tmp_path / "r"), "iterate.iteratoins=2"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown key 'iterate.iteratoins'" in bad.stderr
    (tmp_path / "r").mkdir(exist_ok=True)
    (tmp_path / "r" / "config.yaml").write_text("seed: 1\n")
    drift = subprocess.run(_iterate_cmd(tmp_path / "r"), cwd=ROOT, env=ENV, capture_output=True, text=True,
                           timeout=60)
    assert drift.returncode == 2 and "different config" in drift.stderr
