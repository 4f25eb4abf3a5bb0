"""Records that cross process boundaries: search output, learner input, traces.

Every record is a frozen, slotted dataclass of plain values (str, int, float, tuples): it pickles,
holds no handles or models, and round-trips through jsonl and parquet (`write_records`,
`read_records`). Each carries the policy version that produced it (algorithms.md section 8.9).

Rewards: outcome reward R in {0, 1} system-wide (algorithms.md section 8.3).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

__all__ = ["StepPair", "Trajectory", "SearchTrace", "TraceStep", "write_records", "read_records",
           "RecordError", "REWARD_CONVENTION"]

REWARD_CONVENTION = "outcome reward R in {0,1}"


class RecordError(ValueError):
    """A record file is missing, empty or malformed."""


@dataclass(frozen=True, slots=True)
class StepPair:
    """A step-level preference pair from sibling nodes of one search tree (MCTS-DPO).

    The policy sees `prompt + prefix` and then either `chosen` or `rejected` (one step each,
    optionally followed by its forced single-child continuation). DPO log-ratios are summed
    only over the tokens of `chosen` / `rejected`, never over the shared `prompt + prefix`.
    """
    # identity
    problem_id: str
    policy_version: int
    depth: int                   # number of steps in `prefix`
    # text
    prompt: str
    prefix: str                  # shared steps, already joined (may be "")
    chosen: str
    rejected: str
    # search statistics
    q_chosen: float
    q_rejected: float
    n_chosen: int                # visit counts
    n_rejected: int
    weight: float                # label smoothing eps = N_l / (N_w + N_l), capped at 0.5

    def __post_init__(self) -> None:
        if not self.chosen or not self.rejected:
            raise RecordError(f"StepPair {self.problem_id}: empty chosen or rejected step")
        if not 0.0 <= self.weight <= 0.5:
            raise RecordError(f"StepPair {self.problem_id}: weight {self.weight} outside [0, 0.5]")


@dataclass(frozen=True, slots=True)
class Trajectory:
    """One full attempt at a task with its outcome (OREO's unit of data).

    The sequence the learners see is `prompt + steps[0] + observations[0] + steps[1] + ...`:
    `steps` are the agent's tokens (actions), `observations` the environment's text that
    follows each step ("" for math). Only step tokens are actions.
    """
    problem_id: str
    policy_version: int
    source: str                          # "mcts", "sample", "expert", "greedy", ...
    prompt: str
    steps: tuple[str, ...]               # [T]
    observations: tuple[str, ...]        # [T], "" where nothing follows the step
    reward: float                        # R in {0, 1}
    step_rewards: tuple[float, ...] = ()  # optional per-step (intrinsic) rewards, [T]

    def __post_init__(self) -> None:
        if len(self.observations) != len(self.steps):
            raise RecordError(f"Trajectory {self.problem_id}: {len(self.steps)} steps but "
                              f"{len(self.observations)} observations")
        if self.step_rewards and len(self.step_rewards) != len(self.steps):
            raise RecordError(f"Trajectory {self.problem_id}: step_rewards length mismatch")
        if not self.steps:
            raise RecordError(f"Trajectory {self.problem_id}: no steps")

    @property
    def response(self) -> str:
        return "".join(s + o for s, o in zip(self.steps, self.observations))


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One committed step of a search, with what it was chosen over."""
    text: str
    value: float
    visits: int
    alternatives: tuple[tuple[str, float, int], ...]  # (text, value, visits) of siblings


@dataclass(frozen=True, slots=True)
class SearchTrace:
    """What a search did for one problem: the answer, the path, and its cost."""
    problem_id: str
    method: str
    response: str
    steps: tuple[TraceStep, ...]
    generated_tokens: int
    model_calls: int
    model_seconds: float
    tree_seconds: float
    wall_seconds: float


_R = TypeVar("_R")
_KINDS = {"StepPair": StepPair, "Trajectory": Trajectory, "SearchTrace": SearchTrace}


def _to_plain(rec: Any) -> dict:
    row = dataclasses.asdict(rec)
    if isinstance(rec, SearchTrace):  # uniform columns for parquet: alternatives as structs
        for step in row["steps"]:
            step["alternatives"] = [{"text": t, "value": v, "visits": n} for t, v, n in step["alternatives"]]
    return row


def _alternative(a: Any) -> tuple[str, float, int]:
    return (a["text"], float(a["value"]), int(a["visits"])) if isinstance(a, dict) else (a[0], float(a[1]), int(a[2]))


def _from_plain(cls: type, row: dict, where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in row and f.default is dataclasses.MISSING]
    if missing:
        raise RecordError(f"{where}: missing field(s) {missing} for {cls.__name__}")
    kwargs = {k: v for k, v in row.items() if k in names}
    if cls is Trajectory:
        kwargs["steps"] = tuple(kwargs["steps"])
        kwargs["observations"] = tuple(kwargs["observations"])
        kwargs["step_rewards"] = tuple(kwargs.get("step_rewards") or ())
    if cls is SearchTrace:
        kwargs["steps"] = tuple(TraceStep(s["text"], s["value"], s["visits"],
                                          tuple(_alternative(a) for a in s["alternatives"]))
                                for s in kwargs["steps"])
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise RecordError(f"{where}: {e}") from e


def write_records(path: str | os.PathLike, records: Sequence[Any]) -> Path:
    """Write records of one kind to `.jsonl` or `.parquet` (by suffix), atomically.

    The file is written under a temporary name and renamed, so a crash never leaves a half file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kinds = {type(r).__name__ for r in records}
    if len(kinds) > 1:
        raise RecordError(f"{path}: mixed record kinds {sorted(kinds)}")
    rows = [_to_plain(r) for r in records]
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        kind = kinds.pop() if kinds else ""
        table = pa.Table.from_pylist(rows) if rows else pa.table({})
        table = table.replace_schema_metadata({"record_kind": kind})
        pq.write_table(table, tmp)
    elif path.suffix == ".jsonl":
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        raise RecordError(f"{path}: unknown record format (use .jsonl or .parquet)")
    os.replace(tmp, path)
    return path


def read_records(path: str | os.PathLike, kind: type[_R]) -> list[_R]:
    """Read records of `kind` from `.jsonl` or `.parquet`; clear errors for bad files.

    Raises:
        RecordError: the file is missing, not jsonl/parquet, or a row lacks required fields.
    """
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such record file")
    rows: Iterable[dict]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises many types for corrupt files
            raise RecordError(f"{path}: not a readable parquet file ({e})") from e
    elif path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise RecordError(f"{path}:{i}: malformed JSON ({e.msg})") from e
                if not isinstance(row, dict):
                    raise RecordError(f"{path}:{i}: expected a JSON object")
                rows.append(row)
    else:
        raise RecordError(f"{path}: unknown record format (use .jsonl or .parquet)")
    return [_from_plain(kind, row, f"{path}[{i}]") for i, row in enumerate(rows)]
