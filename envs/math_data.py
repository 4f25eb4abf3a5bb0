"""MATH (Hendrycks et al., 2021, "Measuring Mathematical Problem Solving With the MATH Dataset")
and MATH-500 (the 500-problem test split of PRM800K, Lightman et al., 2023, "Let's Verify Step
by Step") as `Problem`s.

Named `math_data` rather than `math`: a module `envs/math.py` shadows the standard library's
`math` for any process whose `sys.path[0]` is the `envs/` folder (a script or notebook started
there), breaking numpy, sympy and everything else that imports `math`.

Rows use PRM800K's `math_splits` format: `problem`, `solution` (final answer in `\\boxed{}`),
`answer` (the last boxed content), `subject`, `level` (1-5), `unique_id`. The original MATH
release format (Hugging Face `hendrycks/competition_math`: `problem`, `solution`, `type`,
`level` = "Level 5") is read too: `answer` is then the last `\\boxed{}` of the solution.

`Problem.meta` holds ("subject", ...), ("level", "1".."5") and ("unique_id", ...) when known.
MATH-500 (`envs/data/math500_test.jsonl`, MIT, see `envs/data/PROVENANCE.md`) ships with the
package and is `load_math500`'s default; the full MATH splits must be given as a file or a Hub
name. Protocol: algorithms.md sec. 2.9 and 7 (boxed answer, `envs.grading.grade`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from envs.base import Problem, TaskError
from envs.grading import extract_answer
from envs.sources import DATA_DIR, Row, check_limit, check_split, load_hf_rows, read_jsonl

__all__ = ["load_math", "load_math500", "MATH_SPLITS", "MATH500_SPLITS", "VENDORED_MATH500"]

MATH_SPLITS = ("train", "test")
"""MATH's splits (7,500 / 5,000 problems)."""
MATH500_SPLITS = ("test",)
"""MATH-500 has one split of 500 problems."""
VENDORED_MATH500 = DATA_DIR / "math500_test.jsonl"
"""The shipped MATH-500, byte-identical to PRM800K's `math_splits/test.jsonl`."""

_FIELDS = ("problem", "solution")


def load_math(split: str = "test", *, path: str | Path | None = None, hf_name: str | None = None,
              hf_config: str | None = None, limit: int | None = None) -> list[Problem]:
    """Load MATH problems, in source order, with ids `math/<split>/<index>`.

    Args:
        split: "train" or "test".
        path: a local jsonl file in PRM800K or MATH format (takes precedence over `hf_name`).
        hf_name: a Hugging Face dataset (e.g. "hendrycks/competition_math"), loaded with
            `datasets.load_dataset(hf_name, hf_config, split=split)`; needs the Hub or its cache.
        hf_config: the dataset config, if it has several.
        limit: keep only the first `limit` problems.

    Raises:
        TaskError: unknown split, no source given (full MATH is not vendored), missing/empty
            file, malformed line, a row with no answer and no `\\boxed{}` in its solution.
    """
    check_split("math", split, MATH_SPLITS)
    check_limit(limit)
    if path is None and hf_name is None:
        raise TaskError("math: the full MATH dataset does not ship with the package (MATH-500 does: "
                        "load_math500()); pass path= (a jsonl file) or hf_name=")
    return _load("math", split, path, hf_name, hf_config, limit)


def load_math500(split: str = "test", *, path: str | Path | None = None,
                 hf_name: str | None = None, hf_config: str | None = None,
                 limit: int | None = None) -> list[Problem]:
    """Load MATH-500 (the vendored copy unless `path` or `hf_name`, e.g. "HuggingFaceH4/MATH-500",
    is given), with ids `math500/test/<index>`. Arguments and errors as in `load_math`."""
    check_split("math500", split, MATH500_SPLITS)
    check_limit(limit)
    if path is None and hf_name is None:
        path = VENDORED_MATH500
    return _load("math500", split, path, hf_name, hf_config, limit)


def _load(task: str, split: str, path: str | Path | None, hf_name: str | None,
          hf_config: str | None, limit: int | None) -> list[Problem]:
    rows: list[Row]
    if path is not None:
        rows = read_jsonl(path, required=_FIELDS)
    else:
        rows = load_hf_rows(hf_name, hf_config, split, required=_FIELDS)
    rows = rows if limit is None else rows[:limit]
    return [_to_problem(task, split, i, where, row) for i, (where, row) in enumerate(rows)]


def _to_problem(task: str, split: str, index: int, where: str, row: dict[str, Any]) -> Problem:
    problem, solution = row["problem"], row["solution"]
    if not isinstance(problem, str) or not isinstance(solution, str):
        raise TaskError(f"{where}: 'problem' and 'solution' must be strings")
    answer = row.get("answer")
    if answer is None:  # original MATH format: the answer is the last boxed content
        answer = extract_answer(solution, fallback_last_number=False)
    if not isinstance(answer, str) or not answer.strip():
        raise TaskError(f"{where}: no answer (no 'answer' field and no \\boxed{{}} in the solution)")
    meta = []
    subject = row.get("subject", row.get("type"))
    if subject:
        meta.append(("subject", str(subject)))
    level = _level(row.get("level"))
    if level:
        meta.append(("level", level))
    if row.get("unique_id"):
        meta.append(("unique_id", str(row["unique_id"])))
    return Problem(id=f"{task}/{split}/{index}", task=task, question=problem, answer=answer,
                   solution=solution, meta=tuple(meta))


def _level(raw: Any) -> str:
    """1-5 as a string from 3 or "Level 3"; "" when unknown (None, "Level ?")."""
    if raw is None:
        return ""
    text = str(raw).removeprefix("Level").strip()
    return text if text.isdigit() else ""
