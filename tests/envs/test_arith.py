"""The synthetic arithmetic task: seeded, disjoint splits, GSM8K-shaped solutions that are right."""
import re

import pytest

from envs.arith import ArithConfig, load_arith, make_problem, split_of
from envs.base import TaskError
from reasoner.steps import split_steps


def _check_solution(question: str, solution: str, answer: str, cfg: ArithConfig) -> int:
    lines = solution.split("\n")
    assert lines[-1] == f"#### {answer}"
    value = int(re.search(r"has (\d+)", question).group(1))
    for line in lines[:-1]:
        m = re.fullmatch(r"(\d+)([+\-*])(\d+)=(\d+)", line)
        assert m, line
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        assert a == value, "each line starts from the previous result"
        assert c == (a + b if op == "+" else a - b if op == "-" else a * b)
        assert 1 <= c <= cfg.value_cap
        if op == "*":
            assert cfg.mul_min <= b <= cfg.mul_max
        else:
            assert cfg.operand_min <= b <= cfg.operand_max
        value = c
    assert str(value) == answer
    return len(lines) - 1


def test_solutions_are_correct_and_within_knobs():
    cfg = ArithConfig()
    counts = set()
    for p in load_arith("train", 300, cfg):
        counts.add(_check_solution(p.question, p.solution, p.answer, cfg))
        assert p.meta_dict()["ops"] == str(len(p.solution.split("\n")) - 1)
    assert counts == {2, 3, 4, 5}


def test_knobs_change_the_problems():
    cfg = ArithConfig(min_ops=3, max_ops=3, ops=["+"], operand_max=9, value_cap=50)
    for p in load_arith("test", 50, cfg):
        assert _check_solution(p.question, p.solution, p.answer, cfg) == 3
        assert "*" not in p.solution and "-" not in p.solution.replace("####", "")


def test_seeded_and_deterministic():
    a = load_arith("train", 20, seed=1)
    b = load_arith("train", 20, seed=1)
    c = load_arith("train", 20, seed=2)
    assert [p.id for p in a] == [p.id for p in b]
    assert [p.id for p in a] != [p.id for p in c]


def test_splits_are_disjoint_by_construction():
    cfg = ArithConfig()
    test = load_arith("test", 500, cfg)
    train = load_arith("train", 5000, cfg)
    assert not {p.question for p in test} & {p.question for p in train}
    assert all(split_of(p.question, cfg.test_fraction) == "test" for p in test)
    assert len({p.id for p in test}) == 500


def test_steps_split_one_line_each():
    p = load_arith("test", 1)[0]
    steps = split_steps(p.solution)
    assert len(steps) == int(p.meta_dict()["ops"]) + 1
    assert steps[-1].startswith("####") and "".join(steps) == p.solution


@pytest.mark.parametrize("kwargs", [dict(min_ops=0), dict(ops=["/"]), dict(mul_min=1), dict(test_fraction=1.0)])
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        ArithConfig(**kwargs)


def test_bad_split():
    with pytest.raises(TaskError):
        load_arith("validation", 3)
