"""The embedded instruction-following task and the refiner's bootstrap data."""
from __future__ import annotations

import random

import pytest

from envs.ifeval import check_strict
from envs.instruct import (CONSTRAINT_TYPES, Constraint, Draft, InstructConfig, load_instruct, render, split_of,
                           vocabulary_words)
from envs.instruct_bootstrap import (ANSWER_CLOSE, ANSWER_OPEN, VERDICT_MARKER, bootstrap_examples, corrupt,
                                     critique_text)


@pytest.fixture(scope="module")
def train():
    return load_instruct("train", 40, seed=0)


def test_constraints_are_ifeval_instruction_types():
    from envs.ifeval import _load_checkers
    _load_checkers()
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT
    assert set(CONSTRAINT_TYPES) <= set(INSTRUCTION_DICT)


def test_seeded_disjoint_and_checker_accepted(train):
    again = load_instruct("train", 40, seed=0)
    assert [p.question for p in train] == [p.question for p in again]
    assert [p.reference for p in train] == [p.reference for p in again]
    test = load_instruct("test", 20, seed=0)
    assert not {p.question for p in train} & {p.question for p in test}
    assert all(split_of(p.question, 0.1) == "train" for p in train)
    assert all(split_of(p.question, 0.1) == "test" for p in test)
    for p in train + test:
        assert 1 <= len(p.constraints) <= 3
        assert all(check_strict(p.ifeval(), p.reference))


def test_render_formats():
    d = Draft(("the cat is red", "i like the cat"), case="sentence", bullets=True, quotes=False, end_phrase="The end.")
    assert render(d) == "* The cat is red.\n* I like the cat.\nThe end."
    assert render(Draft(("i like the sun",), case="upper", quotes=True)) == '"I LIKE THE SUN."'
    assert render(Draft(("i like the sun",), case="lower")) == "i like the sun."


def test_vocabulary_covers_the_task(train):
    from reasoner.tokenizer import build_word_tokenizer
    tok = build_word_tokenizer(vocabulary_words(), extra_tokens=['"', "[", "]"])
    judges, refines = bootstrap_examples(train, seed=0)
    texts = [p.question + "\n" + p.reference for p in train] + [j.critique for j in judges] + \
        [r.refinement for r in refines]
    for t in texts:
        ids = tok(t)["input_ids"]
        assert tok.unk_token_id not in ids and tok.decode(ids) == t


def test_corruption_labels_are_the_checkers(train):
    rng = random.Random(0)
    broken = 0
    for p in train:
        text, verdicts = corrupt(p, rng)
        assert verdicts == check_strict(p.ifeval(), text)
        broken += not all(verdicts)
    assert broken >= 0.9 * len(train)


def test_bootstrap_judgments_and_minimal_refinements(train):
    judges, refines = bootstrap_examples(train, seed=0)
    assert len(judges) == len(train) and 0 < sum(j.passed for j in judges) < len(judges)
    for j in judges:
        last = j.critique.splitlines()[-1]
        assert last == f"{VERDICT_MARKER} {'Yes' if j.passed else 'No'}"
    by_q = {p.question: p for p in train}
    for r in refines:
        p = by_q[r.question]
        assert r.refinement.endswith(f"{ANSWER_OPEN}\n{p.reference}\n{ANSWER_CLOSE}")
        assert r.critique.endswith(f"{VERDICT_MARKER} No")


def test_critique_text_format():
    from envs.instruct import InstructProblem
    p = InstructProblem("x", "Write about the cat. Include the word sea. Do not use any commas.",
                        (Constraint("keywords:existence", (("keywords", ("sea",)),)), Constraint("punctuation:no_comma")),
                        "", Draft(()))
    assert critique_text(p, (False, True)) == \
        "Include the word sea: no\nDo not use any commas: yes\nFinal Judgement: No"


def test_markers_match_the_refinement_search():
    from search.refine import RefineConfig
    cfg = RefineConfig()
    assert (cfg.verdict_marker, cfg.answer_open, cfg.answer_close) == (VERDICT_MARKER, ANSWER_OPEN, ANSWER_CLOSE)


def test_bad_config():
    with pytest.raises(ValueError):
        InstructConfig(min_constraints=2, max_constraints=1)


def test_ifeval_task_loads_prompts_with_the_problem_interface(tmp_path):
    from envs.base import TaskError
    from envs.tasks import TaskConfig, TaskName, load_instruct_problems
    cfg = TaskConfig(name=TaskName.IFEVAL)
    test = load_instruct_problems(cfg, "test", None)
    assert len(test) == 541 and test[0].id == f"ifeval/{test[0].key}" and test[0].question == test[0].prompt
    assert test[0].ifeval() is test[0]
    with pytest.raises(TaskError, match="train_path"):
        load_instruct_problems(cfg, "train", 10)
    with pytest.raises(TaskError, match="limit"):
        load_instruct_problems(TaskConfig(name=TaskName.INSTRUCT), "test", None)
