"""ALFWorld through its real TextWorld machinery, on six real games copied into tests/data.

Games: tests/data/alfworld/PROVENANCE.md (one per task type, from valid_unseen).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from envs.alfworld import (TASK_TYPES, AlfworldConfig, AlfworldEnv, ExpertKind, ReActFormat,
                           find_games, goal_of, parse_react_action, resolve_data_dir, strip_banner)
from envs.base import TaskError
from envs.interactive import EnvError, StepResult

DATA = Path(__file__).resolve().parents[1] / "data" / "alfworld"
_NEEDS_EXTRA = "needs the envs extra (pip install -e '.[envs]': alfworld, textworld[pddl])"


@pytest.fixture(scope="module")
def games():
    pytest.importorskip("alfworld", reason=_NEEDS_EXTRA)
    pytest.importorskip("textworld", reason=_NEEDS_EXTRA)
    return {g.task_type: g for g in find_games(DATA, "valid_unseen")}


# ------------------------------------------------------------------ text helpers (no extra needed)
def test_parse_react_action():
    assert parse_react_action("Thought: find it.\nAction: go to Countertop 1.\n") == "go to countertop 1"
    assert parse_react_action("Action:   take  apple 1 from fridge 1") == "take apple 1 from fridge 1"
    assert parse_react_action("action: \"open drawer 2\"") == "open drawer 2"
    assert parse_react_action("Action: put mug 1 in/on desk 1") == "move mug 1 to desk 1"
    assert parse_react_action("Action: put mug 1 on desk 1\nAction: look") == "move mug 1 to desk 1"
    assert parse_react_action("Thought: I should look around.") is None
    assert parse_react_action("Action:   \n") is None


def test_react_turn_split_and_format():
    fmt = ReActFormat()
    assert fmt.split_turn(" Thought: go.\nAction: go to desk 1\nThought: more\nAction: look") == \
        ("Thought: go.\nAction: go to desk 1\n", "go to desk 1")
    assert fmt.split_turn("I am lost\n\n") == ("I am lost\n", None)
    assert fmt.split_turn("") == ("\n", None)
    first = StepResult(text="You are in a room.\n\nYour task is to: put a mug on desk.", actions=None)
    prompt = fmt.initial_prompt(first)
    assert prompt.startswith(fmt.instruction) and "Here is an example." in prompt
    assert prompt.endswith("Here is your task.\nYou are in a room.\n\nYour task is to: put a mug on desk.\n")
    obs = fmt.observation(StepResult(text="Nothing happens.", actions=None))
    assert obs == "Observation: Nothing happens.\n"
    assert fmt.context("P\n", ["Action: look\n"], [obs]) == "P\nAction: look\nObservation: Nothing happens.\n"
    assert fmt.turn_for_action("look") == "Action: look\n"
    assert parse_react_action(fmt.split_turn(fmt.turn_for_action("go to sofa 1"))[0]) == "go to sofa 1"


def test_goal_and_banner():
    text = "-= Welcome to TextWorld, ALFRED! =-\n\nYou are here.\n\nYour task is to: cool a pan.\n"
    assert strip_banner(text) == "You are here.\n\nYour task is to: cool a pan.\n"
    assert goal_of(strip_banner(text)) == "cool a pan."
    with pytest.raises(EnvError):
        goal_of("no task here")


def test_data_dir_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("ALFWORLD_DATA", str(DATA))
    for unset in ("", "$ALFWORLD_DATA"):  # the library never reads the environment
        with pytest.raises(TaskError, match="ALFWORLD_DATA"):
            resolve_data_dir(unset)
    with pytest.raises(TaskError, match="not an ALFWorld data directory"):
        resolve_data_dir(tmp_path)
    assert resolve_data_dir(str(DATA)) == DATA
    with pytest.raises(TaskError, match="not found"):
        find_games(DATA, "valid_seen")


# ------------------------------------------------------------------ real games
def test_find_games_matches_alfworld_collector(games):
    assert sorted(games) == sorted(TASK_TYPES)
    from alfworld.agents.environment.alfred_tw_env import AlfredTWEnv
    config = {"env": {"task_types": [1, 2, 3, 4, 5, 6], "goal_desc_human_anns_prob": 0},
              "dataset": {"eval_ood_data_path": str(DATA / "json_2.1.1" / "valid_unseen"),
                          "num_eval_games": -1}}
    theirs = AlfredTWEnv(config, train_eval="eval_out_of_distribution").game_files
    assert sorted(str(Path(f).resolve()) for f in theirs) == sorted(g.game_file for g in games.values())
    one = games["pick_and_place_simple"]
    assert one.id == ("alfworld/valid_unseen/pick_and_place_simple-SoapBottle-None-Toilet-424/"
                      "trial_T20190907_004321_405868")
    assert len(find_games(DATA, "valid_unseen", task_types=("look_at_obj_in_light",))) == 1
    assert len(find_games(DATA, "valid_unseen", limit=2)) == 2


@pytest.mark.parametrize("task_type", ["pick_and_place_simple", "pick_heat_then_place_in_recep",
                                       "pick_clean_then_place_in_recep"])
def test_walkthrough_wins_and_success_flag(games, task_type):
    env = AlfworldEnv(games[task_type], AlfworldConfig(expert=ExpertKind.WALKTHROUGH))
    first = env.reset()
    assert first.text.startswith("You are in the middle of a room.")
    assert f"Your task is to: {env.goal}" in first.text and "Welcome" not in first.text
    assert "look" in first.actions and "inventory" in first.actions
    walk = env.walkthrough
    assert 3 <= len(walk) <= 9
    results = []
    for i, command in enumerate(walk):
        assert env.expert_action() == command
        assert command in (results[-1].actions if results else first.actions)
        results.append(env.step(command))
    assert [r.won for r in results] == [False] * (len(walk) - 1) + [True]
    assert [r.reward for r in results] == [0.0] * (len(walk) - 1) + [1.0]
    assert results[-1].done and not results[-1].truncated
    assert env.episode_stats()["won"] and env.num_steps == len(walk) and env.num_invalid == 0
    env.close()


def test_invalid_command_and_step_limit(games):
    env = AlfworldEnv(games["pick_and_place_simple"], AlfworldConfig(max_steps=3))
    first = env.reset()
    r = env.step("dance wildly")
    assert (r.text, r.invalid, r.done, r.won, r.reward) == ("Nothing happens.", True, False, False, 0.0)
    assert r.actions == first.actions
    r = env.step("  Go To   Countertop 1 ")   # case and spaces are normalised
    assert not r.invalid and r.text.startswith("You arrive at countertop 1.")
    r = env.step("take soapbottle 3 from countertop 1")
    assert (r.done, r.truncated, r.won) == (True, True, False)
    assert env.episode_stats() == {
        "env_id": games["pick_and_place_simple"].id, "task_type": "pick_and_place_simple", "steps": 3,
        "invalid": 1, "return": 0.0, "won": False, "truncated": True, "goal": "put some soapbottle on toilet."}
    with pytest.raises(EnvError):
        env.step("look")
    with pytest.raises(EnvError, match="no expert"):
        env.expert_action()
    # closing hands the planner library back; the next game built reuses it and plays normally
    from envs import alfworld
    env.close()
    free = len(alfworld._FREE_PLANNER_LIBS)
    assert free >= 1
    assert env.reset().text == first.text and len(alfworld._FREE_PLANNER_LIBS) == free - 1
    assert env.step("go to countertop 1").text.startswith("You arrive at countertop 1.")
    env.close()


def test_handcoded_expert_plays_as_alfworld_drives_it(games):
    env = AlfworldEnv(games["pick_heat_then_place_in_recep"], AlfworldConfig(expert=ExpertKind.HANDCODED))
    env.reset(seed=0)
    played = []
    while not (env.last.done):
        played.append(env.expert_action())
        env.step(played[-1])
    assert played == ["look", "go to sinkbasin 1", "take tomato 2 from sinkbasin 1", "go to microwave 1",
                      "heat tomato 2 with microwave 1", "go to garbagecan 1", "move tomato 2 to garbagecan 1"]
    assert env.last.won
    env.close()
