"""Process setup for entry points: seeds and CPU thread pinning.

Torch on 2 shared cores crawls with its default thread count (environment.md section 1), so
entry points pin threads to `OMP_NUM_THREADS` (default 1 on machines with <= 4 cores).
"""
from __future__ import annotations

import os
import random

__all__ = ["seed_everything", "pin_threads"]


def pin_threads(default: int | None = None) -> int:
    """Set OMP/MKL threads (env, if unset) and torch's intra-op threads; returns the count."""
    if default is None:
        default = 1 if (os.cpu_count() or 1) <= 4 else min(8, os.cpu_count() or 1)
    n = int(os.environ.setdefault("OMP_NUM_THREADS", str(default)))
    os.environ.setdefault("MKL_NUM_THREADS", str(n))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar per model load
    import torch
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
