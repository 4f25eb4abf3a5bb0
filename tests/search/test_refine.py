"""SPaR judge and refinement tree on a scripted refiner with hand-known trees."""
from __future__ import annotations

import random
import re
from collections import defaultdict

import pytest

from reasoner.generation import Completion, FinishReason, GenerationStats
from search.refine import (Judge, Judgment, RefineConfig, RefinementSearch, RefineNode, RefineTree, SearchMode,
                           majority, parse_refinement, parse_verdict)
from search.spar_data import SparDataConfig, actor_pairs, refiner_examples, select_negatives

Y, N, U = "ok\nFinal Judgement: Yes", "bad\nFinal Judgement: No", "Final Judgement: unsure"


def votes(yes: int, no: int, bad: int = 0) -> list[str]:
    return [Y] * yes + [N] * no + [U] * bad


class ScriptedRefiner:
    """Judge outputs cycle through `judge[response]`; refinements through `kids[response]`."""

    def __init__(self, judge: dict, kids: dict):
        self.judge, self.kids = judge, kids
        self.pos = defaultdict(int)
        self.stats = GenerationStats()
        self.calls = []   # (kind, number of prompts, n)

    def _next(self, table, key):
        seq = table.get(key, ["c"])   # unscripted refinements lead to "c" (value 0)
        out = seq[self.pos[(id(table), key)] % len(seq)]
        self.pos[(id(table), key)] += 1
        return out

    def generate(self, prompts, params):
        kind = "refine" if params.stop else "judge"
        self.calls.append((kind, len(prompts), params.n))
        out = []
        for p in prompts:
            response = re.search(r"Response: (.*?)\nCheck each", p, re.S).group(1)
            row = []
            for _ in range(params.n):
                if kind == "judge":
                    row.append(Completion(self._next(self.judge, response), (1,), (0.0,), FinishReason.EOS))
                else:
                    kid = self._next(self.kids, response)
                    text = f"Reflection: fix.\n[ANSWER]\n{kid}\n" if kid is not None else "no delimiters"
                    row.append(Completion(text, (1,), (0.0,), FinishReason.STOP if kid else FinishReason.EOS,
                                          "[/ANSWER]" if kid else None))
            out.append(row)
        return out


def run(judge, kids, mode=SearchMode.BFS, **kw):
    gen = ScriptedRefiner(judge, kids)
    search = RefinementSearch(gen, RefineConfig(mode=mode, **kw))
    trees = search.search(["Write."], ["r0"], ["r0 is bad\nFinal Judgement: No"])
    return trees[0], gen, search


# ---------------------------------------------------------------------- parsing and voting
@pytest.mark.parametrize("text,want", [
    ("step 1 ok\nFinal Judgement: Yes", 1), ("Final Judgement: No", 0), ("Final Judgement: No, yes it is", 0),
    ("Final Judgement: **Yes**", 1), ("Final Judgement: maybe", -1), ("Yes it passes", -1),
    ("Final Judgement: Nope", -1), ("Final Judgement: Yes\nthen Final Judgement: No", 0), ("", -1),
])
def test_parse_verdict(text, want):
    assert parse_verdict(text) == want


def test_majority_ignores_unparsable_and_drops_ties():
    assert majority([1, 1, 0, -1, -1]) == (1, 2 / 3)
    assert majority([0, 0, 0, 1, 1]) == (0, 0.4)
    assert majority([1, 0, -1]) == (None, 0.5)
    assert majority([-1, -1]) == (None, None)


def test_parse_refinement():
    cfg = RefineConfig()
    assert parse_refinement("Reflection: x\n[ANSWER]\nThe cat.\n[/ANSWER]", cfg) == "The cat."
    assert parse_refinement("[ANSWER]\n* a\n* b\n[/ANSWER] trailing", cfg) == "* a\n* b"
    assert parse_refinement("[ANSWER]\nno close", cfg) is None
    assert parse_refinement("[ANSWER]\n\n[/ANSWER]", cfg) is None


def test_judge_requeries_ties_and_keeps_a_majority_critique():
    gen = ScriptedRefiner({"x": votes(1, 1, 3) + votes(2, 0, 3)}, {})
    j = Judge(gen, RefineConfig()).judge([("Write.", "x")])[0]
    assert len(j.verdicts) == 10 and j.label == 1 and j.value == 0.75 and j.critique == Y
    assert [c[0] for c in gen.calls] == ["judge", "judge"]
    gen = ScriptedRefiner({"t": votes(1, 1, 3)}, {})
    j = Judge(gen, RefineConfig(tie_requeries=3)).judge([("Write.", "t")])[0]
    assert len(j.verdicts) == 20 and j.label is None and j.value == 0.5 and j.critique == ""


# ---------------------------------------------------------------------- trees
JUDGE = {"a": votes(2, 3), "b": votes(4, 1), "c": votes(0, 5), "a1": votes(1, 4), "a2": votes(2, 3),
         "a3": votes(0, 5), "b1": votes(0, 5), "b2": votes(1, 4), "b3": votes(0, 5), "a2x": votes(5, 0),
         "a2y": votes(1, 4), "a2z": votes(0, 5), "t": votes(1, 1, 3)}


def test_bfs_stops_at_the_gate_at_depth_one():
    tree, gen, _ = run(JUDGE, {"r0": ["a", "b", "c"]})
    assert tree.solved and tree.nodes[tree.best].response == "b" and tree.nodes[tree.best].value == 0.8
    assert tree.expansions == 1 and len(tree.nodes) == 4
    assert gen.calls == [("refine", 1, 3), ("judge", 3, 5)]


def test_bfs_keeps_two_and_goes_deeper():
    judge = {**JUDGE, "b": votes(1, 4), "a1": votes(0, 5)}
    kids = {"r0": ["a", "b", "c"], "a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"], "a2": ["a2x", "a2y", "a2z"],
            "b2": ["b1", "b3", "c"]}
    tree, gen, _ = run(judge, kids)
    assert tree.solved and tree.nodes[tree.best].response == "a2x" and tree.nodes[tree.best].depth == 3
    # depth 1: root; depth 2: a (0.4), b (0.2) -- c (0.0) is dropped; depth 3: a2 (0.4) and b2 (0.2)
    assert tree.expansions == 5 and len(tree.nodes) == 16
    assert [c for c in gen.calls if c[0] == "refine"] == [("refine", 1, 3), ("refine", 2, 3), ("refine", 2, 3)]
    expanded = sorted({tree.nodes[n.parent].response for n in tree.nodes[1:]})
    assert expanded == ["a", "a2", "b", "b2", "r0"]


def test_bfs_unsolved_returns_the_best_node_and_gate_is_strict():
    kids = {"r0": ["t", "c", "c"], "t": ["c"], "c": ["c"]}
    tree, gen, search = run(JUDGE, kids)
    assert not tree.solved and tree.nodes[tree.best].response == "t" and tree.nodes[tree.best].value == 0.5
    assert tree.expansions == 1 + 2 + 2 and len(tree.nodes) == 1 + 3 + 6 + 6
    # "c" was judged once and then served from the cache (exact text), "t" once with its re-queries
    assert search.judge.cache_hits > 0
    judged_prompts = sum(n for kind, n, _ in gen.calls if kind == "judge")
    assert judged_prompts == 2 + 3   # {t, c} in round one, then t re-queried 3 times


def test_budget_caps_nodes():
    tree, _, _ = run(JUDGE, {"r0": ["a", "c", "c"], "a": ["a1"]}, budget=3)
    assert len(tree.nodes) == 3 and not tree.solved


def test_refinement_retries_on_unparsable_output():
    tree, gen, _ = run(JUDGE, {"r0": [None, "a", "b", "c"]})
    assert tree.failed_refinements == 1 and [n.response for n in tree.nodes[1:]] == ["a", "b", "c"]
    assert [c for c in gen.calls if c[0] == "refine"] == [("refine", 1, 3), ("refine", 1, 1)]


def test_dfs_recurses_into_the_best_child_first():
    kids = {"r0": ["a", "b", "c"], "a": ["a1", "a2", "a3"], "a2": ["a2x", "a2y", "a2z"]}
    tree, gen, _ = run({**JUDGE, "b": votes(1, 4)}, kids, mode=SearchMode.DFS)
    assert tree.solved and tree.nodes[tree.best].response == "a2x"
    assert tree.expansions == 3 and len(tree.nodes) == 10


def test_dfs_backtracks_and_respects_depth():
    kids = {"r0": ["a", "b", "c"], "a": ["a1", "a3", "a3"], "a1": ["c"], "a3": ["c"], "b": ["b1", "b2", "b3"],
            "b1": ["c"], "b2": ["c"]}
    tree, _, _ = run({**JUDGE, "b": votes(1, 4)}, kids, mode=SearchMode.DFS)
    # r0 -> a -> a1 -> (depth 3 leaves) ; a3 ; b -> b2 ; b1   (keep 2 at every level)
    assert not tree.solved and tree.expansions == 1 + 1 + 2 + 1 + 2
    assert max(n.depth for n in tree.nodes) == 3


def test_trees_are_batched_across_prompts():
    gen = ScriptedRefiner(JUDGE, {"r0": ["a", "b", "c"], "s0": ["c", "c", "a"]})
    trees = RefinementSearch(gen, RefineConfig()).search(["Write.", "Write."], ["r0", "s0"], ["x", "y"])
    assert trees[0].solved and not trees[1].solved
    assert gen.calls[:2] == [("refine", 2, 3), ("judge", 3, 5)]   # a, b, c: "a" shared across trees


# ---------------------------------------------------------------------- data construction
def _j(yes, no, critique="crit"):
    label, value = majority([1] * yes + [0] * no)
    return Judgment(tuple([1] * yes + [0] * no), (), label, value, critique if label is not None else "")


def _tree():
    t = RefineTree("Write.", [RefineNode("bad", "bad crit", 0.0, 0, -1),
                              RefineNode("mid", "c1", 0.4, 1, 0, "R1", _j(2, 3, "c1")),
                              RefineNode("good", "c2", 0.8, 1, 0, "R2", _j(4, 1, "c2")),
                              RefineNode("worse", "c3", 0.0, 1, 0, "R3", _j(0, 5, "c3"))])
    t.best, t.solved = 2, True
    return t


def test_actor_pairs_and_refiner_data_from_a_hand_built_tree():
    cfg = RefineConfig()
    solved, unsolved = _tree(), _tree()
    unsolved.solved, unsolved.best = False, 1
    pairs = actor_pairs([solved, unsolved], ["P1", "P2"], ["p1", "p2"], policy_version=3)
    assert len(pairs) == 1
    p = pairs[0]
    assert (p.prompt, p.chosen, p.rejected, p.q_chosen, p.weight, p.policy_version) == ("P1", "good", "bad", 0.8, 0.0, 3)
    judged = [("Write.", "s1", _j(3, 2, "yes-crit"), "p1"), ("Write.", "s2", _j(5, 0), "p1"),
              ("Write.", "s3", _j(1, 4, "no-crit"), "p1"), ("Write.", "s4", _j(2, 2), "p1")]
    ex = refiner_examples([solved], ["p1"], judged, SparDataConfig(), cfg, seed=0)
    kinds = sorted((e.kind, e.target) for e in ex)
    assert kinds == [("critique", "c1"), ("critique", "c2"), ("judgment", "no-crit"), ("judgment", "yes-crit"),
                     ("refinement", "R2")]
    ref = next(e for e in ex if e.kind == "refinement")
    assert ref.prompt.startswith("Judge the response.\nInstruction: Write.\nResponse: bad\n") and "bad crit" in ref.prompt
    capped = refiner_examples([solved, solved], ["p1", "p1"], judged,
                              SparDataConfig(max_refinements=5, max_critiques_high=0, max_critiques_low=1,
                                             max_judgments_no=0, max_judgments_yes=1), cfg, seed=0)
    # two identical trees: the refinement and the low critique appear twice before dedup by prompt
    assert sorted((e.kind, e.target) for e in capped) == [("critique", "c1"), ("judgment", "yes-crit"),
                                                          ("refinement", "R2")]


def test_select_negatives_picks_a_majority_no():
    rows = [[_j(5, 0), _j(1, 4), _j(0, 5)], [_j(5, 0), _j(2, 2)]]
    picks = select_negatives(rows, random.Random(0))
    assert picks[0] in (1, 2) and picks[1] is None


def test_refine_responses_keeps_passing_answers_and_replaces_improved_ones():
    from search.refine import refine_responses
    gen = ScriptedRefiner({**JUDGE, "ok": votes(5, 0)}, {"r0": ["a", "b", "c"], "s0": ["c", "c", "c"]})
    gen.judge.update({"r0": votes(0, 5), "s0": votes(0, 5)})
    out = refine_responses(gen, RefineConfig(depth=1), ["Write."] * 3, ["ok", "r0", "s0"])
    assert out == ["ok", "b", "s0"]   # s0's best child "c" is not valued above s0 (0.0), so s0 stays
