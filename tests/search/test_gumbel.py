"""Gumbel root selection (search/gumbel.py, MCTSConfig.root_selection=gumbel): hand-computed schedule,
scores and a whole search on the three-armed bandit of test_mcts.py."""
import math

import numpy as np
import pytest
from search_fakes import ChainPolicy, LineCheckValue, prompt_of
from test_mcts import bandit_search

from search import gumbel
from search.mcts import MCTSConfig, StepMCTS
from search.tree import Tree


def test_sequential_halving_schedule_by_hand():
    # m = 4, n = 8: one visit each (4 sims), then the best 2 get two more each
    assert gumbel.considered_visit_sequence(4, 8) == (0, 0, 0, 0, 1, 1, 2, 2)
    # m = 2, n = 5: floor(5 / (1 * 2)) = 2 extra visits per phase
    assert gumbel.considered_visit_sequence(2, 5) == (0, 0, 1, 1, 2)
    assert gumbel.considered_visit_sequence(3, 6) == (0, 0, 0, 1, 1, 2)
    assert gumbel.considered_visit_sequence(1, 3) == (0, 1, 2)


def test_scores_by_hand():
    prior, q, visits = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.6, 0.5]), np.array([1, 3, 2])
    np.testing.assert_allclose(gumbel.rescaled_q(q), [0.0, 1.0, 0.75])
    scores = gumbel.gumbel_scores(np.array([0.1, 0.0, -0.2]), prior, q, visits)
    # g + log p + (50 + 3) * 0.1 * q_hat
    np.testing.assert_allclose(scores, [0.1 + math.log(0.5), math.log(0.3) + 5.3, -0.2 + math.log(0.2) + 5.3 * 0.75])
    assert gumbel.rescaled_q(np.array([0.4, 0.4])).tolist() == [0.5, 0.5]


def test_bandit_with_gumbel_root_by_hand():
    """Arms A, B, C: priors .5/.3/.2, values .2/.6/.5 (terminal, so Q = v), no noise (scale 0),
    6 simulations, schedule (0, 0, 0, 1, 1, 2) over m = 3. Score = log p + (50 + max N) * .1 * q_hat,
    q_hat = (0, 1, .75):
      sim 1 (count 0: A B C) A -.69  B -1.20+5.0=3.80  C -1.61+3.75=2.14 -> B
      sim 2 (count 0: A C)   A -.69  C -1.61+3.83=2.22                    -> C
      sim 3 (count 0: A)                                                  -> A
      sim 4 (count 1: A B C) A -.69  B -1.20+5.1=3.90  C 2.22             -> B
      sim 5 (count 1: A C)                                                -> C
      sim 6 (count 2: B C)   B -1.20+5.2=4.00  C -1.61+3.9=2.29           -> B
    N = (1, 3, 2); commit to the best of the most visited: B."""
    cfg = MCTSConfig(num_simulations=6, first_decision_multiplier=1, first_num_candidates=3,
                     root_selection="gumbel", gumbel_scale=0.0)
    res, _, _ = bandit_search(cfg)
    t = res.tree
    kids = t.child_ids(0, Tree.ROOT)
    assert t.visits[0, kids].tolist() == [1, 3, 2]
    assert res.traces[0].response == "B" and t.pending.sum() == 0


def test_gumbel_mcts_solves_the_chain(chain_problems):
    """Below the root PUCT runs as before; the chain toy is solved with the Gumbel root too."""
    gen = ChainPolicy(chain_problems)
    cfg = MCTSConfig(num_simulations=12, num_candidates=2, first_num_candidates=2, c_puct=0.3,
                     root_selection="gumbel", seed=3)
    out = StepMCTS(gen, LineCheckValue(), cfg).search([prompt_of(p) for p in chain_problems], chain_problems)
    assert [t.response for t in out.traces] == [p.solution for p in chain_problems]
    assert out.tree.pending.sum() == 0


def test_gumbel_config_is_checked():
    with pytest.raises(ValueError):
        MCTSConfig(root_selection="gumbel", gumbel_considered=0)
    with pytest.raises(ValueError):
        MCTSConfig(root_selection="softmax")
