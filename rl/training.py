"""Training plumbing shared by the learners: optimizers, schedules, precision, resumable state, the step loop.

The algorithms live in `rl/learners/step_dpo.py` and `rl/learners/oreo.py`; each defines one
`train_step()` (one optimizer step over `grad_accum` micro-batches). This module supplies what
both need around it, so neither file repeats it:

- AdamW over the trainable parameters (weight decay on matrices only) and a linear warm-up +
  cosine schedule (OREO and MCTS-DPO both use cosine with a 3% warm-up, algorithms.md 2.4 / 3.6).
- Precision: trainable weights stay float32 (master weights); forwards run under
  `torch.autocast` in the compute dtype (bfloat16 on CUDA by default); frozen models are cast to
  the compute dtype. Plain bf16 weights would swallow updates of lr ~ 1e-6.
- A deterministic data order: micro-batch i of the stream is a slice of a seeded permutation of
  epoch `i // batches_per_epoch`, so a resumed run sees exactly the batches an uninterrupted one would.
- Resumable state (`OUT/state/training_state.pt`): trainable parameters, optimizers, schedulers,
  step, RNG states and a little metadata, written atomically.
- `run_loop`: resume, call `train_step` until the budget, log scalars to TensorBoard, show a
  tqdm bar, save the state every `save_every` steps and at the end.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

__all__ = [
    "cosine_with_warmup", "build_adamw", "build_scheduler", "prepare_trainable", "freeze",
    "autocast", "causal_lm_logits", "micro_batch_indices", "num_optimizer_steps",
    "trainable_state_dict", "load_trainable_state_dict", "capture_rng", "restore_rng",
    "save_state", "load_state", "open_writer", "run_loop", "Learner", "STATE_FILE",
]

STATE_FILE = "training_state.pt"


def cosine_with_warmup(step: int, *, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier at `step`: linear warm-up to 1, then cosine down to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_adamw(model: nn.Module, *, lr: float, betas: tuple[float, float],
                weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the parameters that require grad; no decay on vectors (norms, biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas)


def build_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_ratio: float,
                    min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `ceil(warmup_ratio * total_steps)` steps, then cosine to `min_lr_ratio`."""
    warmup = math.ceil(warmup_ratio * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total=total_steps, warmup=warmup, min_ratio=min_lr_ratio))


def _disable_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "attention_dropout"):
        cfg.attention_dropout = 0.0


def prepare_trainable(model: nn.Module, device: torch.device) -> nn.Module:
    """Move to `device`, make trainable weights float32, turn dropout off (as TRL does), train mode."""
    model.to(device)
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    _disable_dropout(model)
    return model.train()


def freeze(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A frozen model: no grads, eval mode, on `device` in `dtype`."""
    model.requires_grad_(False)
    return model.to(device=device, dtype=dtype).eval()


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to the compute dtype (a no-op context for float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def causal_lm_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits [B, L-1, V] (the last position dropped), position ids counted over real tokens."""
    pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos, use_cache=False)
    return out.logits[:, :-1]


def micro_batch_indices(n: int, batch_size: int, seed: int, index: int) -> list[int]:
    """Record indices of micro-batch `index` in the epoch stream (a seeded permutation per epoch)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, k = divmod(index, per_epoch)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=gen)
    return perm[k * batch_size:(k + 1) * batch_size].tolist()


def num_optimizer_steps(n: int, *, batch_size: int, grad_accum: int, epochs: int, max_steps: int) -> int:
    """`max_steps` if set, else enough optimizer steps to cover `epochs` passes over n records."""
    if max_steps > 0:
        return max_steps
    return max(1, math.ceil(epochs * math.ceil(n / batch_size) / grad_accum))


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the parameters that train (all weights, or LoRA adapters + value head)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Inverse of `trainable_state_dict`; every trainable parameter must be present."""
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing:
        raise ValueError(f"training state lacks parameters {missing[:3]}... (different model or LoRA setup?)")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


def capture_rng() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | os.PathLike, state: dict) -> None:
    """Write a resumable state atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: str | os.PathLike) -> dict | None:
    """The state saved at `path`, or None when there is none."""
    path = Path(path)
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def open_writer(log_dir: str | os.PathLike | None):
    """A TensorBoard `SummaryWriter` (None when `log_dir` is None)."""
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(log_dir))


class Learner(Protocol):
    """What `run_loop` drives: a step counter, one optimizer step, and resumable state."""
    step: int

    def train_step(self) -> dict[str, float]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


def run_loop(learner: Learner, *, total_steps: int, state_path: str | os.PathLike | None, writer=None,
             tag: str = "train", log_every: int = 1, save_every: int = 0, progress: bool = True,
             meta: dict | None = None, on_step: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Resume from `state_path` if it exists, then train until `learner.step == total_steps`.

    Args:
        learner: see `Learner`; `train_step` must advance `learner.step` by one.
        total_steps: optimizer steps of the whole run (a resumed run continues toward it).
        state_path: resumable state file (None = never saved).
        writer: TensorBoard writer or None; every metric goes to `{tag}/{name}`.
        save_every: steps between state saves (0 = only at the end).
        meta: facts that must match on resume (e.g. algorithm, number of records); a mismatch
            raises ValueError instead of silently mixing two runs.

    Returns:
        {"steps", "resumed_from", "seconds", "last": last metrics}.
    """
    meta = dict(meta or {})
    saved = load_state(state_path) if state_path is not None else None
    if saved is not None:
        old = saved.get("meta", {})
        clash = {k: (old.get(k), v) for k, v in meta.items() if k in old and old[k] != v}
        if clash:
            raise ValueError(f"{state_path}: saved run differs from this one {clash}; use a new output directory")
        learner.load_state_dict(saved)
    start, last, t0 = learner.step, {}, time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=start, desc=tag, dynamic_ncols=True)
    while learner.step < total_steps:
        last = learner.train_step()
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(last.items())[:3]})
        if writer is not None and (learner.step % log_every == 0 or learner.step == total_steps):
            for k, v in last.items():
                writer.add_scalar(f"{tag}/{k}", v, learner.step)
        if on_step is not None:
            on_step(learner.step, last)
        if state_path is not None and save_every and learner.step % save_every == 0:
            save_state(state_path, {**learner.state_dict(), "meta": meta})
    if bar is not None:
        bar.close()
    if state_path is not None:
        save_state(state_path, {**learner.state_dict(), "meta": meta})
    if writer is not None:
        writer.flush()
    return {"steps": learner.step, "resumed_from": start, "seconds": time.perf_counter() - t0, "last": last}
