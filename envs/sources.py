"""Where benchmark rows come from: a local jsonl file, a file vendored in `envs/data/`, or a
Hugging Face dataset (imported lazily; no test downloads anything).

Loaders (`envs.gsm8k`, `envs.math_data`) turn the rows into `Problem`s; this module only reads
them and turns every way a source can be wrong into a `TaskError` that names the file and line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from envs.base import TaskError

__all__ = ["DATA_DIR", "Row", "read_jsonl", "load_hf_rows", "check_split", "check_limit"]

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Folder of the vendored test sets (see `envs/data/PROVENANCE.md`)."""


Row = tuple[str, dict[str, Any]]
"""(where, row): `where` names the row in error messages ("path/test.jsonl:17", "name[16]")."""


def read_jsonl(path: str | Path, *, required: tuple[str, ...]) -> list[Row]:
    """(where, row) for each row of a jsonl file; every row must hold the `required` keys.

    Blank lines are skipped. Raises TaskError for a missing file, a file without rows, a line
    that is not a JSON object (with its 1-based line number) or a row missing a required key.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"data file not found: {path}")
    rows: list[Row] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TaskError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise TaskError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in required if k not in row]
            if missing:
                raise TaskError(f"{path}:{lineno}: missing field(s) {missing}")
            rows.append((f"{path}:{lineno}", row))
    if not rows:
        raise TaskError(f"data file is empty: {path}")
    return rows


def load_hf_rows(name: str, config: str | None, split: str, *, required: tuple[str, ...]) -> list[Row]:
    """(where, row) for `datasets.load_dataset(name, config, split=split)` (Hub or its cache)."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a core dependency
        raise TaskError("loading from the Hugging Face Hub needs the `datasets` package") from e
    args = (name,) if config is None else (name, config)
    rows = [(f"{name}[{i}]", dict(r)) for i, r in enumerate(datasets.load_dataset(*args, split=split))]
    if not rows:
        raise TaskError(f"Hugging Face dataset {name!r} ({config}) split {split!r} is empty")
    missing = [k for k in required if k not in rows[0][1]]
    if missing:
        raise TaskError(f"Hugging Face dataset {name!r} has no field(s) {missing}; "
                        f"it has {sorted(rows[0][1])}")
    return rows


def check_split(task: str, split: str, known: tuple[str, ...]) -> None:
    """Raise TaskError unless `split` is one of the task's `known` splits."""
    if split not in known:
        raise TaskError(f"{task}: unknown split {split!r}; known splits: {', '.join(known)}")


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise TaskError(f"limit must be >= 0 or None, got {limit}")
