"""A durable run directory: config snapshot, per-iteration records and checkpoints, manifests,
`summary.json`, TensorBoard scalars and PNG plots.

Layout (`RUN` = the `--run-dir`):

    RUN/config.yaml                     the merged config of the first start (later starts must match)
    RUN/iter_000/manifest.json          iteration 0 = the starting policy (evaluation only)
    RUN/iter_k/records/pairs.parquet    StepPair records of iteration k
    RUN/iter_k/records/trajectories.parquet
    RUN/iter_k/records/traces.parquet
    RUN/iter_k/eval/<method>.responses.jsonl
    RUN/iter_k/manifest.json            written LAST: its presence commits iteration k
    RUN/checkpoints/policy_k/           HF checkpoint of the policy after iteration k (policy_0 = start)
    RUN/checkpoints/value_k/            value model after iteration k (when trained)
    RUN/summary.json                    {"iterations": [{"iteration": k, "eval": {method: {...}}}]}
    RUN/plots/accuracy_per_iteration.png, RUN/plots/accuracy_vs_tokens.png
    RUN/tensorboard/                    scalars per iteration

An iteration is committed by atomically writing its manifest last. On restart, everything of an
uncommitted iteration is deleted and redone, so no record is lost or duplicated.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["RunDir", "write_json_atomic"]


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


class RunDir:
    """Paths and commit protocol of one run (see the module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    # ---------------------------------------------------------------- paths
    def iter_dir(self, k: int) -> Path:
        return self.root / f"iter_{k:03d}"

    def records(self, k: int, kind: str) -> Path:
        return self.iter_dir(k) / "records" / f"{kind}.parquet"

    def eval_dir(self, k: int) -> Path:
        return self.iter_dir(k) / "eval"

    def policy(self, k: int) -> Path:
        return self.root / "checkpoints" / f"policy_{k}"

    def value(self, k: int) -> Path:
        return self.root / "checkpoints" / f"value_{k}"

    def manifest(self, k: int) -> Path:
        return self.iter_dir(k) / "manifest.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    # ---------------------------------------------------------------- config snapshot
    def check_config(self, yaml_text: str, *, allow_change: bool = False) -> None:
        """Write the config snapshot on first start; on resume refuse a different config."""
        path = self.root / "config.yaml"
        self.root.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(yaml_text)
            return
        if path.read_text() != yaml_text and not allow_change:
            raise ValueError(f"{self.root} was started with a different config ({path}); "
                             "use a new --run-dir, or pass --allow-config-change to resume anyway")
        if allow_change:
            path.write_text(yaml_text)

    # ---------------------------------------------------------------- commit protocol
    def committed(self) -> list[int]:
        """Iterations whose manifest exists, ascending."""
        out = []
        for d in sorted(self.root.glob("iter_*")):
            if (d / "manifest.json").exists():
                out.append(int(d.name.split("_")[1]))
        return out

    def last_committed(self) -> int | None:
        done = self.committed()
        return done[-1] if done else None

    def clear_uncommitted(self) -> list[int]:
        """Delete iteration folders and checkpoints that were started but never committed."""
        done = set(self.committed())
        removed = []
        for d in sorted(self.root.glob("iter_*")):
            k = int(d.name.split("_")[1])
            if k not in done:
                shutil.rmtree(d)
                removed.append(k)
        for ckpt in sorted((self.root / "checkpoints").glob("*_*")) if (self.root / "checkpoints").exists() else []:
            k = int(ckpt.name.rsplit("_", 1)[1])
            if k not in done:
                shutil.rmtree(ckpt)
        return removed

    def commit(self, k: int, manifest: dict) -> None:
        """Write the manifest of iteration k last and atomically (the commit point)."""
        write_json_atomic(self.manifest(k), {"iteration": k, **manifest})

    def read_manifest(self, k: int) -> dict:
        return json.loads(self.manifest(k).read_text())

    # ---------------------------------------------------------------- summary
    def summary(self) -> dict:
        """`{"iterations": [...]}` rebuilt from the committed manifests (the single source of truth)."""
        its = []
        for k in self.committed():
            m = self.read_manifest(k)
            its.append({"iteration": k, "policy_version": m.get("policy_version", k), "eval": m.get("eval", {}),
                        "train": m.get("train", {}), "rollout": m.get("rollout", {}),
                        **({"judge": m["judge"]} if "judge" in m else {}),
                        **({"metrics": m["metrics"]} if "metrics" in m else {})})
        return {"iterations": its}

    def write_summary(self) -> dict:
        summary = self.summary()
        write_json_atomic(self.root / "summary.json", summary)
        return summary
