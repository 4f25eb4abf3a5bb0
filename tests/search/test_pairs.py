"""Pair extraction (search/pairs.py) on a hand-built tree gives exactly the expected StepPairs.

The tree (question = node 0; committed path 0 -> 1 -> 4 -> 8):

    0 ─┬─ 1 "a1\\n"  Q .8  N 5 ─┬─ 4 "b1\\n" Q .6 N 3 ─┬─ 8 "#### 1" Q 1 N 2  (terminal)
       │                       │                    └─ 9 "#### 2" Q 0 N 1  (terminal)
       │                       └─ 5 "b2\\n" Q .6 N 1
       ├─ 2 "a2\\n"  Q .2  N 2 ─── 6 "c1\\n" Q .2 N 2 ─── 7 "c2" Q .2 N 1  (forced continuation)
       └─ 3 "a3\\n"  Q .5  N 1
"""
import numpy as np
import pytest
from search_fakes import ChainPolicy, LineCheckValue, prompt_of

from envs.base import Problem
from reasoner.records import StepPair, read_records, write_records
from search.evaluators import OutcomeValue
from search.ledger import SearchStats
from search.mcts import MCTSConfig, MCTSResult, StepMCTS
from search.pairs import PairConfig, RejectedChoice, continuation, extract_pairs, label_smoothing, pairs_from_result
from search.tree import Tree

PROMPT = "Q: toy\nA:\n"
PATH = [0, 1, 4, 8]


@pytest.fixture
def tree() -> Tree:
    t = Tree.empty(1, 10, 3)
    spec = [  # (parent, text, q, visits)
        (0, "a1\n", 0.8, 5), (0, "a2\n", 0.2, 2), (0, "a3\n", 0.5, 1), (1, "b1\n", 0.6, 3), (1, "b2\n", 0.6, 1),
        (2, "c1\n", 0.2, 2), (6, "c2", 0.2, 1), (4, "#### 1", 1.0, 2), (4, "#### 2", 0.0, 1)]
    # add in id order: nodes 1..9 (node 7's parent 6 exists before 7)
    for parent, text, q, n in spec:
        node = int(t.add_children(np.array([0]), np.array([parent]), np.ones(1), np.zeros(1),
                                  np.array(["####" in text]), [text], [()])[0])
        t.q[0, node], t.visits[0, node] = q, n
    return t


def test_tree_is_as_drawn(tree):
    assert tree.child_ids(0, 0) == [1, 2, 3] and tree.child_ids(0, 1) == [4, 5]
    assert tree.child_ids(0, 2) == [6] and tree.child_ids(0, 6) == [7] and tree.child_ids(0, 4) == [8, 9]
    assert tree.response(0, 8) == "a1\nb1\n#### 1"


def test_worst_rejected_pairs_exactly(tree):
    pairs = extract_pairs(tree, 0, PATH, prompt=PROMPT, problem_id="toy/0", cfg=PairConfig(), policy_version=3)
    assert pairs == [
        StepPair("toy/0", 3, 0, PROMPT, "", "a1\n", "a2\nc1\nc2", 0.8, 0.2, 5, 2, 2 / 7),
        # node 1: b1 and b2 tie at Q .6 -> no preference, skipped
        StepPair("toy/0", 3, 2, PROMPT, "a1\nb1\n", "#### 1", "#### 2", 1.0, 0.0, 2, 1, 1 / 3),
    ]


def test_random_rejected_is_another_sibling_and_reproducible(tree):
    cfg = PairConfig(rejected=RejectedChoice.RANDOM, seed=1)
    runs = [extract_pairs(tree, 0, PATH, prompt=PROMPT, problem_id="toy/0", cfg=cfg) for _ in range(2)]
    assert runs[0] == runs[1]
    root_pair = runs[0][0]
    assert root_pair.chosen == "a1\n" and root_pair.rejected in ("a2\nc1\nc2", "a3\n")
    seen = {extract_pairs(tree, 0, PATH, prompt=PROMPT, problem_id="toy/0",
                          cfg=PairConfig(rejected=RejectedChoice.RANDOM, seed=s))[0].rejected for s in range(20)}
    assert seen == {"a2\nc1\nc2", "a3\n"}


def test_caps_and_gaps(tree):
    assert len(extract_pairs(tree, 0, PATH, prompt=PROMPT, problem_id="x", cfg=PairConfig(max_pairs_per_problem=1))) == 1
    only_big = extract_pairs(tree, 0, PATH, prompt=PROMPT, problem_id="x", cfg=PairConfig(min_q_gap=0.7))
    assert [p.depth for p in only_big] == [2]


def test_label_smoothing_and_continuation(tree):
    assert label_smoothing(3, 1) == 0.25
    assert label_smoothing(1, 5) == 0.5           # capped
    assert label_smoothing(0, 0) == 0.0           # max(1, N_w) in the denominator
    assert label_smoothing(0, 2) == 0.5
    assert continuation(tree, 0, 2) == "a2\nc1\nc2" and continuation(tree, 0, 3) == "a3\n"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_pairs_round_trip_through_records(tree, tmp_path, suffix):
    pairs = extract_pairs(tree, 0, PATH, prompt=PROMPT, problem_id="toy/0")
    path = write_records(tmp_path / f"pairs{suffix}", pairs)
    assert read_records(path, StepPair) == pairs


def test_pairs_from_result_filters(tree):
    res = MCTSResult(traces=[], tree=tree, committed=[PATH], simulations=[0],
                     stats=SearchStats(1, 0.0, 0.0, 0.0, 0, 0))
    problems = [Problem("toy/0", "toy", "toy", "1")]
    assert len(pairs_from_result(res, [PROMPT], problems)) == 2
    assert pairs_from_result(res, [PROMPT], problems, keep=[False]) == []


def test_pairs_from_mcts_on_the_chain_toy_prefer_the_right_steps(chain_problems):
    problems = chain_problems[:2]
    prompts = [prompt_of(p) for p in problems]
    cfg = MCTSConfig(num_simulations=12, first_num_candidates=2, num_candidates=2, depth_limit=3)
    res = StepMCTS(ChainPolicy(problems), OutcomeValue(LineCheckValue()), cfg).search(prompts, problems)
    pairs = pairs_from_result(res, prompts, problems)
    for p in pairs:   # chosen = the right line, rejected = its slip (result + 1), same shared prefix
        assert p.chosen.splitlines()[0] in problems[int(p.problem_id[-1])].solution
        assert p.rejected.splitlines()[0] not in problems[int(p.problem_id[-1])].solution
        assert p.prefix == "".join(problems[int(p.problem_id[-1])].solution.splitlines(True)[:p.depth])
        assert p.q_chosen > p.q_rejected and 0.0 <= p.weight <= 0.5
    assert {p.depth for p in pairs if p.problem_id == "chain/0"} == {0, 1}
    assert {p.depth for p in pairs if p.problem_id == "chain/1"} == {0, 1, 2}
