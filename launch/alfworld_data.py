"""ALFWorld training data: unpack the train games, play their walkthroughs into expert trajectories
(cached), and build the closed-vocabulary tokenizer of the tiny agent.

    python -m launch.alfworld_data --config configs/alfworld_tiny.yaml            # all 3,553 games
    python -m launch.alfworld_data --config configs/alfworld_tiny.yaml alfworld_task.expert_games=480 --processes 2

The cache (`alfworld_task.cache_dir`) holds the unpacked train split, `expert_<n>_<seed>.parquet`
(+ `.key.json`) and nothing else; every entry point that needs expert data calls `expert_records`,
which reads the cache when it matches. Errors print one line and exit 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["FORMAT_FILE", "turn_format", "save_turn_format", "turn_format_of", "data_root", "expert_records",
           "build_agent_tokenizer", "main"]

FORMAT_FILE = "agent_format.json"
"""Written into every ALFWorld agent checkpoint: the prompt the policy was trained with."""


def turn_format(task_cfg):
    """The ReAct turn format of the recipe (short instruction; one-shot example only if asked)."""
    from envs.alfworld import REACT_EXAMPLE, ReActFormat
    return ReActFormat(instruction=task_cfg.instruction, example=REACT_EXAMPLE if task_cfg.react_example else "")


def save_turn_format(checkpoint: str | Path, fmt) -> None:
    """Record `fmt`'s prompt settings in `checkpoint/agent_format.json`."""
    (Path(checkpoint) / FORMAT_FILE).write_text(json.dumps({"instruction": fmt.instruction,
                                                            "example": fmt.example}, indent=2) + "\n")


def turn_format_of(checkpoint: str | Path | None):
    """The ReAct format a checkpoint was trained with (ReAct's default when it records none)."""
    from envs.alfworld import ReActFormat
    path = Path(checkpoint) / FORMAT_FILE if checkpoint else None
    if path is None or not path.is_file():
        return ReActFormat()
    saved = json.loads(path.read_text())
    return ReActFormat(instruction=saved["instruction"], example=saved["example"])


def data_root(task_cfg) -> Path:
    """The data directory with all three splits (the train archive unpacked into the cache once)."""
    from envs.alfworld_games import prepare_data_dir
    return prepare_data_dir(task_cfg.source, task_cfg.cache_dir)


def expert_records(task_cfg, env_cfg, *, processes: int = 1, progress: bool = True) -> list:
    """Walkthrough trajectories of `alfworld_task.expert_games` sampled training games (cached)."""
    from envs.alfworld import AlfworldEnv, ExpertKind, find_games
    from envs.alfworld_games import sample_games
    from search.expert_trajectories import expert_trajectories
    root = data_root(task_cfg)
    games = sample_games(find_games(root, "train"), task_cfg.expert_games, task_cfg.seed)
    cfg = dataclasses.replace(env_cfg, data_dir=str(root), expert=ExpertKind.WALKTHROUGH)
    cache = Path(task_cfg.cache_dir) / f"expert_{len(games)}_{task_cfg.seed}.parquet"
    return expert_trajectories([AlfworldEnv(g, cfg) for g in games], turn_format(task_cfg), cache_path=cache,
                               parts_dir=Path(task_cfg.cache_dir) / f"expert_parts_{task_cfg.seed}",
                               processes=processes, progress=progress)


def build_agent_tokenizer(task_cfg):
    """Word-level tokenizer over every word the ALFWorld games (all splits) and the prompt can print."""
    from envs.alfworld import find_games
    from envs.alfworld_games import vocabulary_words
    from reasoner.tokenizer import build_word_tokenizer
    root = data_root(task_cfg)
    games = [g for split in ("train", "valid_seen", "valid_unseen") if (root / "json_2.1.1" / split).is_dir()
             for g in find_games(root, split)]
    return build_word_tokenizer(vocabulary_words(games, [task_cfg.instruction]))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m launch.alfworld_data", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="YAML preset, e.g. configs/alfworld_tiny.yaml")
    ap.add_argument("--processes", type=int, default=1, help="worker processes that play the walkthroughs")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = ap.parse_args(argv)
    from envs.base import TaskError
    from launch.config import ConfigError, load_config
    from launch.seeding import pin_threads
    pin_threads()
    try:
        cfg = load_config(args.config, args.overrides)
        trajs = expert_records(cfg.alfworld_task, cfg.alfworld, processes=args.processes)
        tok = build_agent_tokenizer(cfg.alfworld_task)
    except (ConfigError, TaskError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    won = sum(t.reward for t in trajs)
    print(f"{len(trajs)} expert trajectories ({won:.0f} won), {sum(len(t.steps) for t in trajs)} turns; "
          f"tokenizer: {len(tok)} tokens; cache {cfg.alfworld_task.cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
