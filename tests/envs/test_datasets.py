"""GSM8K / MATH / MATH-500 loaders: vendored files, local fixtures, self-grading, error cases.

Reads only the vendored `envs/data/` files and fixtures in `tests/data/` (never ../shared)."""
from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from envs.base import Problem, TaskError
from envs.gsm8k import VENDORED_TEST, load_gsm8k, strip_calculator_annotations
from envs.grading import grade
from envs.math_data import VENDORED_MATH500, load_math, load_math500

DATA = Path(__file__).resolve().parents[1] / "data"


# ------------------------------------------------------------------------------- vendored files

def test_vendored_files_match_provenance():
    provenance = (VENDORED_TEST.parent / "PROVENANCE.md").read_text()
    for path in (VENDORED_TEST, VENDORED_MATH500):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest in provenance, path.name
    assert "Copyright (c) 2021 OpenAI" in provenance
    assert "Copyright (c) 2023 OpenAI" in provenance
    assert "Copyright (c) 2021 Dan Hendrycks" in provenance


def test_gsm8k_vendored_test_split():
    problems = load_gsm8k()
    assert len(problems) == 1319
    first = problems[0]
    assert first.id == "gsm8k/test/0" and first.task == "gsm8k"
    assert first.question.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert first.answer == "18"
    assert first.solution == ("Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
                              "She makes 9 * 2 = $18 every day at the farmer\u2019s market.\n#### 18")
    assert first.meta_dict() == {"num_steps": "2"}
    assert problems[17].id == "gsm8k/test/17"
    assert len({p.id for p in problems}) == 1319
    assert all("<<" not in p.solution and "," not in p.answer for p in problems)
    assert sum(p.answer == "70000" for p in problems[:3]) == 1  # "#### 70000"


def test_every_gsm8k_answer_self_grades():
    """The grader accepts each reference solution for its own answer (1,319 of 1,319), both
    with the bare answer and with the full solution text as the reference."""
    problems = load_gsm8k()
    assert sum(grade(p.solution, p.answer) for p in problems) == 1319
    assert sum(grade(p.solution, p.solution) for p in problems) == 1319


def test_math500_vendored():
    problems = load_math500()
    assert len(problems) == 500
    first = problems[0]
    assert first.id == "math500/test/0" and first.task == "math500"
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first.meta_dict() == {"subject": "Precalculus", "level": "2",
                                 "unique_id": "test/precalculus/807.json"}
    assert Counter(p.meta_dict()["subject"] for p in problems) == {
        "Algebra": 124, "Counting & Probability": 38, "Geometry": 41,
        "Intermediate Algebra": 97, "Number Theory": 62, "Prealgebra": 82, "Precalculus": 56}
    assert Counter(p.meta_dict()["level"] for p in problems) == {
        "1": 43, "2": 90, "3": 105, "4": 128, "5": 134}


def test_math500_answers_self_grade():
    """All 500 boxed solutions grade True against their answers (measured: 500/500, and all
    500 answers also pass math-verify against themselves). A seeded sample of 40 also goes
    through the symbolic worker with the answer re-typeset (\\dfrac, no spaces)."""
    problems = load_math500()
    assert sum(grade(p.solution, p.answer) for p in problems) == 500
    sample = random.Random(0).sample(problems, 40)
    for p in sample:
        retyped = p.answer.replace("\\frac", "\\dfrac").replace(" ", "")
        assert grade(f"The final answer is $\\boxed{{{retyped}}}$.", p.answer), p.id


# ------------------------------------------------------------------------------- local files

def test_gsm8k_from_path_and_limit():
    problems = load_gsm8k("train", path=DATA / "gsm8k_sample.jsonl")
    assert [p.id for p in problems] == ["gsm8k/train/0", "gsm8k/train/1", "gsm8k/train/2"]
    assert [p.answer for p in problems] == ["72", "10", "5"]
    assert problems[0].solution == ("Natalia sold 48/2 = 24 clips in May.\n"
                                    "Natalia sold 48+24 = 72 clips altogether in April and May.\n"
                                    "#### 72")
    assert len(load_gsm8k("train", path=DATA / "gsm8k_sample.jsonl", limit=2)) == 2
    assert load_gsm8k(limit=0) == []


def test_strip_calculator_annotations():
    assert strip_calculator_annotations("48/2 = <<48/2=24>>24 and $<<9*2=18>>18") == "48/2 = 24 and $18"


def test_math_from_path_both_formats():
    prm = load_math("train", path=DATA / "math_sample.jsonl")
    assert [p.answer for p in prm] == ["0", "\\frac{1}{3}"]
    assert prm[1] == Problem(
        id="math/train/1", task="math", question="Evaluate $\\log_8 2$.", answer="\\frac{1}{3}",
        solution="We have $8=2^3$ or $8^{\\frac13}=2$, so $\\log_8 2=\\boxed{\\frac{1}{3}}$",
        meta=(("subject", "Algebra"), ("level", "2"), ("unique_id", "train/algebra/27.json")))
    original = load_math("test", path=DATA / "math_original_format_sample.jsonl")
    assert [p.answer for p in original] == ["35", "140"]
    assert original[0].meta == (("subject", "Counting & Probability"), ("level", "2"))
    assert all(grade(p.solution, p.answer) for p in prm + original)


# ------------------------------------------------------------------------------- errors

def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file(tmp_path):
    with pytest.raises(TaskError, match="not found: .*nope.jsonl"):
        load_gsm8k(path=tmp_path / "nope.jsonl")
    with pytest.raises(TaskError, match="not found"):
        load_math500(path=tmp_path / "nope.jsonl")


def test_empty_file(tmp_path):
    with pytest.raises(TaskError, match="empty"):
        load_gsm8k(path=_write(tmp_path, "\n\n"))
    with pytest.raises(TaskError, match="empty"):
        load_math(path=_write(tmp_path, ""))


def test_malformed_line_names_its_number(tmp_path):
    good = json.dumps({"question": "q", "answer": "a\n#### 1"})
    with pytest.raises(TaskError, match=r"rows.jsonl:3: malformed JSON"):
        load_gsm8k(path=_write(tmp_path, f"{good}\n{good}\n{{not json\n"))
    with pytest.raises(TaskError, match=r"rows.jsonl:2: expected a JSON object"):
        load_gsm8k(path=_write(tmp_path, f"{good}\n[1, 2]\n"))
    with pytest.raises(TaskError, match=r"rows.jsonl:1: missing field\(s\) \['answer'\]"):
        load_gsm8k(path=_write(tmp_path, '{"question": "q"}\n'))
    with pytest.raises(TaskError, match=r"rows.jsonl:2: the answer has no '#### <number>'"):
        load_gsm8k(path=_write(tmp_path, f'{good}\n{{"question": "q", "answer": "7"}}\n'))
    with pytest.raises(TaskError, match=r"rows.jsonl:1: no answer"):
        load_math(path=_write(tmp_path, '{"problem": "p", "solution": "no box"}\n'))


def test_unknown_split_and_sources():
    with pytest.raises(TaskError, match="unknown split 'dev'; known splits: train, test"):
        load_gsm8k("dev")
    with pytest.raises(TaskError, match="only the test split ships"):
        load_gsm8k("train")
    with pytest.raises(TaskError, match="unknown split 'train'; known splits: test"):
        load_math500("train")
    with pytest.raises(TaskError, match="does not ship with the package"):
        load_math("test")
    with pytest.raises(TaskError, match="limit must be >= 0"):
        load_math500(limit=-1)
