"""Where a benchmark writes its JSON: the committed full-run file, or elsewhere for --quick runs.

`benchmarks/results/<name>.json` holds the full runs that the README and notes quote. A `--quick`
run never overwrites it: without an explicit `--out` it writes to a temporary directory
(`$TMPDIR/reasoner-bench/<name>.quick.json`) and says so.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def results_path(name: str, *, quick: bool, out: str | None = None) -> Path:
    """The JSON path for benchmark `name`: `out` if given, else the committed file (full run)
    or a temporary one (--quick)."""
    if out:
        return Path(out)
    if quick:
        path = Path(tempfile.gettempdir()) / "reasoner-bench" / f"{name}.quick.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    return RESULTS_DIR / f"{name}.json"
