"""Test-time search (search/value_guided.py): best-of-N modes, OREO beam search, MCTS, budgets, guards."""
import pytest
from search_fakes import CannedGenerator, ChainPolicy, LineCheckValue, TableValue, prompt_of

from envs.base import Problem
from reasoner.generation import FinishReason
from search.evaluators import OutcomeValue
from search.mcts import MCTSConfig
from search.value_guided import (BeamConfig, BestOfNConfig, BestOfNMode, beam_search, best_of_n, mcts_search,
                                 vote)

P = "Q: five or six?\nA:\n"
PROBLEM = Problem("fs/0", "toy", "five or six?", "5")
SAMPLES = [("x\n#### 5", (-1.0, -1.0), FinishReason.EOS), ("y\n#### 6", (-1.0,), FinishReason.EOS),
           ("z\n#### 5", (-1.0, -1.0, -1.0), FinishReason.EOS)]
VALUES = {"x\n#### 5": 0.1, "y\n#### 6": 0.9, "z\n#### 5": 0.3}


def run_bon(mode, **kw):
    gen = CannedGenerator({P: SAMPLES})
    value = None if mode == BestOfNMode.MAJORITY else TableValue(VALUES)
    out = best_of_n(gen, [P], [PROBLEM], BestOfNConfig(n=3, mode=mode, **kw), value)
    return out, gen


@pytest.mark.parametrize("mode,expect", [(BestOfNMode.MAJORITY, "z\n#### 5"),   # 5 twice; best-valued 5
                                         (BestOfNMode.WEIGHTED, "y\n#### 6"),   # .9 > .1 + .3
                                         (BestOfNMode.BEST, "y\n#### 6")])
def test_best_of_n_modes(mode, expect):
    out, gen = run_bon(mode)
    t = out.traces[0]
    if mode == BestOfNMode.MAJORITY:
        expect = "x\n#### 5"   # no values: first of the majority answer
    assert t.response == expect and t.method == f"best_of_n/{mode.value}"
    assert t.generated_tokens == 6 and out.stats.generated_tokens == 6
    assert t.model_calls == (1 if mode == BestOfNMode.MAJORITY else 2)
    assert len(t.steps[0].alternatives) == 2


def test_best_of_n_token_budget_stops_rounds():
    out, gen = run_bon(BestOfNMode.WEIGHTED, samples_per_round=1, token_budget=2)
    # round 1 draws "x ... 5" (2 tokens) and spends the budget: one sample only
    assert len(gen.calls) == 1 and out.traces[0].generated_tokens == 2 and out.traces[0].response == "x\n#### 5"
    out, gen = run_bon(BestOfNMode.WEIGHTED, samples_per_round=1)
    assert len(gen.calls) == 3


def test_vote():
    assert vote(["#### 5", "the answer is 5.", "#### 6", "no answer"]) == 0
    assert vote(["#### 5", "#### 6", "#### 6.0"], [3.0, 1.0, 1.5]) == 0
    assert vote(["#### 5", "#### 6", "#### 6.0"]) == 1             # 6 and 6.0 are one answer
    assert vote(["nothing", "nothing else"]) == 0                  # no answers: the first


def test_test_time_refuses_references(chain_problems):
    gen = ChainPolicy(chain_problems)
    prompts = [prompt_of(p) for p in chain_problems]
    with pytest.raises(ValueError, match="reference"):
        best_of_n(gen, prompts, chain_problems, BestOfNConfig(), OutcomeValue())
    with pytest.raises(ValueError, match="reference"):
        beam_search(gen, OutcomeValue(LineCheckValue()), prompts, chain_problems)
    with pytest.raises(ValueError, match="reference"):
        mcts_search(gen, OutcomeValue(), prompts, chain_problems)
    with pytest.raises(ValueError, match="training-only"):
        mcts_search(gen, LineCheckValue(), prompts, chain_problems, MCTSConfig(reference_guidance=True))
    with pytest.raises(ValueError, match="needs a value_fn"):
        best_of_n(gen, prompts, chain_problems, BestOfNConfig(mode=BestOfNMode.BEST))


def test_beam_search_follows_the_value(chain_problems):
    gen = ChainPolicy(chain_problems)
    out = beam_search(gen, LineCheckValue(), [prompt_of(p) for p in chain_problems], chain_problems,
                      BeamConfig(beam_width=2))
    assert [t.response for t in out.traces] == [p.solution for p in chain_problems]
    # rounds = longest solution (5 steps): one sampling call each, all problems batched
    assert len(gen.calls) == 5 and len(gen.calls[0][0]) == len(chain_problems)
    assert out.traces[0].steps[0].text == "3+2=5\n" and out.traces[0].steps[0].value == 0.5
    assert sum(t.generated_tokens for t in out.traces) == gen.stats.generated_tokens
    # the trace keeps what each chosen step beat: its sibling candidates from the same parent beam
    for step in out.traces[0].steps:
        assert all(text != step.text for text, _, _ in step.alternatives)
        assert all(value <= step.value for _, value, _ in step.alternatives)
    assert any(step.alternatives for t in out.traces for step in t.steps)


def test_beam_search_token_budget(chain_problems):
    p = chain_problems[3]
    out = beam_search(ChainPolicy([p]), LineCheckValue(), [prompt_of(p)], [p],
                      BeamConfig(beam_width=2, token_budget=8))
    t = out.traces[0]
    # round 1: 1 beam x 2 samples x 2 tokens; round 2: 2 x 2 x 2 -> 12 >= 8, no third round
    assert t.generated_tokens == 12 and "####" not in t.response
    assert t.response == "9+1=10\n10+1=11\n"                        # the best unfinished beam


def test_mcts_as_test_time_method(chain_problems):
    """Without the grader, terminals get the line-check value (.5 right vs .375 slip at the last
    step): a small Q gap that c = 1 and the slip's larger prior outvote at 12 simulations, so the
    exploration weight is lowered here (c = 1 needs 32 simulations on the 4-step chain)."""
    gen = ChainPolicy(chain_problems)
    out = mcts_search(gen, LineCheckValue(), [prompt_of(p) for p in chain_problems], chain_problems,
                      MCTSConfig(num_simulations=12, num_candidates=2, first_num_candidates=2, c_puct=0.3))
    assert [t.response for t in out.traces] == [p.solution for p in chain_problems]
    assert out.stats.generated_tokens == gen.stats.generated_tokens


def test_beam_keeps_distinct_candidates():
    """Sampling the same step twice must not fill the beam with copies of one partial solution:
    with width 2, both samples at the question are "a", so the beam holds one "a" beam (and
    round 2 expands it once), not two identical ones."""
    table = {P: [("a", (-1.0,), FinishReason.STOP), ("a", (-1.0,), FinishReason.STOP)],
             P + "a\n": [("#### 5", (-1.0,), FinishReason.EOS), ("#### 6", (-1.0,), FinishReason.EOS)]}
    gen = CannedGenerator(table)
    value = TableValue({"a\n": 0.9, "a\n#### 5": 0.2, "a\n#### 6": 0.8})
    out = beam_search(gen, value, [P], [PROBLEM], BeamConfig(beam_width=2, max_rounds=3))
    assert gen.calls[1][0] == [P + "a\n"]            # without dedup: [P + "a\n", P + "a\n"]
    assert len(gen.calls) == 2 and out.traces[0].response == "a\n#### 6"
