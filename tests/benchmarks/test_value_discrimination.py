"""benchmarks/value_discrimination.py: AUC, the likelihood variants and their discrimination rows by hand."""
import importlib.util
import math
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("bench_value_discrimination",
                                                  ROOT / "benchmarks" / "value_discrimination.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_value_discrimination"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_auc_counts_ties_half():
    b = _bench()
    assert b.auc([0.9, 0.5], [0.5, 0.1]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert b.auc([], [0.1]) is None


def test_likelihood_variants_by_hand():
    v = _bench().LIKELIHOOD_VARIANTS
    lp = [-0.1, -2.0, -0.5, -0.2]
    assert v["geometric_mean"](lp) == pytest.approx(math.exp(-2.8 / 4))
    assert v["sequence"](lp) == pytest.approx(math.exp(-2.8))
    assert v["min_token"](lp) == pytest.approx(math.exp(-2.0))
    assert v["bottom3_mean"](lp) == pytest.approx(math.exp(statistics.mean([-2.0, -0.5, -0.2])))
    assert v["tokens_below_e-1"](lp) == pytest.approx(0.5)
    assert v["last8_mean"](lp) == pytest.approx(math.exp(-0.7))


def test_variant_rows_rank_within_a_problem():
    """One problem, 8 samples: the correct ones have one unlikely token fewer; min_token ranks them perfectly."""
    from reasoner.records import Trajectory
    b = _bench()
    rewards = [1, 0, 1, 0, 0, 0, 1, 0]
    held = [Trajectory(problem_id="p", policy_version=0, source="sample", prompt="Q", steps=(f"s{i}",),
                       observations=("",), reward=float(r)) for i, r in enumerate(rewards)]
    # correct: tokens (-0.1, -0.1, -0.1); wrong: (-0.01, -0.01, -3.0) -> higher mean for... neither; min separates
    lps = {f"s{i}": ([-0.1, -0.1, -0.1] if r else [-0.01, -0.01, -3.0]) for i, r in enumerate(rewards)}

    class Gen:
        def logprobs(self, prompts, responses):
            return [SimpleNamespace(logprobs=lps[r]) for r in responses]

    rows = b.likelihood_variants(Gen(), held)
    assert rows["min_token"]["within_problem_auc"] == 1.0 and rows["min_token"]["bon_accuracy"] == 1.0
    assert rows["geometric_mean"]["within_problem_auc"] == 1.0      # mean -0.1 vs -1.0067
    assert rows["last8_mean"]["within_problem_auc"] == 1.0
