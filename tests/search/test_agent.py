"""The agent loop: batching, parsing, invalid turns, trajectory records, real envs and a tiny model."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from envs.alfworld import ReActFormat
from envs.interactive import Env, EnvGroup, StepResult
from reasoner.generation import Completion, FinishReason, GenerationStats
from reasoner.records import Trajectory, read_records, write_records
from search.agent import (AgentConfig, ExpertPolicy, LLMPolicy, RandomPolicy, UnparsedAction,
                          run_episodes, summarize_episodes)

DATA = Path(__file__).resolve().parents[1] / "data" / "alfworld"
_NEEDS_EXTRA = "needs the envs extra (pip install -e '.[envs]')"


class StairsEnv(Env):
    """Climb `height` stairs with "climb"; "rest" is allowed but does nothing; the rest is invalid."""

    def __init__(self, height: int, max_steps: int = 10):
        super().__init__(max_steps)
        self.height, self.level = height, 0

    @property
    def env_id(self) -> str:
        return f"stairs/{self.height}"

    @property
    def task_type(self) -> str:
        return "short" if self.height < 3 else "tall"

    def _reset(self, seed):
        self.level = 0
        return StepResult(text=f"Floor 0.\n\nYour task is to: reach floor {self.height}.", actions=("climb", "rest"))

    def _step(self, action):
        if action not in ("climb", "rest"):
            return StepResult(text="Nothing happens.", actions=("climb", "rest"), invalid=True)
        self.level += action == "climb"
        won = self.level == self.height
        return StepResult(text=f"Floor {self.level}.", actions=("climb", "rest"), reward=float(won),
                          done=won, won=won)


class CannedGenerator:
    """Answers every prompt with `answer(prompt)`; records the batch of every call."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[list[str]] = []
        self.stats = GenerationStats()

    def generate(self, prompts, params):
        assert params.n == 1 and params.stop == ("Observation:",)
        self.calls.append(list(prompts))
        return [[Completion(self.answer(p), (1,), (0.0,), FinishReason.STOP, "Observation:")] for p in prompts]

    def logprobs(self, prompts, continuations):
        raise NotImplementedError


def test_loop_batches_every_round_and_records_trajectories():
    fmt = ReActFormat()
    pool = EnvGroup([StairsEnv(1), StairsEnv(3), StairsEnv(2)])
    gen = CannedGenerator(lambda p: " Thought: up we go.\nAction: climb\n")
    episodes = run_episodes(LLMPolicy(gen, fmt, AgentConfig()), pool, fmt, AgentConfig(policy_version=4))
    assert [len(c) for c in gen.calls] == [3, 2, 1]          # one generate call per round, live envs only
    turn = "Thought: up we go.\nAction: climb\n"
    for ep, h in zip(episodes, (1, 3, 2)):
        t = ep.trajectory
        assert t.problem_id == f"stairs/{h}" and t.policy_version == 4 and t.source == "agent"
        assert t.prompt == fmt.initial_prompt(StairsEnv(h).reset())
        assert t.steps == (turn,) * h
        assert t.observations == tuple(f"Observation: Floor {k}.\n" for k in range(1, h + 1))
        assert t.reward == 1.0 and t.step_rewards == ()
        assert ep.stats["steps"] == h and ep.stats["invalid"] == 0 and ep.stats["parse_failures"] == 0
    # the second round continued the first: prompt + turn + observation
    assert gen.calls[1][0] == episodes[1].trajectory.prompt + turn + "Observation: Floor 1.\n"


def test_unparsed_turns_are_invalid_steps_or_end_the_episode():
    fmt = ReActFormat()
    gen = CannedGenerator(lambda p: "I am not sure what to do")
    pool = EnvGroup([StairsEnv(2, max_steps=2)])
    (ep,) = run_episodes(LLMPolicy(gen, fmt, AgentConfig()), pool, fmt, AgentConfig(step_rewards=True))
    assert ep.trajectory.steps == ("I am not sure what to do\n",) * 2
    assert ep.trajectory.observations == ("Observation: Nothing happens.\n",) * 2
    assert ep.trajectory.step_rewards == (0.0, 0.0) and ep.trajectory.reward == 0.0
    assert (ep.stats["steps"], ep.stats["invalid"], ep.stats["parse_failures"], ep.stats["truncated"]) == (2, 2, 2, True)

    cfg = AgentConfig(unparsed=UnparsedAction.END)
    pool = EnvGroup([StairsEnv(2), StairsEnv(1)])
    gen = CannedGenerator(lambda p: "Action: climb" if "reach floor 2" in p else "no idea")  # env 1 never parses
    eps = run_episodes(LLMPolicy(gen, fmt, cfg), pool, fmt, cfg)
    assert eps[1].trajectory.steps == ("no idea\n",) and eps[1].trajectory.observations == ("",)
    assert (eps[1].stats["steps"], eps[1].stats["parse_failures"], eps[1].trajectory.reward) == (0, 1, 0.0)
    assert eps[0].trajectory.reward == 1.0 and eps[0].stats["steps"] == 2
    assert [len(c) for c in gen.calls] == [2, 1]


def test_random_policy_is_seeded():
    fmt = ReActFormat()

    def play(seed):
        pool = EnvGroup([StairsEnv(3, max_steps=6), StairsEnv(2, max_steps=6)])
        return [e.trajectory.steps for e in run_episodes(RandomPolicy(fmt, seed), pool, fmt, AgentConfig())]

    a, b = play(1), play(1)
    assert a == b
    assert all(s in ("Action: climb\n", "Action: rest\n") for steps in a for s in steps)
    assert a != play(2) or a != play(3)


def test_summarize_episodes():
    stats = [{"task_type": "a", "won": True, "steps": 4, "invalid": 1, "return": 1.0, "score": 10},
             {"task_type": "a", "won": False, "steps": 10, "invalid": 3, "return": 0.0, "score": 0},
             {"task_type": "b", "won": True, "steps": 7, "invalid": 0, "return": 1.0, "score": 5, "parse_failures": 2}]
    s = summarize_episodes(stats)
    assert s["success_rate"] == pytest.approx(2 / 3) and s["episodes"] == 3
    assert s["per_type"] == {"a": {"episodes": 2, "success_rate": 0.5, "avg_steps": 7.0},
                             "b": {"episodes": 1, "success_rate": 1.0, "avg_steps": 7.0}}
    assert s["avg_steps"] == 7.0 and s["avg_invalid"] == pytest.approx(4 / 3)
    assert s["avg_parse_failures"] == pytest.approx(2 / 3)
    assert (s["mean_score"], s["median_score"]) == (5.0, 5.0)
    assert "mean_depth" not in s
    with pytest.raises(ValueError):
        summarize_episodes([])


def test_alfworld_expert_trajectories_round_trip(tmp_path):
    pytest.importorskip("alfworld", reason=_NEEDS_EXTRA)
    from envs.alfworld import AlfworldConfig, AlfworldEnv, ExpertKind, find_games
    games = find_games(DATA, "valid_unseen", task_types=("pick_and_place_simple", "pick_heat_then_place_in_recep"))
    fmt = ReActFormat()
    cfg = AlfworldConfig(expert=ExpertKind.WALKTHROUGH)
    pool = EnvGroup([AlfworldEnv(g, cfg) for g in games], num_threads=2)
    episodes = run_episodes(ExpertPolicy(pool, fmt), pool, fmt, AgentConfig(source="walkthrough"))
    pool.close()
    trajs = [e.trajectory for e in episodes]
    assert [t.reward for t in trajs] == [1.0, 1.0]
    assert trajs[0].steps == ("Action: go to countertop 1\n", "Action: take soapbottle 3 from countertop 1\n",
                              "Action: go to toilet 1\n", "Action: move soapbottle 3 to toilet 1\n")
    assert trajs[0].observations[-1] == "Observation: You move the soapbottle 3 to the toilet 1.\n"
    assert trajs[0].prompt.endswith("Your task is to: put some soapbottle on toilet.\n")
    for suffix in (".jsonl", ".parquet"):
        path = write_records(tmp_path / f"expert{suffix}", trajs)
        assert read_records(path, Trajectory) == trajs


def test_tiny_model_plays_minihack_for_a_few_steps():
    pytest.importorskip("minihack", reason=_NEEDS_EXTRA)
    pytest.importorskip("torch")
    from envs.nethack import MenuFormat, NetHackConfig, NetHackEnv
    from reasoner.generation import GeneratorConfig
    from reasoner.hf_backend import HFGenerator
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    from reasoner.tokenizer import build_word_tokenizer

    task = "MiniHack-Room-5x5-v0"
    fmt = MenuFormat(task)
    probe = NetHackEnv(NetHackConfig(task=task))
    words = set(re.findall(r"[A-Za-z]+", fmt.initial_prompt(probe.reset(seed=0)) + " more wait"))
    probe.close()
    tok = build_word_tokenizer(words)
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                             max_position_embeddings=1024), tok)
    gen = HFGenerator(model, tok, GeneratorConfig(device="cpu", max_model_len=1024))
    cfg = AgentConfig(max_tokens=6, step_rewards=True)
    pool = EnvGroup([NetHackEnv(NetHackConfig(task=task, max_steps=3), episode=k) for k in range(2)])
    episodes = run_episodes(LLMPolicy(gen, fmt, cfg), pool, fmt, cfg, seeds=[0, 1])
    assert gen.stats.calls == 3 and gen.stats.prompts == 6          # 3 rounds x 2 envs, batched
    for k, ep in enumerate(episodes):
        t = ep.trajectory
        assert t.problem_id == f"nethack/{task}/{k}" and len(t.steps) == 3 and len(t.step_rewards) == 3
        assert all(s.startswith(" ") and s.endswith("\n") for s in t.steps)
        assert all(o.startswith("\nMessage: ") and o.endswith("\nAction:") for o in t.observations)
        assert ep.stats["steps"] == 3 and ep.stats["truncated"] and t.reward == 0.0
        assert 0 <= ep.stats["invalid"] <= 3
    pool.close()
