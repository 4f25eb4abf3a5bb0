"""`iterate.rollout_value`: every way of valuing non-terminal MCTS nodes runs a real rollout.

The committed tiny policy searches two arithmetic problems with each mode (no Ray: the plain
`PolicyWorker`). Outcome mode leaves inner nodes at 0; the others give inner nodes the value they
name (self-evaluation probabilities in (0, 1), the critic's numbers, or their mixture), and
terminals always get the grader's R in {0, 1}. The tiny model was never taught to judge, so its
self-evaluation is a code-path check here, not a useful signal.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from configs.schema import RolloutValue
from envs.arith import load_arith
from launch.config import load_config
from launch.workers import PolicyWorker
from search.evaluators import LearnedValue, MixtureValue, SelfEvalValue

ROOT = Path(__file__).resolve().parents[2]
POLICY = str(ROOT / "tests" / "data" / "tiny_arith_policy")


@pytest.fixture(scope="module")
def value_dir(tmp_path_factory):
    import torch

    from reasoner.loading import load_tokenizer
    from reasoner.value_model import ValueModel
    vm = ValueModel.from_policy(POLICY, load_tokenizer(POLICY))
    with torch.no_grad():
        vm.value_head.weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(0))
    return str(vm.save_pretrained(tmp_path_factory.mktemp("value") / "value"))


def _worker(mode: str) -> PolicyWorker:
    cfg = load_config(str(ROOT / "configs" / "arith_smoke.yaml"),
                      [f"iterate.rollout_value={mode}", "iterate.self_eval_weight=0.25", "mcts.num_simulations=2",
                       "mcts.first_decision_multiplier=1", "generator.device=cpu",
                       # the tiny model's closed vocabulary has no "correct"/"incorrect": two words it has
                       "self_eval.correct= more", "self_eval.incorrect= away"])
    return PolicyWorker(cfg)


@pytest.mark.parametrize("mode", [m.value for m in RolloutValue])
def test_each_rollout_value_runs(mode, value_dir, monkeypatch):
    worker = _worker(mode)
    captured = {}
    import search.mcts as mcts
    real_result = mcts.StepMCTS._result

    def keep_tree(self, run):
        captured["tree"] = run.tree
        return real_result(self, run)

    monkeypatch.setattr(mcts.StepMCTS, "_result", keep_tree)
    out = worker.rollout(load_arith("train", 2, seed=5), POLICY, 0, value_dir)
    assert out.stats["problems"] == 2 and out.trajectories
    tree = captured["tree"]
    used = np.arange(tree.raw_value.shape[1])[None, :] < tree.num_nodes[:, None]
    inner = used & ~tree.is_terminal
    inner[:, 0] = False                                     # the root has no value
    terminal = used & tree.is_terminal
    assert np.isin(tree.raw_value[terminal], [0.0, 1.0]).all()
    inner_values = tree.raw_value[inner]
    assert inner_values.size > 0
    if mode == "outcome":
        assert (inner_values == 0).all()
    else:
        assert (inner_values != 0).any()
    if mode == "self_eval":
        assert ((inner_values > 0) & (inner_values < 1)).all()


def test_rollout_estimate_per_mode(value_dir):
    expect = {"outcome": type(None), "learned": LearnedValue, "self_eval": SelfEvalValue, "mixture": MixtureValue}
    for mode, kind in expect.items():
        worker = _worker(mode)
        worker.load(POLICY, 0, value_dir)
        assert isinstance(worker._rollout_estimate(), kind), mode
    mix = _worker("mixture")
    mix.load(POLICY, 0, value_dir)
    assert [w for _, w in mix._rollout_estimate().parts] == [0.25, 0.75]
    # before a value exists: learned -> outcome only, mixture -> self-evaluation alone
    for mode, kind in (("learned", type(None)), ("mixture", SelfEvalValue)):
        worker = _worker(mode)
        worker.load(POLICY, 0, None)
        assert isinstance(worker._rollout_estimate(), kind), mode
