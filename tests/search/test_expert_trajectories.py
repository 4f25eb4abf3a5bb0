"""Walkthrough replay through the real TextWorld env -> expert `Trajectory` records, cached; the
closed-vocabulary tokenizer covers them exactly.

Games: three of the six training games in tests/data/alfworld/train_games.tar.xz (PROVENANCE.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from envs.alfworld import AlfworldConfig, AlfworldEnv, ExpertKind, ReActFormat
from envs.alfworld_games import AGENT_INSTRUCTION, load_split, prepare_data_dir, vocabulary_words
from search import expert_trajectories as et

DATA = Path(__file__).resolve().parents[1] / "data" / "alfworld"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    pytest.importorskip("alfworld", reason="needs the envs extra (alfworld, textworld[pddl])")
    tmp = tmp_path_factory.mktemp("alfworld")
    root = prepare_data_dir(DATA, tmp / "cache")
    games = load_split(root, "train")[1:4]            # pick_and_place, pick_clean, pick_cool
    cfg = AlfworldConfig(data_dir=str(root), expert=ExpertKind.WALKTHROUGH)
    fmt = ReActFormat(instruction=AGENT_INSTRUCTION, example="")
    cache = tmp / "expert.parquet"
    trajs = et.expert_trajectories([AlfworldEnv(g, cfg) for g in games], fmt, cache_path=cache, progress=False)
    return games, cfg, fmt, cache, trajs


def test_walkthrough_replay_wins_every_game(played):
    games, _, fmt, _, trajs = played
    assert [t.problem_id for t in trajs] == [g.id for g in games]
    for g, t in zip(games, trajs):
        walkthrough = json.loads(Path(g.game_file).read_text())["walkthrough"]
        assert t.reward == 1.0 and t.source == "expert" and t.policy_version == 0
        assert t.steps == tuple(f"Action: {a}\n" for a in walkthrough)
        assert t.prompt.startswith(AGENT_INSTRUCTION + "\n\nHere is your task.\nYou are in the middle of a room.")
        assert "Your task is to: " in t.prompt and "Welcome to TextWorld" not in t.prompt
        assert all(o.startswith("Observation: ") and o.endswith("\n") for o in t.observations)
        assert "Nothing happens." not in "".join(t.observations)      # every walkthrough command is valid
    # pick_and_place_simple-Book-None-Sofa-202: the book lies on the armchair
    assert trajs[0].steps[0] == "Action: go to armchair 1\n"
    assert trajs[0].observations[0].startswith("Observation: You arrive at armchair 1.")
    assert trajs[0].observations[-1] == "Observation: You move the book 1 to the sofa 1.\n"


def test_cache_round_trips_without_playing(played, monkeypatch):
    games, cfg, fmt, cache, trajs = played
    assert cache.exists() and cache.with_name(cache.name + ".key.json").exists()

    def no_play(*a, **k):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(et, "play_expert", no_play)
    again = et.expert_trajectories([AlfworldEnv(g, cfg) for g in games], fmt, cache_path=cache, progress=False)
    assert again == trajs
    # a different prompt format or game list does not match the cache: it would play again
    other = ReActFormat(instruction="Other.", example="")
    with pytest.raises(AssertionError, match="cache should have been read"):
        et.expert_trajectories([AlfworldEnv(g, cfg) for g in games], other, cache_path=cache, progress=False)
    with pytest.raises(AssertionError, match="cache should have been read"):
        et.expert_trajectories([AlfworldEnv(g, cfg) for g in games[:2]], fmt, cache_path=cache, progress=False)


def test_closed_vocabulary_tokenizer_is_exact_on_expert_text(played):
    from reasoner.tokenizer import build_word_tokenizer
    games, _, _, _, trajs = played
    tok = build_word_tokenizer(vocabulary_words(games, [AGENT_INSTRUCTION]))
    for t in trajs:
        text = t.prompt + t.response
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text
    assert len(tok) < 1000
