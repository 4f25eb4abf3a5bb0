"""The ALFWorld train split as a task: unpack once into a cache, one loader for all splits, vocabulary.

Data: tests/data/alfworld (six valid_unseen games and a train archive of six training games;
see its PROVENANCE.md). Needs no alfworld package: only files are read here.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from envs.alfworld import TASK_TYPES, find_games
from envs.alfworld_games import (AlfworldTaskConfig, load_split, prepare_data_dir, sample_games,
                                 vocabulary_words)
from envs.base import TaskError

DATA = Path(__file__).resolve().parents[1] / "data" / "alfworld"
TRAIN_NAMES = [
    "look_at_obj_in_light-Pillow-None-DeskLamp-316/trial_T20190908_232351_848868",
    "pick_and_place_simple-Book-None-Sofa-202/trial_T20190907_043708_054006",
    "pick_clean_then_place_in_recep-Cloth-None-Toilet-406/trial_T20190908_102552_835735",
    "pick_cool_then_place_in_recep-Apple-None-SideTable-21/trial_T20190907_180711_700359",
    "pick_heat_then_place_in_recep-Mug-None-CoffeeMachine-14/trial_T20190907_012116_449794",
    "pick_two_obj_and_place-ToiletPaper-None-SideTable-420/trial_T20190909_114817_260394",
]


def test_prepare_unpacks_once_and_links_the_evaluation_splits(tmp_path):
    root = prepare_data_dir(DATA, tmp_path / "cache")
    assert root == tmp_path / "cache"
    games = sorted(p.relative_to(root / "json_2.1.1" / "train").parent.as_posix()
                   for p in (root / "json_2.1.1" / "train").glob("*/*/game.tw-pddl"))
    assert games == TRAIN_NAMES
    assert (root / "json_2.1.1" / "valid_unseen").resolve() == (DATA / "json_2.1.1" / "valid_unseen").resolve()
    assert (root / "logic" / "alfred.pddl").is_file()
    assert not (root / "json_2.1.1" / "valid_seen").exists()       # the source has no valid_seen
    # a second call does not unpack again: a file removed from the cache stays removed
    victim = root / "json_2.1.1" / "train" / TRAIN_NAMES[0] / "game.tw-pddl"
    victim.unlink()
    assert prepare_data_dir(DATA, root) == root and not victim.exists()
    # a source that already has the train split is used as it is
    assert prepare_data_dir(root, tmp_path / "unused") == root
    assert not (tmp_path / "unused").exists()


def test_one_loader_for_all_splits(tmp_path):
    train = load_split(DATA, "train", cache=tmp_path)
    assert [g.name for g in train] == TRAIN_NAMES
    assert [g.task_type for g in train] == [n.split("-")[0] for n in TRAIN_NAMES]
    assert sorted(g.task_type for g in train) == sorted(TASK_TYPES)
    assert all(g.split == "train" and g.id == f"alfworld/train/{g.name}" for g in train)
    unseen = load_split(DATA, "valid_unseen")
    assert unseen == find_games(DATA, "valid_unseen") and len(unseen) == 6
    assert [g.name for g in load_split(DATA, "train", cache=tmp_path, limit=2)] == TRAIN_NAMES[:2]
    with pytest.raises(TaskError, match="needs a cache directory"):
        load_split(DATA, "train")
    bare = tmp_path / "bare"
    (bare / "json_2.1.1").mkdir(parents=True)
    with pytest.raises(TaskError, match="no json_2.1.1/train and no train_games.tar.xz"):
        prepare_data_dir(bare, tmp_path / "y")


def test_sample_games_is_a_seeded_shuffle(tmp_path):
    train = load_split(DATA, "train", cache=tmp_path)
    a, b = sample_games(train, 3, seed=1), sample_games(train, 3, seed=1)
    assert a == b and len(a) == 3 and len(set(a)) == 3
    assert sorted(sample_games(train, 0, seed=1), key=lambda g: g.name) == train


def test_vocabulary_covers_game_text(tmp_path):
    games = load_split(DATA, "train", cache=tmp_path) + load_split(DATA, "valid_unseen")
    words = vocabulary_words(games)
    assert words == sorted(set(words)) and all(w.isalpha() for w in words)
    # template words of the grammar, object names as the game prints them, command verbs
    for w in ("You", "arrive", "at", "On", "see", "nothing", "closed", "countertop", "sinkbasin",
              "toiletpaper", "desklamp", "pillow", "go", "take", "from", "move", "to", "heat", "with",
              "Action", "Observation"):
        assert w in words, w
    assert "CounterTopType" not in words and "countertoptype" not in words


def test_task_config_validation():
    with pytest.raises(ValueError, match="alfworld_task"):
        AlfworldTaskConfig(rollouts_per_game=0)
