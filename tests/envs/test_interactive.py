"""The `Env` contract (step counting, limits, invalid actions, ordering errors) and `EnvGroup`."""
from __future__ import annotations

import pickle

import pytest

from envs.interactive import Env, EnvError, EnvGroup, StepResult


class CountEnv(Env):
    """Count up to `target` with "inc"; anything else is invalid. Seed = starting value."""

    def __init__(self, target: int = 3, max_steps: int = 10, name: str = "count"):
        super().__init__(max_steps)
        self.target, self.name, self.value = target, name, 0

    @property
    def env_id(self) -> str:
        return f"toy/{self.name}"

    def _reset(self, seed):
        self.value = seed or 0
        return StepResult(text=f"value {self.value}", actions=("inc",))

    def _step(self, action):
        if action != "inc":
            return StepResult(text="Nothing happens.", actions=("inc",), invalid=True)
        self.value += 1
        won = self.value == self.target
        return StepResult(text=f"value {self.value}", actions=("inc",), reward=float(won), done=won, won=won)


def test_step_before_reset_and_after_done_raise():
    env = CountEnv(target=1)
    with pytest.raises(EnvError, match="before reset"):
        env.step("inc")
    env.reset()
    r = env.step("inc")
    assert (r.done, r.won, r.truncated, r.reward) == (True, True, False, 1.0)
    with pytest.raises(EnvError, match="after the episode is done"):
        env.step("inc")


def test_invalid_actions_are_counted_and_use_the_budget():
    env = CountEnv(target=5, max_steps=3)
    env.reset()
    r1 = env.step("jump")
    r2 = env.step("inc")
    assert (r1.invalid, r1.text, r1.done) == (True, "Nothing happens.", False)
    assert (r2.invalid, r2.done) == (False, False)
    r3 = env.step("jump")
    assert (r3.done, r3.truncated, r3.won, r3.invalid) == (True, True, False, True)
    assert (env.num_steps, env.num_invalid) == (3, 2)
    stats = env.episode_stats()
    assert stats == {"env_id": "toy/count", "task_type": "", "steps": 3, "invalid": 2, "return": 0.0,
                     "won": False, "truncated": True}


def test_winning_on_the_last_allowed_step_is_not_truncated():
    env = CountEnv(target=2, max_steps=2)
    env.reset()
    env.step("inc")
    r = env.step("inc")
    assert (r.done, r.won, r.truncated) == (True, True, False)


def test_reset_starts_a_fresh_episode():
    env = CountEnv(target=2)
    env.reset()
    env.step("x")
    env.step("inc")
    r = env.reset(seed=1)
    assert r.text == "value 1"
    assert (env.num_steps, env.num_invalid, env.episode_stats()["return"]) == (0, 0, 0.0)
    assert env.step("inc").won


def test_unreset_env_pickles():
    env = pickle.loads(pickle.dumps(CountEnv(target=4, name="p")))
    assert env.env_id == "toy/p" and env.reset().text == "value 0"


def test_max_steps_must_be_positive():
    with pytest.raises(ValueError):
        CountEnv(max_steps=0)


@pytest.mark.parametrize("threads", [0, 3])
def test_env_group_steps_the_requested_envs_in_order(threads):
    group = EnvGroup([CountEnv(target=t, name=str(t)) for t in (1, 2, 3)], num_threads=threads)
    first = group.reset([0, 1, 2], [0, 0, 1])
    assert [r.text for r in first] == ["value 0", "value 0", "value 1"]
    out = group.step([2, 0], ["inc", "bad"])
    assert [(r.text, r.won, r.invalid) for r in out] == [("value 2", False, False),
                                                         ("Nothing happens.", False, True)]
    assert group.ids() == [("toy/1", ""), ("toy/2", ""), ("toy/3", "")]
    assert [s["steps"] for s in group.episode_stats([0, 1, 2])] == [1, 0, 1]
    with pytest.raises(EnvError, match="no expert"):
        group.expert_actions([0])
    with pytest.raises(EnvError, match="duplicate"):
        group.step([1, 1], ["inc", "inc"])
    group.close()
