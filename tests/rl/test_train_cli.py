"""`python -m launch.train`: a subprocess run, resume by rerunning, overrides, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launch.train import build_config, main
from reasoner.records import write_records

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path, pairs, trajectories):
    paths = {"pairs": write_records(tmp_path / "pairs.jsonl", pairs),
             "trajs": write_records(tmp_path / "trajs.parquet", trajectories),
             "empty": tmp_path / "empty.jsonl", "bad": tmp_path / "bad.jsonl"}
    paths["empty"].write_text("")
    paths["bad"].write_text('{"problem_id": "x"\n')
    return paths


def _args(algo, data_path, policy, out, *extra):
    return ["--algo", algo, "--data", str(data_path), "--policy", str(policy), "--out", str(out),
            "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3", "--device", "cpu", "--quiet", *extra]


@pytest.mark.slow
def test_cli_subprocess_oreo_then_rerun_resumes(data, checkpoint, tmp_path, capsys):
    out = tmp_path / "oreo"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "launch.train",
                           *_args("oreo", data["trajs"], checkpoint, out, "--steps", "2", "--set", "variant=step")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "step 2 (resumed from 0), 3 records" in proc.stdout
    for path in ("policy/config.json", "policy/learner_info.json", "value/value_head.safetensors",
                 "state/training_state.pt", "train_args.json"):
        assert (out / path).exists(), path
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # the same command again: resumes from the saved state, nothing left to do
    assert main(_args("oreo", data["trajs"], checkpoint, out, "--steps", "2", "--set", "variant=step")) == 0
    assert "step 2 (resumed from 2)" in capsys.readouterr().out
    # a longer budget continues from the state
    assert main(_args("oreo", data["trajs"], checkpoint, out, "--steps", "3", "--set", "variant=step")) == 0
    assert "step 3 (resumed from 2)" in capsys.readouterr().out
    # a different run in the same directory is refused
    assert main(_args("oreo", data["trajs"], checkpoint, out, "--steps", "4")) == 1
    assert "saved run differs" in capsys.readouterr().err


def test_cli_step_dpo_with_value_start_and_lora(data, checkpoint, tmp_path, capsys):
    pytest.importorskip("peft")
    out = tmp_path / "dpo"
    assert main(_args("step_dpo", data["pairs"], checkpoint, out, "--steps", "2", "--lora",
                      "--set", "lora.rank=2", "--set", "beta=0.2")) == 0
    info = json.loads((out / "policy" / "learner_info.json").read_text())
    assert (info["steps"], info["config"]["beta"], info["config"]["lora"]["rank"]) == (2, 0.2, 2)
    assert "step 2 (resumed from 0), 3 records" in capsys.readouterr().out


def test_build_config_flags_and_overrides():
    cfg = build_config("oreo", {"steps": 5, "lr": 1e-4, "variant": "response", "value_lora": True},
                       ["alpha=0.3", "adam_betas=0.9,0.99", "value_lora.rank=8"])
    assert (cfg.max_steps, cfg.policy_lr, cfg.variant.value, cfg.alpha) == (5, 1e-4, "response", 0.3)
    assert cfg.adam_betas == (0.9, 0.99) and cfg.value_lora.enabled and cfg.value_lora.rank == 8
    with pytest.raises(ValueError, match="lora.rank"):
        build_config("step_dpo", {}, ["lora.rank=0"])


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no StepPair records"),
    ("bad", "bad.jsonl:1: malformed JSON"),
    ("missing", "no such record file"),
    ("trajs", "missing field(s)"),
    ("no_policy", "is not a checkpoint directory"),
    ("value_for_dpo", "--value only apply to --algo oreo"),
    ("unknown_key", "unknown setting 'gamma'"),
])
def test_cli_clear_one_line_errors(data, checkpoint, tmp_path, capsys, case, message):
    data_path = {"missing": tmp_path / "nope.jsonl"}.get(case, data.get(case, data["pairs"]))
    policy = tmp_path / "no_such_model" if case == "no_policy" else checkpoint
    extra = {"value_for_dpo": ["--value", str(checkpoint)], "unknown_key": ["--set", "gamma=1"]}.get(case, [])
    assert main(_args("step_dpo", data_path, policy, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: ") and message in err and "\n" not in err
