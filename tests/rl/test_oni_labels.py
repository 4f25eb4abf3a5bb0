"""ONI labels: store dedup / newest-first priority / versions / lag; prompt and parse; labeller."""
from __future__ import annotations

import pytest

from reasoner.generation import Completion, FinishReason, GenerationStats
from rl.oni_labels import (FEW_SHOT, HELPFUL_WORD, UNHELPFUL_WORD, LabelGoal, Labeller, LabellerConfig,
                           LabelStore, build_prompt, distillation_examples, heuristic_label, parse_label)


class CannedGenerator:
    """Answers each prompt with `answer(message)`; records the prompts it saw."""

    def __init__(self, answer):
        self.answer = answer
        self.stats = GenerationStats()
        self.seen: list[str] = []

    def generate(self, prompts, params):
        self.seen += list(prompts)
        out = []
        for p in prompts:
            message = p.rsplit('Message: "', 1)[1].rsplit('"', 1)[0]
            text = self.answer(message)
            out.append([Completion(text, tuple(range(len(text.split()))), (0.0,) * len(text.split()), FinishReason.EOS)])
        return out

    def logprobs(self, prompts, continuations):
        raise NotImplementedError


def test_store_dedups_by_exact_text_and_serves_newest_first():
    s = LabelStore(max_pending=10)
    assert s.submit(["a", "b", "a", "c"], now=0.0) == 3
    assert s.submit(["b", "B", "b "], now=1.0) == 2            # exact text: "B" and "b " are new
    assert s.take(2) == ["b ", "B"]
    assert s.submit(["B"], now=2.0) == 0                        # in flight: not queued again
    assert s.take(10) == ["c", "b", "a"]
    assert s.take(10) == []
    s.requeue(["a"])
    assert s.take(1) == ["a"]


def test_store_bounds_pending_dropping_the_oldest():
    s = LabelStore(max_pending=3)
    s.submit(["m1", "m2", "m3", "m4", "m5"], now=0.0)
    assert s.dropped == 2
    assert s.take(10) == ["m5", "m4", "m3"]


def test_store_versions_and_since():
    s = LabelStore()
    s.submit(["x", "y", "z"], now=0.0)
    s.take(3)
    assert s.put({"x": 1, "y": 0}, now=2.0) == 2
    assert s.since(0) == (2, {"x": 1, "y": 0})
    assert s.put({"z": 1, "x": 0}, now=5.0) == 3                 # x keeps its first label
    assert s.since(2) == (3, {"z": 1})
    assert s.since(3) == (3, {})
    assert s.get("x") == 1 and s.get("nope") is None
    with pytest.raises(ValueError):
        s.since(4)
    with pytest.raises(ValueError):
        s.put({"w": 2}, now=5.0)


def test_store_lag_statistics():
    s = LabelStore()
    s.submit(["a", "b"], now=0.0)
    s.submit(["c"], now=4.0)
    s.take(3)
    s.put({"a": 1}, now=3.0)       # lag 3
    s.put({"b": 0}, now=20.0)      # lag 20
    # first seen >= 10 s before now=14: a, b (c was seen at 4 -> 10 s ago, included); labelled within 10 s: a
    assert s.share_labelled_within(10.0, now=14.0) == pytest.approx(1 / 3)
    assert s.share_labelled_within(10.0, now=1.0) == 0.0
    st = s.stats(now=30.0)
    assert (st["labels"], st["positive"], st["pending"], st["in_flight"], st["seen"]) == (2, 1, 0, 1, 3)
    assert st["lag_median_s"] == 20.0


def test_parse_label():
    assert parse_label(f"Analysis: gold.\nLabel: {HELPFUL_WORD}") == 1
    assert parse_label(f"Label: {UNHELPFUL_WORD}") == 0
    assert parse_label(f"{HELPFUL_WORD} or {UNHELPFUL_WORD}") == 1        # ONI: helpful word wins
    assert parse_label("I cannot decide.") is None
    assert parse_label("") is None


def test_prompt_structure():
    p = build_prompt("You kill the newt!", LabelGoal.SCORE)
    assert p.startswith("You are a helpful and honest judge")
    assert p.endswith('Message: "You kill the newt!"\n')
    assert p.count("Message: ") == len(FEW_SHOT) + 1
    assert f"Label: {HELPFUL_WORD}" in p and f"Label: {UNHELPFUL_WORD}" in p and "Knowledge:" in p
    assert "Knowledge" not in build_prompt("x", knowledge=False)
    # the gold goal swaps the level-up example to unhelpful
    gold = build_prompt("x", LabelGoal.GOLD, knowledge=False)
    assert f'"Welcome to experience level 2."\nAnalysis: the player grew stronger by gaining a level.\nLabel: {UNHELPFUL_WORD}' in gold
    # the shared prefix (everything before the message) is identical across messages
    assert build_prompt("a").rsplit("Message:", 1)[0] == build_prompt("b").rsplit("Message:", 1)[0]


def test_labeller_yes_no_garbage_and_empty_message():
    answers = {"You kill the newt!": f"Analysis: a kill.\nLabel: {HELPFUL_WORD}",
               "It's a wall.": f"Label: {UNHELPFUL_WORD}", "": f"Label: {UNHELPFUL_WORD}",
               "You hear a door open.": "garbage without a verdict"}
    gen = CannedGenerator(lambda m: answers[m])
    out = Labeller(gen, LabellerConfig(knowledge=False)).label(list(answers))
    assert out.labels == {"You kill the newt!": 1, "It's a wall.": 0, "": 0, "You hear a door open.": 0}
    assert out.unparsable == 1
    assert len(gen.seen) == 4 and gen.seen[2].endswith('Message: ""\n')
    assert Labeller(gen, LabellerConfig()).label([]).labels == {}


def test_heuristic_annotator():
    assert heuristic_label("You kill the newt!") == (1, "the player killed a monster.")
    assert heuristic_label("$ - 5 gold pieces.")[0] == 1
    assert heuristic_label("There is a staircase down here.")[0] == 1
    assert heuristic_label("You see here a key named The Master Key of Thievery.")[0] == 1
    assert heuristic_label("It's a wall.") == (0, "the message does not help progress.")
    assert heuristic_label("This door is locked.")[0] == 0
    assert heuristic_label("")[0] == 0
    assert heuristic_label("There is nothing here to pick up.")[0] == 0
    assert heuristic_label("The stairs are solidly fixed to the floor.")[0] == 0
    assert heuristic_label("You cannot wield gold.")[0] == 0
    assert heuristic_label("You kill the newt!", LabelGoal.GOLD)[0] == 0
    assert heuristic_label("$ - 5 gold pieces.", LabelGoal.COMBAT)[0] == 0
    (prompt, answer), = distillation_examples(["You kill the newt!"])
    assert prompt == build_prompt("You kill the newt!", knowledge=False)
    assert answer == f"Analysis: the player killed a monster.\nLabel: {HELPFUL_WORD}\n"
