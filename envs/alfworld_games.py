"""ALFWorld's training games as a task: the train archive unpacked once into a cache, one loader
for train / valid_seen / valid_unseen, and the closed vocabulary of the games' text.

The data directory that ALFWorld expects (`envs.alfworld`) holds the two evaluation splits; the
3,553 training games ship as one archive next to them (shared/data/alfworld/PROVENANCE.md):

    <source>/json_2.1.1/{valid_seen,valid_unseen}/...   <source>/logic/...
    <source>/train_games.tar.xz   ->  json_2.1.1/train/<task dir>/<trial>/game.tw-pddl

`prepare_data_dir(source, cache)` unpacks the archive into `cache` once (a marker file records
the archive's size and mtime; a changed archive is unpacked again) and links the evaluation
splits and `logic/` of `source` next to it, so `cache` is one ALFWorld data directory with all
three splits and `envs.alfworld.find_games(cache, split)` loads any of them. A source that
already has `json_2.1.1/train` is returned unchanged. The train split has no traj_data.json
(its task type comes from the folder name): its games are played with the stored walkthrough.

The closed vocabulary (`vocabulary_words`): every word the games can print is either template
text of the game grammar ("You arrive at", "is closed", ...) or an object or receptacle name,
which the game prints as the lower-cased PDDL type plus a number ("CounterTop" -> "countertop 1").
So the words of the grammars and the lower-cased type names of the PDDL problems cover every
observation and command; `reasoner.tokenizer.build_word_tokenizer` turns them into a tokenizer.
"""
from __future__ import annotations

import json
import os
import random
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from envs.alfworld import REACT_EXAMPLE, REACT_INSTRUCTION, AlfworldGame, ReActFormat, Split, find_games
from envs.base import TaskError
from envs.interactive import StepResult

__all__ = ["TRAIN_ARCHIVE", "AGENT_INSTRUCTION", "AlfworldTaskConfig", "prepare_data_dir", "load_split",
           "sample_games", "vocabulary_words"]

TRAIN_ARCHIVE = "train_games.tar.xz"
_MARKER = ".train_unpacked.json"
_WORD = re.compile(r"[A-Za-z]+")
_PDDL_NAME = re.compile(r"^\s*([A-Za-z]+)\s+-\s+[a-z]+\s*$", re.M)


AGENT_INSTRUCTION = "You are a household agent. Each turn, give one command in a line that starts with Action:."
"""The short instruction of the tiny agent's prompt (a 2k-token context has no room for ReAct's one-shot example)."""


@dataclass
class AlfworldTaskConfig:
    """ALFWorld as a training task (the `alfworld_task` block of a recipe)."""
    source: str = "$ALFWORLD_DATA"
    """Data directory with the evaluation splits and train_games.tar.xz (or json_2.1.1/train)."""
    cache_dir: str = "runs/alfworld_cache"
    """Where the train archive is unpacked and expert trajectories are cached (shared between runs)."""
    expert_games: int = 0
    """Training games whose walkthroughs become expert trajectories for BC (0 = all 3,553)."""
    games_per_iteration: int = 64
    """Training games rolled out per iteration (fresh ones each iteration, cycling)."""
    rollouts_per_game: int = 5
    """Rollouts of the current policy per training game (OREO: 5)."""
    rollout_temperature: float = 1.0
    """Sampling temperature of the rollouts (OREO: 1)."""
    eval_games: int = 0
    """Games of each evaluation split (valid_seen, valid_unseen) per evaluation (0 = all: 140 / 134)."""
    instruction: str = AGENT_INSTRUCTION
    """First line of every episode's prompt."""
    react_example: bool = False
    """Include ReAct's one-shot example in the prompt (for real chat models with a long context)."""
    seed: int = 0
    """Seed of the game samples."""

    def __post_init__(self) -> None:
        if self.expert_games < 0 or self.games_per_iteration < 1 or self.rollouts_per_game < 1 or self.eval_games < 0:
            raise ValueError("alfworld_task: expert_games/eval_games >= 0, games_per_iteration/rollouts_per_game >= 1")


def _archive_stamp(archive: Path) -> dict:
    st = archive.stat()
    return {"archive": str(archive.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def prepare_data_dir(source: str | os.PathLike, cache: str | os.PathLike) -> Path:
    """One ALFWorld data directory with train, valid_seen and valid_unseen (see the module docstring).

    Args:
        source: an ALFWorld data directory (json_2.1.1/ inside) that holds the evaluation splits
            and either json_2.1.1/train or `train_games.tar.xz`.
        cache: where the archive is unpacked (created if missing; reused on later calls).

    Returns:
        `source` when it already has the train split, else `cache`.

    Raises:
        TaskError: `source` is not a data directory, or it has neither train split nor archive.
    """
    source = Path(os.path.expandvars(str(source)))
    if not (source / "json_2.1.1").is_dir():
        raise TaskError(f"{source} is not an ALFWorld data directory (no json_2.1.1/ inside)")
    if (source / "json_2.1.1" / "train").is_dir():
        return source
    archive = source / TRAIN_ARCHIVE
    if not archive.is_file():
        raise TaskError(f"{source} has no json_2.1.1/train and no {TRAIN_ARCHIVE} to unpack it from")
    cache = Path(cache)
    marker = cache / _MARKER
    stamp = _archive_stamp(archive)
    if not (marker.is_file() and json.loads(marker.read_text()) == stamp):
        (cache / "json_2.1.1").mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:xz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("json_2.1.1/train/")]
            if not members:
                raise TaskError(f"{archive} holds no json_2.1.1/train/ files")
            tar.extractall(cache, members=members, filter="data")
        marker.write_text(json.dumps(stamp))
    for rel in ("json_2.1.1/valid_seen", "json_2.1.1/valid_unseen", "logic"):
        link, target = cache / rel, (source / rel).resolve()
        if target.exists() and not link.exists():
            link.symlink_to(target, target_is_directory=True)
    return cache


def load_split(source: str | os.PathLike, split: Split | str, *, cache: str | os.PathLike | None = None,
               limit: int | None = None) -> list[AlfworldGame]:
    """The games of one split, from a data directory prepared on demand (train needs `cache`).

    Evaluation splits are read from `source` directly; the train split from
    `prepare_data_dir(source, cache)`.
    """
    split = Split(split)
    if split == Split.TRAIN:
        if cache is None and not (Path(os.path.expandvars(str(source))) / "json_2.1.1" / "train").is_dir():
            raise TaskError("the ALFWorld train split needs a cache directory to unpack "
                            f"{TRAIN_ARCHIVE} into")
        root = prepare_data_dir(source, cache or source)
        return find_games(root, split, limit=limit)
    return find_games(source, split, limit=limit)


def sample_games(games: Sequence[AlfworldGame], n: int, seed: int) -> list[AlfworldGame]:
    """`n` games drawn without replacement by a seeded shuffle (all of them, shuffled, when n = 0)."""
    order = list(games)
    random.Random(seed).shuffle(order)
    return order[:n] if n else order


def vocabulary_words(games: Sequence[AlfworldGame], extra_texts: Iterable[str] = ()) -> list[str]:
    """Every letter-only word the `games` (and `extra_texts`) can print, sorted.

    Words of each game's grammar (templates and the goal sentence), the PDDL object and
    receptacle type names lower-cased without "Type" (how the game names them), the words of the
    ReAct instruction, example and prompt scaffold ("Here is your task."), plus `extra_texts`.
    """
    words: set[str] = set()
    grammars_seen: set[int] = set()
    for g in games:
        data = json.loads(Path(g.game_file).read_text())
        grammar = data["grammar"]
        key = hash(grammar)
        if key not in grammars_seen:          # games of one task share most of their grammar
            grammars_seen.add(key)
            words.update(_WORD.findall(grammar))
        for name in _PDDL_NAME.findall(data["pddl_problem"]):   # "Candle", "CounterTopType"
            words.add(name.removesuffix("Type").lower())
        for cmd in data.get("walkthrough", ()):
            words.update(_WORD.findall(cmd))
    scaffold = ReActFormat(instruction="", example="x").initial_prompt(StepResult("", None))
    for text in (REACT_INSTRUCTION, REACT_EXAMPLE, scaffold, *extra_texts):
        words.update(_WORD.findall(text))
    return sorted(words)
