"""One entry point for math-style tasks: `load_problems(cfg, split, limit)`.

Tasks:
- arith: the synthetic embedded default (`envs.arith`), generated on the fly, seeded.
- gsm8k: GSM8K (`envs.gsm8k`): the vendored test split by default, or a local jsonl / HF dataset.
- math: MATH (`envs.math_data`): a local jsonl or an HF dataset.
- math500: MATH-500 (`envs.math_data`): the vendored copy by default.
- instruct: the embedded instruction-following task (`envs.instruct`, SPaR's CPU default); its
  prompts are `InstructProblem`s with IFEval constraints, loaded by `load_instruct_problems`.
- ifeval: IFEval-format prompts (`envs.ifeval`): train from `train_path` (a jsonl of
  constraint-rich prompts with IFEval instruction ids), test = the vendored 541 IFEval prompts.

Each task also fixes its step format and answer style; recipes choose prompts to match.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from envs.arith import ArithConfig, load_arith
from envs.base import Problem, TaskError
from envs.instruct import InstructConfig

__all__ = ["TaskName", "TaskConfig", "load_problems", "load_instruct_problems"]


class TaskName(str, enum.Enum):
    ARITH = "arith"
    GSM8K = "gsm8k"
    MATH = "math"
    MATH500 = "math500"
    INSTRUCT = "instruct"
    IFEVAL = "ifeval"
    ALFWORLD = "alfworld"   # interactive: games and episodes, not problems (launch/alfworld_job.py)


@dataclass
class TaskConfig:
    """Which problems to train and evaluate on (the `task` block of a recipe)."""
    name: TaskName = TaskName.ARITH
    """arith (synthetic, embedded default), gsm8k, math, math500, instruct (embedded instruction following)
    or alfworld (the alfworld_task block)."""
    train_path: str = ""
    """Local jsonl for the train split ("" = the task's default source)."""
    test_path: str = ""
    """Local jsonl for the test split ("" = the vendored or generated default)."""
    hf_name: str = ""
    """Hugging Face dataset name to load instead of files (needs network; never used in tests)."""
    arith: ArithConfig = field(default_factory=ArithConfig)
    """Difficulty of the synthetic task (used when name=arith)."""
    instruct: InstructConfig = field(default_factory=InstructConfig)
    """The embedded instruction-following task (used when name=instruct)."""
    data_seed: int = 0
    """Seed of the synthetic generator (train and test streams are disjoint anyway)."""


def load_problems(cfg: TaskConfig, split: str, limit: int | None = None, *, offset: int = 0) -> list[Problem]:
    """Problems of `split` ("train" or "test"), at most `limit` of them after skipping `offset`.

    Raises:
        TaskError: unknown task or split, missing or empty data.
    """
    if split not in ("train", "test"):
        raise TaskError(f"unknown split {split!r} (use 'train' or 'test')")
    name = TaskName(cfg.name)
    path = (cfg.train_path if split == "train" else cfg.test_path) or None
    hf = cfg.hf_name or None
    if name == TaskName.ARITH:
        if limit is None:
            raise TaskError("arith is generated: give a limit (number of problems)")
        problems = load_arith(split, offset + limit, cfg.arith, seed=cfg.data_seed)[offset:]
    elif name == TaskName.GSM8K:
        from envs.gsm8k import load_gsm8k
        problems = load_gsm8k(split, path=path, hf_name=hf)
    elif name == TaskName.MATH:
        from envs.math_data import load_math
        problems = load_math(split, path=path, hf_name=hf)
    elif name == TaskName.MATH500:
        if split != "test":
            raise TaskError("math500 has only a test split (train on 'math')")
        from envs.math_data import load_math500
        problems = load_math500(path=path, hf_name=hf)
    elif name in (TaskName.INSTRUCT, TaskName.IFEVAL):
        raise TaskError(f"{name.value} prompts are not math problems: use envs.tasks.load_instruct_problems")
    elif name == TaskName.ALFWORLD:
        raise TaskError("alfworld is interactive: it has games, not problems (see envs.alfworld_games)")
    else:  # pragma: no cover - Enum exhausts the cases
        raise TaskError(f"unknown task {cfg.name!r}")
    if name != TaskName.ARITH:
        problems = problems[offset:] if limit is None else problems[offset:offset + limit]
    if not problems:
        raise TaskError(f"{name.value}/{split}: no problems (offset {offset}, limit {limit})")
    return problems


def load_instruct_problems(cfg: TaskConfig, split: str, limit: int | None, *, offset: int = 0) -> list:
    """Instruction-following prompts of `split`: at most `limit` after skipping `offset`.

    instruct: generated and seeded (`limit` required); ifeval: train from `cfg.train_path`, test from
    `cfg.test_path` or the vendored IFEval file. Each item has `.id`, `.question` and `.ifeval()`.
    """
    name = TaskName(cfg.name)
    if name == TaskName.INSTRUCT:
        from envs.instruct import load_instruct
        if limit is None:
            raise TaskError("instruct is generated: give a limit (number of prompts)")
        problems = load_instruct(split, offset + limit, cfg.instruct, seed=cfg.data_seed)[offset:]
    elif name == TaskName.IFEVAL:
        from envs.ifeval import load_ifeval
        if split not in ("train", "test"):
            raise TaskError(f"unknown split {split!r} (use 'train' or 'test')")
        if split == "train" and not cfg.train_path:
            raise TaskError("ifeval: training needs task.train_path (IFEval-format jsonl); the 541 prompts are test only")
        rows = load_ifeval((cfg.train_path if split == "train" else cfg.test_path) or None)
        problems = rows[offset:] if limit is None else rows[offset:offset + limit]
    else:
        raise TaskError(f"task {name.value} is not an instruction-following task (instruct or ifeval)")
    if not problems:
        raise TaskError(f"{name.value}/{split}: no problems (offset {offset}, limit {limit})")
    return problems
