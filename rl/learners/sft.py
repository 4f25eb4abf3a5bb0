"""Supervised fine-tuning (SFT) of a causal LM on prompt -> response pairs.

Used to train the embedded default's tiny policy from scratch on the synthetic arithmetic task,
and to fine-tune any HF checkpoint on GSM8K/MATH-style jsonl (the SFT stage that OREO and
MCTS-DPO both start from; algorithms.md 2.6 / 3.6).

The recipe follows embedded-default-calibration.md: AdamW (betas 0.9/0.98, weight decay 0.01),
loss on response tokens + EOS only, gradient clipping at 1.0, linear warm-up then a cosine over a
fixed number of optimizer steps down to `min_lr_ratio` x peak. Budgets are in steps, not wall time.

The loop streams examples from an iterator (fresh problems for the synthetic task, a shuffled
cycle over a file otherwise), saves a resumable state every `save_every` steps and writes
TensorBoard scalars. It is a plain class: data, model and output directory are passed in.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from reasoner.loading import resolve_dtype
from rl.training import (autocast, build_adamw, capture_rng, cosine_with_warmup, load_state, restore_rng,
                         run_loop)

__all__ = ["SFTConfig", "SFTLearner", "collate_sft"]


@dataclass
class SFTConfig:
    """Supervised fine-tuning settings (the `sft` block of a recipe)."""
    steps: int = 2000
    """Optimizer steps (the budget; accuracy is steep in tokens, so fix steps, not time)."""
    batch_size: int = 16
    """Sequences per optimizer step."""
    lr: float = 2e-3
    """Peak learning rate (2e-3 for the 0.54M tiny model; ~2e-5 for 1.5B models)."""
    min_lr_ratio: float = 0.1
    """The cosine ends at this fraction of the peak."""
    warmup_steps: int = 50
    """Linear warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.98
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    max_len: int = 256
    """Longest training sequence in tokens (longer examples are cut from the right)."""
    log_every: int = 50
    """Steps between TensorBoard/progress updates."""
    save_every: int = 500
    """Steps between resumable state saves (0 = only at the end)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (batch_size must be a multiple); the loss is the same either way."""
    device: str = "auto"
    """auto, cpu or cuda."""
    dtype: str = "auto"
    """Compute dtype under autocast: auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16; weights stay float32."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("sft.steps, sft.batch_size and sft.grad_accum must be >= 1")
        if self.batch_size % self.grad_accum:
            raise ValueError("sft.batch_size must be a multiple of sft.grad_accum")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("sft.lr must be > 0 and sft.min_lr_ratio in [0, 1]")


def collate_sft(pairs: list[tuple[list[int], list[int]]], pad_id: int, max_len: int):
    """Right-pad (prompt ids, response ids) pairs into tensors.

    Returns:
        input_ids [B, L], attention_mask [B, L], labels [B, L] (-100 on prompt and padding).
    """
    rows = [(p + r)[:max_len] for p, r in pairs]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ((p, _), row) in enumerate(zip(pairs, rows)):
        input_ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
        labels[i, len(p):len(row)] = input_ids[i, len(p):len(row)]
    return input_ids, mask, labels


class SFTLearner:
    """Trains `model` on (prompt, response) text pairs; see the module docstring.

    Args:
        batches: `batches(step)` returns the text pairs of optimizer step `step`; indexing by step
            makes a resumed run see exactly the data an uninterrupted run would.
    """

    def __init__(self, model, tokenizer, cfg: SFTConfig, batches: Callable[[int], list[tuple[str, str]]]):
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.batches = batches
        self.device = next(model.parameters()).device
        self.dtype = resolve_dtype(cfg.dtype, self.device.type)
        self.optimizer = build_adamw(model, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_with_warmup(s, total=cfg.steps, warmup=cfg.warmup_steps,
                                                         min_ratio=cfg.min_lr_ratio))
        self.step = 0
        self.tokens = 0

    def encode(self, prompt: str, response: str) -> tuple[list[int], list[int]]:
        """Token ids of the prompt and of response + EOS (the tokens that carry loss)."""
        p = self.tokenizer(prompt)["input_ids"]
        r = self.tokenizer(response, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        return p, r

    def train_step(self) -> dict[str, float]:
        """One optimizer step on the pairs of `batches(step)` (token-mean loss over the whole batch)."""
        self.model.train()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        pairs = [self.encode(p, r) for p, r in self.batches(self.step)]
        n_tok = sum(max(0, min(len(p) + len(r), self.cfg.max_len) - len(p)) for p, r in pairs)
        self.optimizer.zero_grad(set_to_none=True)
        micro = len(pairs) // self.cfg.grad_accum
        total = 0.0
        for k in range(self.cfg.grad_accum):
            chunk = pairs[k * micro:(k + 1) * micro] if k < self.cfg.grad_accum - 1 else pairs[k * micro:]
            input_ids, mask, labels = (t.to(self.device) for t in collate_sft(chunk, pad, self.cfg.max_len))
            with autocast(self.device, self.dtype):
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
            targets = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                     targets.reshape(-1), ignore_index=-100, reduction="sum")
            (loss / max(1, n_tok)).backward()
            total += loss.item()
        loss = torch.tensor(total / max(1, n_tok))
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        self.step += 1
        self.tokens += n_tok
        return {"loss": loss.item(), "lr": lr, "tokens": float(n_tok)}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step, "tokens": self.tokens,
                "rng": capture_rng()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.tokens = int(state["step"]), int(state.get("tokens", 0))
        restore_rng(state["rng"])

    def fit(self, *, state_path=None, writer=None, progress: bool = True) -> dict:
        """Train until `cfg.steps` (resuming from `state_path` when it exists).

        Returns:
            {"steps", "final_loss" (EMA), "tokens", "seconds", "tokens_per_s"} of this process's part.
        """
        ema: list[float] = []
        saved = load_state(state_path) if state_path is not None else None
        tokens_before = int(saved.get("tokens", 0)) if saved else 0

        def track(step: int, metrics: dict) -> None:
            ema.append(metrics["loss"] if not ema else 0.98 * ema[-1] + 0.02 * metrics["loss"])

        t0 = time.perf_counter()
        out = run_loop(self, total_steps=self.cfg.steps, state_path=state_path, writer=writer, tag="sft",
                       log_every=self.cfg.log_every, save_every=self.cfg.save_every, progress=progress,
                       meta={"algo": "sft", "batch_size": self.cfg.batch_size}, on_step=track)
        secs = time.perf_counter() - t0
        tokens = self.tokens - tokens_before
        return {"steps": out["steps"], "final_loss": ema[-1] if ema else None, "tokens": tokens, "seconds": secs,
                "tokens_per_s": tokens / secs if secs > 0 else 0.0}
