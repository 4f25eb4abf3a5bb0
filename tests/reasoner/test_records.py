"""Records pickle, validate, and round-trip through jsonl and parquet with clear errors."""
import json
import pickle

import pytest

from reasoner.records import (RecordError, SearchTrace, StepPair, TraceStep, Trajectory, read_records,
                              write_records)


def _pair(**kw):
    base = dict(problem_id="arith/test/1", policy_version=2, depth=1, prompt="Q: x\nA:\n", prefix="3+4=7\n",
                chosen="7*2=14\n", rejected="7*3=21\n", q_chosen=0.9, q_rejected=-0.2, n_chosen=5, n_rejected=1,
                weight=1 / 6)
    base.update(kw)
    return StepPair(**base)


def _traj(**kw):
    base = dict(problem_id="p", policy_version=0, source="mcts", prompt="Q\n", steps=("a\n", "#### 1"),
                observations=("", ""), reward=1.0)
    base.update(kw)
    return Trajectory(**base)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_round_trip(tmp_path, suffix):
    pairs = [_pair(), _pair(problem_id="b", weight=0.5)]
    trajs = [_traj(), _traj(steps=("go to desk 1", "take pen"), observations=("You arrive.", "You take it."),
                            reward=0.0, step_rewards=(0.1, 0.0))]
    trace = SearchTrace("p", "beam", "a\n#### 1", (TraceStep("a\n", 0.5, 3, (("b\n", 0.1, 1),)),), 10, 2, 0.1, 0.01, 0.2)
    assert read_records(write_records(tmp_path / f"p{suffix}", pairs), StepPair) == pairs
    assert read_records(write_records(tmp_path / f"t{suffix}", trajs), Trajectory) == trajs
    assert read_records(write_records(tmp_path / f"s{suffix}", [trace]), SearchTrace) == [trace]


def test_pickle_and_response():
    t = _traj(steps=("go\n", "take\n"), observations=("ok\n", "done\n"))
    assert pickle.loads(pickle.dumps(t)) == t
    assert t.response == "go\nok\ntake\ndone\n"


def test_validation():
    with pytest.raises(RecordError):
        _pair(weight=0.7)
    with pytest.raises(RecordError):
        _pair(chosen="")
    with pytest.raises(RecordError):
        _traj(observations=("",))
    with pytest.raises(RecordError):
        _traj(steps=(), observations=())


def test_bad_files(tmp_path):
    with pytest.raises(RecordError, match="no such"):
        read_records(tmp_path / "missing.jsonl", StepPair)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem_id": "x"}) + "\n")
    with pytest.raises(RecordError, match="missing field"):
        read_records(bad, StepPair)
    bad.write_text("{not json\n")
    with pytest.raises(RecordError, match=r"bad.jsonl:1: malformed JSON"):
        read_records(bad, StepPair)
    (tmp_path / "x.parquet").write_text("garbage")
    with pytest.raises(RecordError, match="parquet"):
        read_records(tmp_path / "x.parquet", StepPair)
    with pytest.raises(RecordError, match="format"):
        write_records(tmp_path / "x.csv", [_pair()])
    with pytest.raises(RecordError, match="mixed"):
        write_records(tmp_path / "x.jsonl", [_pair(), _traj()])


def test_write_is_atomic(tmp_path):
    path = write_records(tmp_path / "p.jsonl", [_pair()])
    assert not list(tmp_path.glob("*.tmp")) and path.exists()
