"""Step-level MCTS (search/mcts.py): a hand-computed bandit, the arithmetic-chain toy, batching.

The bandit's visit counts and Q values are computed by hand in `test_bandit_hand_computed`;
the chain toy has one right step per position that a greedy policy never takes.
"""
import math

import numpy as np
import pytest
from search_fakes import CannedGenerator, ChainPolicy, LineCheckValue, TableValue, prompt_of

from envs.base import Problem
from reasoner.generation import FinishReason
from search.core import compiled_core
from search.evaluators import OutcomeValue
from search.mcts import MCTSConfig, StepMCTS, step_prior, step_text
from search.tree import Tree

BANDIT_PROMPT = "Q: pick an arm\nA:\n"
BANDIT = Problem(id="bandit", task="toy", question="pick an arm", answer="")


def bandit_search(cfg: MCTSConfig):
    gen = CannedGenerator({BANDIT_PROMPT: [("A", (math.log(0.5),), FinishReason.EOS),
                                           ("B", (math.log(0.3),), FinishReason.EOS),
                                           ("C", (math.log(0.2),), FinishReason.EOS)]})
    value = TableValue({"A": 0.2, "B": 0.6, "C": 0.5})
    return StepMCTS(gen, value, cfg).search([BANDIT_PROMPT], [BANDIT]), gen, value


@pytest.mark.parametrize("use_twin", [True, False])
def test_bandit_hand_computed(use_twin):
    """Three terminal arms, priors .5/.3/.2, values .2/.6/.5, c = 1, six simulations.

    Q(arm) = r = v(arm) - v(root) = v(arm) (terminal: V = 0). PUCT score Q + p sqrt(N)/(1 + n):
      sim 1: N=0, scores = Q                         -> B   (the expansion happens here)
      sim 2: N=1: A .2+.5/1=.70  B .6+.3/2=.75  C .5+.2/1=.70           -> B
      sim 3: N=2: A .2+.5*1.414=.907  B .6+.3*1.414/3=.741  C .5+.2*1.414=.783 -> A
      sim 4: N=3: A .2+.5*1.732/2=.633  B .6+.3*1.732/3=.773  C .5+.2*1.732=.846 -> C
      sim 5: N=4: A .2+.5*2/2=.70  B .6+.3*2/3=.80  C .5+.2*2/2=.70      -> B
      sim 6: N=5: A .2+.5*2.236/2=.759  B .6+.3*2.236/4=.768  C .5+.2*2.236/2=.724 -> B
    so N = (A 1, B 4, C 1), root N = 6, V(root) = (.2 + 4*.6 + .5) / 6, and B is committed.
    """
    if not use_twin and compiled_core() is None:
        pytest.skip("extension not built")
    cfg = MCTSConfig(num_simulations=6, first_decision_multiplier=1, first_num_candidates=3, c_puct=1.0,
                     use_twin=use_twin)
    res, gen, value = bandit_search(cfg)
    t = res.tree
    kids = t.child_ids(0, Tree.ROOT)
    assert [t.step_text[0][k] for k in kids] == ["A", "B", "C"]
    assert t.visits[0, kids].tolist() == [1, 4, 1]
    assert t.visits[0, Tree.ROOT] == 6
    np.testing.assert_allclose(t.q[0, kids], [0.2, 0.6, 0.5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(t.prior[0, kids], [0.5, 0.3, 0.2], rtol=1e-12)
    assert t.value[0, Tree.ROOT] == pytest.approx(3.1 / 6, abs=1e-12)
    assert t.pending.sum() == 0
    assert res.traces[0].response == "B" and res.committed[0] == [0, kids[1]]
    assert res.simulations == [6]
    step = res.traces[0].steps[0]
    assert (step.text, step.visits, step.alternatives) == ("B", 4, (("A", 0.2, 1), ("C", 0.5, 1)))
    assert len(gen.calls) == 1 and len(value.calls) == 1          # one expansion, one value call
    assert res.traces[0].generated_tokens == 3 and res.traces[0].model_calls == 2


def test_bandit_one_expansion_per_simulation():
    """rollout_to_depth_limit=False (AlphaZero): simulation 1 only expands the root and backs up
    V(root) = mean r; then N=1: A .7 B .9 C .7 -> B; N=2: A .907 B .812 C .783 -> A;
    N=3: A .633 B .860 C .846 -> B; N=4: A .7 B .8 C .9 -> C; N=5: A .759 B .824 C .724 -> B."""
    cfg = MCTSConfig(num_simulations=6, first_decision_multiplier=1, first_num_candidates=3,
                     rollout_to_depth_limit=False)
    res, _, _ = bandit_search(cfg)
    t = res.tree
    kids = t.child_ids(0, Tree.ROOT)
    assert t.visits[0, kids].tolist() == [1, 3, 1] and t.visits[0, Tree.ROOT] == 6
    assert t.value[0, Tree.ROOT] == pytest.approx((0.2 + 3 * 0.6 + 0.5) / 5, abs=1e-12)
    assert res.traces[0].response == "B"


def test_step_text_and_prior():
    assert step_prior([math.log(0.25)] * 2, 1.0) == pytest.approx(0.25)
    assert step_prior([-1.0, -1.0, -1.0, -1.0], 1.25) == pytest.approx(math.exp(-4 / 4 ** 1.25))
    assert step_prior([], 1.25) == 1.0
    gen = CannedGenerator({"p": [("x=1", (-1.0,), FinishReason.STOP), ("#### 1", (-1.0,), FinishReason.EOS)]})
    from reasoner.generation import SamplingParams
    a, b = gen.generate(["p"], SamplingParams(n=2, stop=("\n",)))[0]
    assert (step_text(a), step_text(b)) == ("x=1\n", "#### 1")


def chain_search(problems, cfg, propose_right=True, estimate=True):
    """MCTS on the chain toy: outcome at terminals, the line check (or 0) elsewhere."""
    gen = ChainPolicy(problems, propose_right=propose_right)
    mcts = StepMCTS(gen, OutcomeValue(LineCheckValue() if estimate else None), cfg)
    return mcts.search([prompt_of(p) for p in problems], problems), gen


def test_chain_toy_mcts_finds_the_right_steps_greedy_does_not(chain_problems):
    """A step-level value below the depth limit (3 < 5 steps) guides the search to the right chain."""
    cfg = MCTSConfig(num_simulations=12, first_num_candidates=2, num_candidates=2, depth_limit=3)
    res, gen = chain_search(chain_problems, cfg)
    assert [t.response for t in res.traces] == [p.solution for p in chain_problems]
    # greedy decoding of the same policy slips at every step
    from reasoner.generation import SamplingParams
    for p in chain_problems:
        text = ""
        for _ in range(6):
            c = gen.generate([prompt_of(p) + text], SamplingParams(temperature=0, stop=("\n",)))[0][0]
            text += step_text(c)
            if c.finish_reason == FinishReason.EOS:
                break
        assert text != p.solution and text.startswith(p.solution.split("=")[0])


def test_outcome_only_search_within_reach(chain_problems):
    """Pure outcome value: when the depth limit reaches the answer line the right chain is found."""
    cfg = MCTSConfig(num_simulations=16, first_num_candidates=2, num_candidates=2, depth_limit=5)
    res, _ = chain_search(chain_problems, cfg, estimate=False)
    assert [t.response for t in res.traces] == [p.solution for p in chain_problems]
    # Q of the committed first step is the (telescoped) outcome of the leaves below it: > 0
    first = res.traces[0].steps[0]
    assert first.value > 0 and all(q <= first.value for _, q, _ in first.alternatives)


def test_batched_equals_serial(chain_problems):
    """Lock-step batching over problems changes nothing when each tree runs one simulation at a time."""
    cfg = MCTSConfig(num_simulations=5, first_num_candidates=2, num_candidates=2, depth_limit=2)
    batched, gen_b = chain_search(chain_problems, cfg)
    for i, p in enumerate(chain_problems):
        single, _ = chain_search([p], cfg)
        n = single.tree.num_nodes[0]
        assert batched.tree.num_nodes[i] == n
        for name in ("visits", "q", "value", "prior", "parent", "depth", "is_terminal"):
            np.testing.assert_array_equal(getattr(batched.tree, name)[i, :n], getattr(single.tree, name)[0, :n])
        assert batched.tree.step_text[i] == single.tree.step_text[0]
        assert batched.traces[i].response == single.traces[0].response
        assert batched.traces[i].generated_tokens == single.traces[0].generated_tokens
    # one sampling call per round serves every tree
    assert max(len(prompts) for prompts, _ in gen_b.calls) == len(chain_problems)


@pytest.mark.skipif(compiled_core() is None, reason="extension not built")
def test_cython_and_twin_give_the_same_search(chain_problems):
    cfg = MCTSConfig(num_simulations=6, num_candidates=2, first_num_candidates=2, leaves_per_tree=2)
    a, _ = chain_search(chain_problems, cfg)
    b, _ = chain_search(chain_problems, MCTSConfig(**{**cfg.__dict__, "use_twin": True}))
    for name in ("visits", "q", "value", "children", "num_nodes"):
        np.testing.assert_array_equal(getattr(a.tree, name), getattr(b.tree, name))


def test_parallel_leaves_with_virtual_loss(chain_problems):
    cfg = MCTSConfig(num_simulations=12, first_num_candidates=2, num_candidates=2, leaves_per_tree=4,
                     depth_limit=3)
    res, gen = chain_search(chain_problems, cfg)
    assert [t.response for t in res.traces] == [p.solution for p in chain_problems]
    assert res.tree.pending.sum() == 0
    # fewer rounds than one-at-a-time: several leaves per tree go into one call
    serial, gen1 = chain_search(chain_problems, MCTSConfig(**{**cfg.__dict__, "leaves_per_tree": 1}))
    assert len(gen.calls) < len(gen1.calls)
    assert res.simulations == serial.simulations


def test_first_decision_gets_more_simulations(chain_problems):
    p = chain_problems[3]                     # four operations: several decisions
    cfg = MCTSConfig(num_simulations=3, first_decision_multiplier=4, num_candidates=2, first_num_candidates=2,
                     depth_limit=2)
    res, _ = chain_search([p], cfg)
    decisions = len(res.traces[0].steps)
    assert decisions == 5 and res.simulations == [12 + 3 * (decisions - 1)]


def test_reference_guidance_injects_reference_steps_training_only(chain_problems):
    cfg = MCTSConfig(num_simulations=4, num_candidates=1, first_num_candidates=1, depth_limit=3)
    without, _ = chain_search(chain_problems[:2], cfg, propose_right=False)
    assert all(t.response != p.solution for t, p in zip(without.traces, chain_problems))
    guided, _ = chain_search(chain_problems[:2], MCTSConfig(**{**cfg.__dict__, "reference_guidance": True}),
                             propose_right=False)
    assert [t.response for t in guided.traces] == [p.solution for p in chain_problems[:2]]
    assert guided.tree.max_children == 2


def test_token_budget_stops_and_finishes_greedily(chain_problems):
    p = chain_problems[3]
    cfg = MCTSConfig(num_simulations=50, num_candidates=2, first_num_candidates=2, token_budget=6)
    res, _ = chain_search([p], cfg)
    t = res.traces[0]
    assert t.response.startswith("9+1=") and "\n#### " in t.response   # a full response anyway
    assert res.tree.is_terminal[0, res.committed[0][-1]]
    assert res.simulations[0] < 50 * 4


def test_cost_accounting(chain_problems):
    cfg = MCTSConfig(num_simulations=4, num_candidates=2, first_num_candidates=2)
    res, gen = chain_search(chain_problems, cfg)
    assert sum(t.generated_tokens for t in res.traces) == gen.stats.generated_tokens
    assert res.stats.generated_tokens == gen.stats.generated_tokens
    assert res.stats.model_calls >= len(gen.calls)
    for t in res.traces:
        assert t.wall_seconds == pytest.approx(t.model_seconds + t.tree_seconds)
        assert t.model_calls > 0 and t.tree_seconds >= 0
    assert res.stats.wall_seconds >= res.stats.model_seconds


def test_config_validation():
    with pytest.raises(ValueError):
        MCTSConfig(num_simulations=0)
    with pytest.raises(ValueError):
        MCTSConfig(discount=0.0)
    assert MCTSConfig(num_candidates=3, first_num_candidates=5, reference_guidance=True).max_children == 6
