"""Behaviour cloning on multi-turn agent trajectories: the loss covers turn tokens only, falls, and
the cloned tiny agent then emits the expert's (valid) actions through the real agent loop."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from envs.alfworld import ReActFormat
from envs.interactive import EnvGroup
from reasoner.records import Trajectory
from reasoner.tiny import TinyModelConfig, build_tiny_model
from reasoner.tokenizer import build_word_tokenizer
from rl.data import collate_trajectories, encode_trajectories
from rl.learners.agent_bc import AgentBCConfig, AgentBCLearner, turn_nll
from search.agent import AgentConfig, ExpertPolicy, LLMPolicy, run_episodes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "search"))
from test_agent import StairsEnv  # noqa: E402

FMT = ReActFormat(instruction="Climb.", example="")


class ClimbExpert(StairsEnv):
    def expert_action(self) -> str:
        return "climb"


def _tok():
    return build_word_tokenizer("Climb Here is your task Floor Your to reach floor Action Observation climb rest".split())


def _expert(heights=(1, 2, 3)) -> list[Trajectory]:
    pool = EnvGroup([ClimbExpert(h) for h in heights])
    return [e.trajectory for e in run_episodes(ExpertPolicy(pool, FMT), pool, FMT, AgentConfig(source="expert"))]


def test_turn_nll_counts_turn_tokens_only():
    tok = _tok()
    model = build_tiny_model(TinyModelConfig(hidden_size=16, num_heads=2, num_kv_heads=2, intermediate_size=32), tok)
    trajs = _expert((2,))
    items, _ = encode_trajectories(trajs, tok, 512)
    batch = collate_trajectories(items, tok.pad_token_id)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    nll, n = turn_nll(logits, batch)
    # by hand: the two turns "Action: climb\n" (4 tokens each) + EOS after the last turn = 9 tokens
    assert n.item() == 9.0
    logp = torch.log_softmax(logits.float(), -1)[0]
    ids = batch.input_ids[0]
    positions = [j for j in range(len(ids) - 1) if batch.action_mask[0, j] > 0]
    assert tok.decode(ids[[j + 1 for j in positions]]) == "Action: climb\nAction: climb\n" + tok.eos_token
    expected = -sum(logp[j, ids[j + 1]] for j in positions)
    assert torch.allclose(nll, expected, atol=1e-5)


def test_bc_smoke_loss_falls_and_the_agent_acts_validly(tmp_path):
    torch.manual_seed(0)
    tok = _tok()
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_heads=2, num_kv_heads=2, intermediate_size=64), tok)
    cfg = AgentBCConfig(lr=1e-2, batch_size=3, max_steps=40, warmup_ratio=0.0, device="cpu", log_every=1)
    trajs = _expert()
    batch = collate_trajectories(encode_trajectories(trajs, tok, 512)[0], tok.pad_token_id)

    def mean_nll() -> float:
        with torch.no_grad():
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
            nll, n = turn_nll(logits, batch)
        return (nll / n).item()

    before = mean_nll()
    learner = AgentBCLearner(model, tok, cfg)
    out = learner.fit(trajs, tmp_path / "bc", progress=False)
    assert out["steps"] == 40 and out["trajectories"] == 3 and out["skipped"] == 0
    assert before > 4.0 and mean_nll() < 0.25 and out["last"]["loss"] < 0.3
    assert (tmp_path / "bc" / "config.json").exists() and (tmp_path / "bc" / "learner_info.json").exists()
    # the cloned agent plays through the agent loop: every turn parses and is admissible, every game won
    from reasoner.generation import GeneratorConfig
    from reasoner.hf_backend import HFGenerator
    gen = HFGenerator(learner.policy.eval(), tok, GeneratorConfig(device="cpu"))
    pool = EnvGroup([StairsEnv(h) for h in (1, 2, 4)])
    episodes = run_episodes(LLMPolicy(gen, FMT, AgentConfig(max_tokens=8)), pool, FMT, AgentConfig())
    for e in episodes:
        assert e.stats["won"] and e.stats["invalid"] == 0 and e.stats["parse_failures"] == 0
        assert set(e.trajectory.steps) == {"Action: climb\n"}


def test_rft_keeps_successes_only_and_rejects_empty_input():
    tok = _tok()
    model = build_tiny_model(TinyModelConfig(hidden_size=16, num_heads=2, num_kv_heads=2, intermediate_size=32), tok)
    trajs = _expert((1, 2))
    failed = Trajectory("stairs/9", 0, "agent", trajs[0].prompt, ("Action: rest\n",), ("Observation: Floor 0.\n",), 0.0)
    learner = AgentBCLearner(model, tok, AgentBCConfig(max_steps=1, device="cpu"))
    out = learner.fit(trajs + [failed], successes_only=True, algo="rft", progress=False)
    assert out["trajectories"] == 2 and learner.policy_version == 1
    with pytest.raises(ValueError, match="none successful"):
        AgentBCLearner(model, tok, AgentBCConfig(max_steps=1, device="cpu")).fit([failed], successes_only=True,
                                                                                progress=False)
    with pytest.raises(ValueError, match="agent_bc.lr"):
        AgentBCConfig(lr=0.0)
