"""NetHack/MiniHack envs: message decoding, text rendering, seeding, no-op actions, statistics."""
from __future__ import annotations

import numpy as np
import pytest

from envs.interactive import StepResult
from envs.nethack import (MenuFormat, NetHackConfig, NetHackEnv, NetHackGoal, action_names,
                          decode_message, render_text)

_NEEDS_EXTRA = "needs the envs extra (pip install -e '.[envs]': nle, minihack)"


@pytest.fixture()
def nle():
    return pytest.importorskip("nle", reason=_NEEDS_EXTRA)


@pytest.fixture()
def minihack():
    pytest.importorskip("nle", reason=_NEEDS_EXTRA)
    return pytest.importorskip("minihack", reason=_NEEDS_EXTRA)


def _msg(raw: bytes) -> np.ndarray:
    out = np.zeros(256, dtype=np.uint8)
    out[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out


def test_decode_message():
    assert decode_message(_msg(b"It's a wall.")) == "It's a wall."
    assert decode_message(_msg(b"")) == ""
    assert decode_message(_msg(b"In what direction? ")) == "In what direction? "   # trailing space kept
    assert decode_message(_msg(b"caf\xe9")) == "caf\u00e9"                        # latin-1
    assert decode_message(_msg(b"a" * 256)) == "a" * 256                          # no NUL at all
    assert decode_message(_msg(b"ab\0cd")) == "ab"                                # NUL ends it


def test_render_text_crops_the_map():
    tty = np.full((24, 80), ord(" "), dtype=np.uint8)
    tty[0, :5] = np.frombuffer(b"stale", dtype=np.uint8)
    tty[5, 10:15] = np.frombuffer(b"|.@.|", dtype=np.uint8)
    tty[7, 12:14] = np.frombuffer(b"..", dtype=np.uint8)
    tty[22, :12] = np.frombuffer(b"Agent   St:9", dtype=np.uint8)
    tty[23, :6] = np.frombuffer(b"Dlvl:1", dtype=np.uint8)
    assert render_text(tty, "Hello.") == ("Message: Hello.\nMap:\n|.@.|\n\n  ..\n"
                                          "Status:\nAgent St:9\nDlvl:1")
    empty = np.full((24, 80), ord(" "), dtype=np.uint8)
    assert render_text(empty, "") == "Message: (none)\nMap:\n(nothing)\nStatus:\n\n"


def test_config_validation():
    with pytest.raises(ValueError):
        NetHackConfig(max_steps=0)
    with pytest.raises(ValueError):
        NetHackConfig(goal=NetHackGoal.SCORE, goal_threshold=0)
    assert NetHackConfig(goal="depth", goal_threshold=2).goal is NetHackGoal.DEPTH


def test_action_names_of_the_score_task(nle):
    import gymnasium as gym
    env = gym.make("NetHackScore-v0")
    assert action_names(env.unwrapped.actions) == (
        "more", "north", "east", "south", "west", "northeast", "southeast", "southwest", "northwest",
        "far north", "far east", "far south", "far west", "far northeast", "far southeast",
        "far southwest", "far northwest", "up", "down", "wait", "kick", "eat", "search")
    env.close()


def _play(task: str, seed: int, actions: list[str]) -> tuple[list[StepResult], dict]:
    env = NetHackEnv(NetHackConfig(task=task, max_steps=100))
    out = [env.reset(seed=seed)] + [env.step(a) for a in actions]
    stats = env.episode_stats()
    env.close()
    return out, stats


def test_seeded_episodes_replay_exactly(nle):
    actions = ["north", "search", "east", "far west", "south", "kick", "wait", "eat", "more", "southeast"] * 2
    a, stats_a = _play("NetHackScore-v0", 7, actions)
    b, stats_b = _play("NetHackScore-v0", 7, actions)
    c, _ = _play("NetHackScore-v0", 8, actions)
    assert [r.text for r in a] == [r.text for r in b]
    assert [r.info for r in a] == [r.info for r in b] and stats_a == stats_b
    assert a[0].text != c[0].text
    first = a[0]
    assert first.text.startswith("Message: ") and "\nMap:\n" in first.text and "@" in first.text
    assert first.info["message"] == first.text.split("\n", 1)[0][len("Message: "):]
    assert (first.info["score"], first.info["depth"], first.info["turn"]) == (0, 1, 1)
    assert stats_a["steps"] == len(actions) and stats_a["invalid"] == 0
    assert stats_a["turns"] == a[-1].info["turn"] and stats_a["score"] == a[-1].info["score"]
    assert stats_a["return"] == pytest.approx(sum(r.reward for r in a[1:]))


def test_invalid_action_is_a_counted_no_op(nle):
    env = NetHackEnv(NetHackConfig(max_steps=3))
    first = env.reset(seed=3)
    r = env.step("fly to the moon")
    assert (r.invalid, r.reward, r.done) == (True, 0.0, False)
    assert r.text.startswith("Message: Invalid action.\n") and r.info["message"] == ""
    assert r.text.split("\n", 1)[1] == first.text.split("\n", 1)[1]       # same screen
    assert r.info["turn"] == first.info["turn"]                           # no game time passed
    assert not env.step("Search").invalid                                 # names are case-blind
    r = env.step("")
    assert (r.invalid, r.done, r.truncated) == (True, True, True)
    assert (env.num_steps, env.num_invalid) == (3, 2)
    env.close()


def _towards_stairs(text: str) -> str:
    rows = text.split("Map:\n", 1)[1].split("\nStatus:", 1)[0].split("\n")
    (ay, ax), (gy, gx) = [next((y, r.index(ch)) for y, r in enumerate(rows) if ch in r) for ch in "@>"]
    vertical = {-1: "north", 0: "", 1: "south"}[int(np.sign(gy - ay))]
    horizontal = {-1: "west", 0: "", 1: "east"}[int(np.sign(gx - ax))]
    return vertical + horizontal


def test_minihack_goal_and_episode_stats(minihack):
    env = NetHackEnv(NetHackConfig(task="MiniHack-Room-5x5-v0", max_steps=30))
    r = env.reset(seed=0)
    assert r.actions == ("north", "east", "south", "west", "northeast", "southeast", "southwest", "northwest")
    while not r.done:
        r = env.step(_towards_stairs(r.text))
    assert (r.won, r.reward, r.truncated) == (True, 1.0, False)
    stats = env.episode_stats()
    assert stats["won"] and stats["end_status"] == "task_successful" and stats["return"] == 1.0
    assert stats["steps"] == 4 and stats["invalid"] == 0 and stats["depth"] == 1
    env.close()


def test_depth_goal_is_not_met_on_level_one(nle):
    env = NetHackEnv(NetHackConfig(goal="depth", goal_threshold=2, max_steps=2))
    env.reset(seed=1)
    env.step("search")
    r = env.step("search")
    assert (r.won, r.truncated) == (False, True)
    env.close()


def test_menu_format():
    first = StepResult(text="Message: hi\nMap:\n@\nStatus:\nS", actions=("north", "search"))
    fmt = MenuFormat("MiniHack-Room-5x5-v0")
    prompt = fmt.initial_prompt(first)
    assert prompt.endswith("north, search\n\nMessage: hi\nMap:\n@\nStatus:\nS\nAction:")
    header = prompt[:prompt.index("\nMessage: ")]
    assert "MiniHack-Room-5x5-v0" in header
    assert fmt.split_turn(" North.\nmore text") == (" North.\n", "north")
    assert fmt.split_turn("   ") == (" \n", None)
    second = fmt.observation(StepResult(text="Message: x\nMap:\n.@\nStatus:\nS", actions=None))
    assert fmt.context(prompt, [" north\n"], [second]) == header + "\nMessage: x\nMap:\n.@\nStatus:\nS\nAction:"
    assert fmt.context(prompt, [], []) == prompt
