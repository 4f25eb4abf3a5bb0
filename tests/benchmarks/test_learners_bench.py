"""benchmarks/learners.py: the iterated comparison's statistics by hand, and a tiny end-to-end run."""
import importlib.util
import json
import math
import os
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_learners", ROOT / "benchmarks" / "learners.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_learners"] = mod   # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_compare_se_has_seed_and_problem_noise():
    b = _bench()
    # 2 seeds x 4 problems; per-seed differences 0.5 and 0.25; seed-averaged per-problem diffs
    per_seed = [{"methods": {"a": {"correct": [1, 1, 0, 1]}, "b": {"correct": [0, 1, 0, 0]}}},
                {"methods": {"a": {"correct": [1, 0, 1, 0]}, "b": {"correct": [1, 0, 0, 0]}}}]
    c = b.compare(per_seed, "a", "b")
    d_prob = [0.5, 0.0, 0.5, 0.5]
    se = math.sqrt(statistics.variance([0.5, 0.25]) / 2 + statistics.variance(d_prob) / 4)
    assert c["mean"] == pytest.approx(0.375) and c["se"] == pytest.approx(round(se, 4))
    assert c["per_seed"] == [0.5, 0.25]


def test_aggregate_per_iteration_curve():
    b = _bench()
    rows = [{"methods": {"rft": {"accuracy": 0.5, "correct": [1, 0], "train_tokens": 10, "train": [{}],
                                 "per_iteration": [0.5, 0.5]}}},
            {"methods": {"rft": {"accuracy": 1.0, "correct": [1, 1], "train_tokens": 30, "train": [{}],
                                 "per_iteration": [0.5, 1.0]}}}]
    m = b.aggregate(rows)["rft"]
    assert m["accuracy_mean"] == 0.75 and m["generated_tokens"] == 20
    assert m["accuracy_se"] == round(math.sqrt(statistics.variance([0.5, 1.0]) / 2 + 0.75 * 0.25 / 2), 4)
    assert [r["accuracy_mean"] for r in m["per_iteration"]] == [0.5, 0.75]
    assert m["per_iteration"][0]["accuracy_se"] == round(math.sqrt(0.25 / 2), 4)


@pytest.mark.slow
def test_tiny_iterated_run_writes_the_result_keys(tmp_path):
    b = _bench()
    out = tmp_path / "learners.json"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    assert b.main(["--quick", "--train-problems", "12", "--iterations", "1", "--test-problems", "16",
                   "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["iterations"] == 1 and d["seeds"] == [0]
    for name in ("sft", "step_dpo", "rft", "response_dpo", "majority", "value_bon", "value_beam"):
        assert {"accuracy_mean", "accuracy_se", "generated_tokens"} <= set(d["methods"][name])
    for name in ("step_dpo", "rft", "response_dpo"):
        assert len(d["methods"][name]["per_iteration"]) == 2    # SFT + one round
        assert d["methods"][name]["generated_tokens"] > 0
    # equal generated tokens per round: sampling stops within one round of samples of the MCTS budget
    rnd = d["per_seed"][0]["rounds"][0]["data"]
    assert rnd["rft"]["rs_tokens"] >= rnd["mcts"]["mcts_tokens"]
