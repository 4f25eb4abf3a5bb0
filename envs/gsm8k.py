"""GSM8K (Cobbe et al., 2021, "Training Verifiers to Solve Math Word Problems") as `Problem`s.

Rows are `{"question", "answer"}` where `answer` is the worked solution, one step per line, with
calculator annotations such as `<<48/2=24>>` and a final line `#### <number>`. For each row:

* `Problem.solution` = the solution with the annotations removed (the `#### x` line kept, so it
  has the same shape as the arith task's solutions and can be used for SFT as is);
* `Problem.answer` = the text after `####`, stripped, thousands commas removed ("1,600" -> "1600");
* `Problem.meta` = (("num_steps", <lines before ####>),).

The test split (1,319 problems) ships with the package (`envs/data/gsm8k_test.jsonl`, MIT,
see `envs/data/PROVENANCE.md`); it is the default source. Evaluation protocol: algorithms.md
sec. 7 (greedy, zero-shot, answer extraction + equivalence by `envs.grading.grade`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from envs.base import Problem, TaskError
from envs.sources import DATA_DIR, check_limit, check_split, load_hf_rows, read_jsonl

__all__ = ["load_gsm8k", "strip_calculator_annotations", "SPLITS", "VENDORED_TEST"]

SPLITS = ("train", "test")
"""GSM8K's splits (7,473 / 1,319 problems)."""
VENDORED_TEST = DATA_DIR / "gsm8k_test.jsonl"
"""The shipped test split, byte-identical to openai/grade-school-math's `test.jsonl`."""

_ANNOTATION_RE = re.compile(r"<<[^<>]*>>")
_FIELDS = ("question", "answer")


def strip_calculator_annotations(text: str) -> str:
    """Remove GSM8K calculator annotations: "48/2 = <<48/2=24>>24" -> "48/2 = 24"."""
    return _ANNOTATION_RE.sub("", text)


def load_gsm8k(split: str = "test", *, path: str | Path | None = None, hf_name: str | None = None,
               hf_config: str = "main", limit: int | None = None) -> list[Problem]:
    """Load GSM8K problems, in file order, with ids `gsm8k/<split>/<index>`.

    Args:
        split: "train" or "test".
        path: a local jsonl file in GSM8K's format (takes precedence over `hf_name`).
        hf_name: a Hugging Face dataset (e.g. "openai/gsm8k"), loaded with
            `datasets.load_dataset(hf_name, hf_config, split=split)`; needs the Hub or its cache.
        hf_config: the dataset config ("main"; "socratic" for the Socratic variant).
        limit: keep only the first `limit` problems.

    With neither `path` nor `hf_name`, the vendored test split is read (split must be "test").

    Raises:
        TaskError: unknown split, missing/empty file, malformed line, a row without `####`.
    """
    check_split("gsm8k", split, SPLITS)
    check_limit(limit)
    if path is not None:
        rows = read_jsonl(path, required=_FIELDS)
    elif hf_name is not None:
        rows = load_hf_rows(hf_name, hf_config, split, required=_FIELDS)
    elif split == "test":
        rows = read_jsonl(VENDORED_TEST, required=_FIELDS)
    else:
        raise TaskError(f"gsm8k: only the test split ships with the package; for {split!r} "
                        "pass path= (a jsonl file) or hf_name= (e.g. 'openai/gsm8k')")
    rows = rows if limit is None else rows[:limit]
    return [_to_problem(i, split, where, row) for i, (where, row) in enumerate(rows)]


def _to_problem(index: int, split: str, where: str, row: dict[str, Any]) -> Problem:
    question, answer = row["question"], row["answer"]
    if not isinstance(question, str) or not isinstance(answer, str):
        raise TaskError(f"{where}: 'question' and 'answer' must be strings")
    if "####" not in answer:
        raise TaskError(f"{where}: the answer has no '#### <number>' final line")
    steps, final = answer.rsplit("####", 1)
    final = final.strip().replace(",", "")
    if not final:
        raise TaskError(f"{where}: empty final answer after '####'")
    num_steps = sum(1 for line in steps.splitlines() if line.strip())
    return Problem(
        id=f"gsm8k/{split}/{index}",
        task="gsm8k",
        question=question,
        answer=final,
        solution=strip_calculator_annotations(answer),
        meta=(("num_steps", str(num_steps)),),
    )
