"""Item 5: the OREO critic plugs into test-time search as a ValueFn, with no change to search code.

The critic trained by `OREOLearner` is wrapped in `search.evaluators.LearnedValue` (which only needs
`values(prefixes: list[str]) -> list[float]`) and handed to value-guided beam search and MCTS over
the real HF generator of the tiny policy.
"""
from __future__ import annotations

import math

import pytest
import torch

from envs.base import Problem
from reasoner.hf_backend import HFGenerator
from reasoner.generation import GeneratorConfig
from reasoner.value_model import ValueModel
from rl.learners.oreo import OREOConfig, OREOLearner
from search.evaluators import LearnedValue, PrefixValueModel
from search.mcts import MCTSConfig
from search.value_guided import BeamConfig, beam_search, mcts_search

PROMPT = "q: 2+3\n"
PROBLEM = Problem("t/0", "toy", "2+3", "5")


@pytest.fixture
def trained(make_model, tok, trajectories):
    policy = make_model(0)
    learner = OREOLearner(policy, make_model(0), ValueModel.from_policy(policy), tok,
                          OREOConfig(policy_lr=1e-2, value_lr=1e-2, batch_size=3, grad_accum=1, max_steps=3,
                                     device="cpu", max_len=64))
    learner.fit(trajectories, progress=False)
    return learner


def test_oreo_value_guides_beam_search(trained, tok):
    vm = trained.value.eval()
    assert isinstance(vm, PrefixValueModel)
    gen = HFGenerator(trained.policy, tok, GeneratorConfig(device="cpu", seed=0))
    out = beam_search(gen, LearnedValue(vm), [PROMPT], [PROBLEM],
                      BeamConfig(beam_width=2, max_rounds=3, max_step_tokens=6))
    trace = out.traces[0]
    assert trace.steps and trace.response == "".join(s.text for s in trace.steps)
    # every value the search recorded is the critic's value of prompt + response so far
    prefixes = [PROMPT + "".join(s.text for s in trace.steps[:k + 1]) for k in range(len(trace.steps))]
    assert [s.value for s in trace.steps] == pytest.approx(vm.values(prefixes), abs=1e-5)
    assert len({round(v, 6) for v in vm.values([PROMPT, PROMPT + "2", PROMPT + "#"])}) == 3   # trained, not 0


def test_oreo_value_drives_mcts(trained, tok):
    gen = HFGenerator(trained.policy, tok, GeneratorConfig(device="cpu", seed=0))
    calls = []

    class Recording:
        def values(self, prefixes):
            calls.append(list(prefixes))
            return trained.value.values(prefixes)

    cfg = MCTSConfig(num_simulations=2, first_decision_multiplier=1, first_num_candidates=2, num_candidates=2,
                     depth_limit=2, max_steps=3, max_step_tokens=6)
    out = mcts_search(gen, LearnedValue(Recording()), [PROMPT], [PROBLEM], cfg)
    assert out.traces[0].steps and calls and all(p.startswith(PROMPT) for batch in calls for p in batch)
    assert all(math.isfinite(s.value) for s in out.traces[0].steps)
    with torch.no_grad():
        assert trained.value.values([PROMPT])[0] != 0.0
