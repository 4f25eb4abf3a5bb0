"""`python -m launch.evaluate_envs`: ALFWorld and NetHack runs write the documented JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from launch.evaluate_envs import main
from reasoner.records import Trajectory, read_records

DATA = Path(__file__).resolve().parents[1] / "data" / "alfworld"
_NEEDS_EXTRA = "needs the envs extra (pip install -e '.[envs]')"


@pytest.mark.slow
def test_alfworld_walkthrough_scores_every_game(tmp_path, capsys):
    pytest.importorskip("alfworld", reason=_NEEDS_EXTRA)
    out, records = tmp_path / "r.json", tmp_path / "t.jsonl"
    rc = main(["--task", "alfworld", "--split", "valid_unseen", "--data-dir", str(DATA), "--model", "walkthrough",
               "--limit", "2", "--batch-size", "1", "--out", str(out), "--records", str(records)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["success_rate"] == 1.0 and res["episodes"] == 2 and res["model"] == "walkthrough"
    assert res["per_type"] == {"look_at_obj_in_light": {"episodes": 1, "success_rate": 1.0, "avg_steps": 3.0},
                               "pick_and_place_simple": {"episodes": 1, "success_rate": 1.0, "avg_steps": 4.0}}
    assert res["avg_steps"] == 3.5 and res["avg_invalid"] == 0.0
    trajs = read_records(records, Trajectory)
    assert [t.source for t in trajs] == ["walkthrough"] * 2 and [len(t.steps) for t in trajs] == [3, 4]
    assert "overall" in capsys.readouterr().out


def test_nethack_random_reports_score_and_depth(tmp_path):
    pytest.importorskip("minihack", reason=_NEEDS_EXTRA)
    out = tmp_path / "n.json"
    rc = main(["--task", "nethack", "--env", "MiniHack-Room-5x5-v0", "--model", "random", "--episodes", "3",
               "--max-steps", "5", "--seed", "4", "--threads", "2", "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["episodes"] == 3 and res["split"] == "MiniHack-Room-5x5-v0"
    assert {"mean_score", "median_score", "mean_depth", "median_depth", "mean_max_depth", "success_rate",
            "per_type"} <= set(res)
    assert (res["mean_depth"], res["avg_steps"], res["avg_invalid"], res["success_rate"]) == (1.0, 5.0, 0.0, 0.0)
    assert list(res["per_type"]) == ["MiniHack-Room-5x5-v0"]


def test_errors_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    assert main(["--task", "alfworld", "--model", "expert", "--out", str(tmp_path / "x.json")]) == 2
    assert "ALFWORLD_DATA" in capsys.readouterr().err
    assert main(["--task", "nethack", "--model", "expert", "--out", str(tmp_path / "y.json")]) == 2
    assert "no expert" in capsys.readouterr().err


def test_checkpoint_model_plays_through_the_cli(tmp_path):
    pytest.importorskip("minihack", reason=_NEEDS_EXTRA)
    pytest.importorskip("torch")
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    from reasoner.tokenizer import build_word_tokenizer

    words = ("You are playing NetHack MiniHack Room x v Each turn you see the game message the map is you "
             "and your status Choose next action from this list answer with its name only north east south "
             "west northeast southeast southwest northwest Message none Map Status Agent St Dx Co In Wi Ch "
             "Dlvl HP Pw AC Xp Lawful Neutral Chaotic S T Action lucky Full moon tonight").split()
    tok = build_word_tokenizer(words)
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                             max_position_embeddings=1024), tok)
    ckpt = tmp_path / "tiny"
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    out, records = tmp_path / "m.json", tmp_path / "m.jsonl"
    rc = main(["--task", "nethack", "--env", "MiniHack-Room-5x5-v0", "--model", str(ckpt), "--episodes", "2",
               "--max-steps", "2", "--max-tokens", "4", "--device", "cpu", "--max-model-len", "1024",
               "--out", str(out), "--records", str(records)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["episodes"] == 2 and res["avg_steps"] == 2.0 and res["model"] == str(ckpt)
    assert res["model_calls"] == 2 and 0 < res["generated_tokens"] <= 2 * 2 * 4
    trajs = read_records(records, Trajectory)
    assert [t.source for t in trajs] == ["agent", "agent"] and all(len(t.step_rewards) == 2 for t in trajs)


def test_alfworld_best_of_k_through_the_cli(tmp_path):
    pytest.importorskip("alfworld", reason=_NEEDS_EXTRA)
    from envs.alfworld import ReActFormat, find_games
    from envs.alfworld_games import AGENT_INSTRUCTION, vocabulary_words
    from launch.alfworld_data import save_turn_format
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    from reasoner.tokenizer import build_word_tokenizer
    from reasoner.value_model import ValueModel

    tok = build_word_tokenizer(vocabulary_words(find_games(DATA, "valid_unseen"), [AGENT_INSTRUCTION]))
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                             max_position_embeddings=1024), tok)
    ckpt, value = tmp_path / "policy", tmp_path / "value"
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    save_turn_format(ckpt, ReActFormat(instruction=AGENT_INSTRUCTION, example=""))
    ValueModel.from_policy(model, tok).save_pretrained(value)
    out, records = tmp_path / "b.json", tmp_path / "b.jsonl"
    rc = main(["--task", "alfworld", "--split", "valid_unseen", "--data-dir", str(DATA), "--model", str(ckpt),
               "--value", str(value), "--method", "best_of_k@3", "--limit", "1", "--max-steps", "2",
               "--max-tokens", "4", "--device", "cpu", "--max-model-len", "1024", "--out", str(out),
               "--records", str(records)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["method"] == "best_of_k@3" and res["episodes"] == 1
    # K = 3 candidates of <= 4 tokens per turn, in one generate call per turn
    assert 0 < res["generated_tokens"] <= res["model_calls"] * 3 * 4
    traj = read_records(records, Trajectory)[0]
    assert traj.prompt.startswith(AGENT_INSTRUCTION + "\n\nHere is your task.\n")
    assert main(["--task", "alfworld", "--data-dir", str(DATA), "--model", str(ckpt), "--method", "best_of_k@3",
                 "--out", str(tmp_path / "c.json")]) == 2                       # no --value
    assert main(["--task", "alfworld", "--data-dir", str(DATA), "--model", str(ckpt), "--method", "beam@3",
                 "--value", str(value), "--out", str(tmp_path / "d.json")]) == 2
