"""Agent-facing NetHack/MiniHack wrappers: glyph crop, episodic message counts in info."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nle", reason="needs the envs extra (nle, minihack)")
pytest.importorskip("minihack", reason="needs the envs extra (nle, minihack)")

from envs.nethack_rl import (NUM_BLSTATS, PAD_GLYPH, AgentEnvConfig, MessageCounter, crop_glyphs,  # noqa: E402
                             make_agent_env)


def test_message_counter():
    c = MessageCounter()
    assert [c.see(m) for m in ["a", "b", "a", "", "a"]] == [1, 1, 2, 1, 3]
    c.reset()
    assert c.see("a") == 1


def test_crop_glyphs_pads_outside_the_map():
    g = np.arange(21 * 79, dtype=np.int32).reshape(21, 79)
    c = crop_glyphs(g, x=0, y=0, crop=3)
    assert c.tolist() == [[PAD_GLYPH] * 3, [PAD_GLYPH, 0, 1], [PAD_GLYPH, 79, 80]]
    assert crop_glyphs(g, x=40, y=10, crop=5)[2, 2] == g[10, 40]


def test_config_validation():
    with pytest.raises(ValueError):
        AgentEnvConfig(crop=4)
    with pytest.raises(ValueError):
        make_agent_env(AgentEnvConfig(task="MiniHack-NoSuchTask-v0"))


def test_minihack_counts_messages_per_episode():
    env = make_agent_env(AgentEnvConfig(task="MiniHack-Room-5x5-v0", crop=9))
    obs, info = env.reset(seed=0)
    assert obs["glyphs"].shape == (9, 9) and obs["blstats"].shape == (NUM_BLSTATS,)
    assert env.observation_space.contains(obs)
    assert info["message_count"] == 1 and isinstance(info["message"], str)
    seen: dict[str, int] = {info["message"]: 1}
    for t in range(60):
        obs, r, term, trunc, info = env.step(t % env.action_space.n)
        seen[info["message"]] = seen.get(info["message"], 0) + 1
        assert info["message_count"] == seen[info["message"]]
        if term or trunc:
            obs, info = env.reset()
            assert info["message_count"] == 1
            seen = {info["message"]: 1}
    # the agent is at the centre of its crop
    x, y = int(obs["blstats"][0]), int(obs["blstats"][1])
    assert obs["glyphs"][4, 4] != PAD_GLYPH and (x, y) != (0, 0)
    env.close()


def test_nethack_score_env_asks_only_for_the_keys_it_uses():
    env = make_agent_env(AgentEnvConfig(task="NetHackScore-v0", crop=5))
    obs, info = env.reset(seed=1)
    assert set(obs) == {"glyphs", "blstats"} and obs["glyphs"].shape == (5, 5)
    assert set(env.unwrapped.observation_space.spaces) == {"glyphs", "blstats", "message"}
    for _ in range(20):
        obs, r, term, trunc, info = env.step(0)
        assert info["message_count"] >= 1 and isinstance(info.get("end_status", 0), int)
        if term or trunc:
            break
    env.close()
