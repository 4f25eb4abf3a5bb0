"""End to end through the CLIs: train the tiny policy for a few steps, evaluate it, and fail cleanly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # CLI subprocesses that train or evaluate: minutes on 2 cores

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_train_then_evaluate(tmp_path):
    out = tmp_path / "sft"
    _run("launch.train_sft", "--config", "configs/arith_tiny.yaml", "--out", str(out), "--quiet",
         "sft.steps=30", "sft.warmup_steps=5")
    info = json.loads((out / "training_info.json").read_text())
    assert info["steps"] == 30 and info["final_loss"] < 5.0
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert list((out / "tensorboard").iterdir()), "TensorBoard events written"
    # rerunning the same command finds the finished checkpoint (resumable, idempotent)
    again = _run("launch.train_sft", "--config", "configs/arith_tiny.yaml", "--out", str(out), "--quiet",
                 "sft.steps=30", "sft.warmup_steps=5")
    assert "nothing to do" in again.stdout

    res = tmp_path / "eval.json"
    proc = _run("launch.evaluate", "--model", str(out), "--task", "arith", "--method", "greedy", "--limit", "20",
                "--out", str(res))
    assert "accuracy" in proc.stdout
    payload = json.loads(res.read_text())
    assert payload["n"] == 20 and 0.0 <= payload["accuracy"] <= 1.0
    assert payload["generated_tokens"] > 0 and payload["wall_s"] > 0
    rows = [json.loads(line) for line in res.with_suffix(".responses.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and all(set(r) >= {"problem_id", "response", "correct", "reference"} for r in rows)
    assert sum(r["correct"] for r in rows) == round(payload["accuracy"] * 20)


def test_sft_resumes_from_state(tmp_path):
    out = tmp_path / "sft"
    args = ["launch.train_sft", "--config", "configs/arith_tiny.yaml", "--out", str(out), "--quiet",
            "sft.warmup_steps=2", "sft.save_every=4"]
    _run(*args, "sft.steps=8")
    # pretend the 12-step run was interrupted after step 8: same state file, longer budget
    (out / "training_info.json").unlink()
    proc = _run(*args, "sft.steps=12")
    assert json.loads((out / "training_info.json").read_text())["steps"] == 12, proc.stdout


def test_trained_policy_scores_well(trained_policy_dir, tmp_path):
    res = tmp_path / "e.json"
    _run("launch.evaluate", "--model", str(trained_policy_dir), "--task", "arith", "--limit", "100", "--out", str(res))
    assert json.loads(res.read_text())["accuracy"] > 0.3


@pytest.mark.parametrize("args,needle", [
    (["--model", "/nonexistent/ckpt", "--task", "arith", "--limit", "2"], "does not exist"),
    (["--model", "{policy}", "--task", "gsm8k", "--data", "/nonexistent.jsonl", "--limit", "2"], "error:"),
    (["--model", "{policy}", "--task", "arith", "--limit", "0"], "no problems"),
    (["--model", "{policy}", "--task", "arith", "--method", "vote", "--limit", "2"], "unknown method"),
])
def test_cli_errors_are_one_line(args, needle, tiny_policy_dir):
    args = [a.replace("{policy}", str(tiny_policy_dir)) for a in args]
    proc = _run("launch.evaluate", *args, check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_unknown_task_exits_nonzero(tiny_policy_dir):
    proc = _run("launch.evaluate", "--model", str(tiny_policy_dir), "--task", "chess", check=False)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_sft_fine_tunes_a_checkpoint_on_gsm8k_style_jsonl(tiny_policy_dir, tmp_path):
    """The same script fine-tunes any HF checkpoint on GSM8K-format jsonl (here the tiny random model)."""
    out = tmp_path / "ft"
    data = Path(__file__).resolve().parents[1] / "data" / "gsm8k_sample.jsonl"
    _run("launch.train_sft", "--config", "configs/arith_tiny.yaml", "--out", str(out), "--quiet",
         "--data", str(data), f"model.policy={tiny_policy_dir}", "task.name=gsm8k", "sft.steps=2",
         "sft.batch_size=2", "sft.warmup_steps=1")
    info = json.loads((out / "training_info.json").read_text())
    assert info["steps"] == 2 and (out / "model.safetensors").exists()
    bad = _run("launch.train_sft", "--config", "configs/arith_tiny.yaml", "--out", str(tmp_path / "x"),
               "--data", "/nonexistent.jsonl", f"model.policy={tiny_policy_dir}", "task.name=gsm8k", check=False)
    assert bad.returncode == 2 and "error:" in bad.stderr
