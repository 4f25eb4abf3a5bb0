"""Value-guided best-of-K action choice: the critic's argmax is executed, through the real agent loop."""
from __future__ import annotations

import pytest

from envs.alfworld import ReActFormat
from envs.interactive import EnvGroup
from reasoner.generation import Completion, FinishReason, GenerationStats
from search.agent import AgentConfig, run_episodes
from search.agent_best_of_k import BestOfKPolicy
from test_agent import StairsEnv

TURNS = ("Action: rest\n", "Action: climb\n", "Thought: hmm\nAction: jump\n")


class KTurns:
    """Returns the same K canned turns for every prompt (n must equal len(TURNS))."""

    def __init__(self, turns=TURNS):
        self.turns, self.calls, self.stats = turns, [], GenerationStats()

    def generate(self, prompts, params):
        assert params.n == len(self.turns) and params.temperature == 1.0 and params.stop == ("Observation:",)
        self.calls.append(list(prompts))
        return [[Completion(t, (1, 2), (0.0, 0.0), FinishReason.STOP, "Observation:") for t in self.turns]
                for _ in prompts]


class ScriptedCritic:
    """Values a state by the action of its last turn; records every batch it scored."""

    def __init__(self, table):
        self.table, self.batches = table, []

    def values(self, prefixes):
        self.batches.append(list(prefixes))
        return [self.table[p.rstrip("\n").rsplit("Action: ", 1)[1]] for p in prefixes]


def test_choose_picks_the_argmax_per_context_first_on_ties():
    fmt = ReActFormat(instruction="I.", example="")
    critic = ScriptedCritic({"rest": 0.2, "climb": 0.9, "jump": 0.9})
    policy = BestOfKPolicy(KTurns(), critic, fmt, AgentConfig(), k=3)
    chosen, values = policy.choose(["A\n", "B\n"], [list(TURNS), list(reversed(TURNS))])
    assert chosen == [1, 0] and values == [0.9, 0.9]       # ties -> the first maximum
    # the critic saw context + the recorded turn (split_turn), for every candidate, in one batch
    assert critic.batches == [["A\nAction: rest\n", "A\nAction: climb\n", "A\nThought: hmm\nAction: jump\n",
                               "B\nThought: hmm\nAction: jump\n", "B\nAction: climb\n", "B\nAction: rest\n"]]


def test_best_of_k_executes_the_critics_choice_in_the_loop():
    fmt = ReActFormat(instruction="I.", example="")
    gen = KTurns()
    critic = ScriptedCritic({"rest": 0.5, "climb": 0.7, "jump": 0.1})
    pool = EnvGroup([StairsEnv(2), StairsEnv(1)])
    policy = BestOfKPolicy(gen, critic, fmt, AgentConfig(max_tokens=8), k=3)
    episodes = run_episodes(policy, pool, fmt, AgentConfig())
    assert [e.trajectory.steps for e in episodes] == [("Action: climb\n",) * 2, ("Action: climb\n",)]
    assert all(e.stats["won"] and e.stats["invalid"] == 0 for e in episodes)
    assert [len(c) for c in gen.calls] == [2, 1] and len(critic.batches) == 2
    assert policy.stats.rounds == 2 and policy.stats.candidates == 9 and policy.stats.generated_tokens == 18
    assert policy.stats.chosen_values == [0.7, 0.7, 0.7]
    # a critic that prefers resting never wins within the step budget
    lazy = BestOfKPolicy(KTurns(), ScriptedCritic({"rest": 1.0, "climb": 0.0, "jump": 0.0}), fmt, AgentConfig(), k=3)
    ep = run_episodes(lazy, EnvGroup([StairsEnv(1, max_steps=4)]), fmt, AgentConfig())[0]
    assert ep.trajectory.steps == ("Action: rest\n",) * 4 and not ep.stats["won"] and ep.stats["truncated"]


def test_best_of_k_arguments():
    fmt = ReActFormat()
    with pytest.raises(ValueError, match="k >= 1"):
        BestOfKPolicy(KTurns(), ScriptedCritic({}), fmt, AgentConfig(), k=0)
    with pytest.raises(ValueError, match="temperature > 0"):
        BestOfKPolicy(KTurns(), ScriptedCritic({}), fmt, AgentConfig(), k=3, temperature=0.0)
