"""`load_problems` dispatches to every math task with limits, offsets and clear errors."""
import pytest

from envs.base import TaskError
from envs.tasks import TaskConfig, TaskName, load_problems


def test_each_task_loads():
    assert len(load_problems(TaskConfig(name=TaskName.ARITH), "test", 5)) == 5
    g = load_problems(TaskConfig(name=TaskName.GSM8K), "test", 3)
    assert [p.id for p in g] == ["gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2"]
    m = load_problems(TaskConfig(name=TaskName.MATH500), "test", 2, offset=1)
    assert m[0].id == "math500/test/1" and len(m) == 2


def test_offsets_do_not_overlap():
    cfg = TaskConfig()
    a = load_problems(cfg, "train", 10)
    b = load_problems(cfg, "train", 10, offset=10)
    assert not {p.id for p in a} & {p.id for p in b}
    assert [p.id for p in load_problems(cfg, "train", 20)] == [p.id for p in a + b]


def test_errors():
    with pytest.raises(TaskError, match="split"):
        load_problems(TaskConfig(), "dev", 3)
    with pytest.raises(TaskError, match="limit"):
        load_problems(TaskConfig(), "test")
    with pytest.raises(TaskError, match="no problems"):
        load_problems(TaskConfig(), "test", 0)
    with pytest.raises(TaskError, match="only a test split"):
        load_problems(TaskConfig(name=TaskName.MATH500), "train")
    with pytest.raises(TaskError):
        load_problems(TaskConfig(name=TaskName.MATH), "test")  # needs a path or a hub name
    with pytest.raises(TaskError):
        load_problems(TaskConfig(name=TaskName.GSM8K, test_path="/nonexistent.jsonl"), "test")
