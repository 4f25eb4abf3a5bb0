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

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

__all__ = ["SFTConfig", "SFTLearner", "cosine_with_warmup", "collate_sft"]


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
    device: str = "auto"
    """auto, cpu or cuda."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("sft.steps and sft.batch_size must be >= 1")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("sft.lr must be > 0 and sft.min_lr_ratio in [0, 1]")


def cosine_with_warmup(step: int, *, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier at `step`: linear warm-up to 1, then cosine down to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


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
    """Trains `model` on (prompt, response) text pairs; see the module docstring."""

    def __init__(self, model, tokenizer, cfg: SFTConfig):
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.device = next(model.parameters()).device
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_with_warmup(s, total=cfg.steps, warmup=cfg.warmup_steps,
                                                         min_ratio=cfg.min_lr_ratio))
        self.step = 0

    def encode(self, prompt: str, response: str) -> tuple[list[int], list[int]]:
        """Token ids of the prompt and of response + EOS (the tokens that carry loss)."""
        p = self.tokenizer(prompt)["input_ids"]
        r = self.tokenizer(response, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        return p, r

    def train_step(self, batch: list[tuple[str, str]]) -> tuple[float, int]:
        """One optimizer step on text pairs; returns (loss, response tokens)."""
        self.model.train()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        input_ids, mask, labels = (t.to(self.device) for t in
                                   collate_sft([self.encode(p, r) for p, r in batch], pad, self.cfg.max_len))
        logits = self.model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
        targets = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                 ignore_index=-100)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return loss.item(), int((targets != -100).sum())

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step,
                "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])

    def save_state(self, path: str | os.PathLike) -> None:
        """Write the resumable state atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def fit(self, batches: Callable[[int], list[tuple[str, str]]], *, state_path: str | os.PathLike | None = None,
            writer=None, progress: Iterator | None = None) -> dict:
        """Run until `cfg.steps` optimizer steps, resuming from `state_path` when it exists.

        Args:
            batches: `batches(step)` returns the text pairs of optimizer step `step`; indexing by
                step makes a resumed run see exactly the data the uninterrupted run would.
            state_path: where the resumable state lives (None = no saving).
            writer: a TensorBoard `SummaryWriter` or None.
            progress: a tqdm bar to advance, or None.

        Returns:
            {"steps", "final_loss", "tokens", "seconds", "tokens_per_s"}.
        """
        if state_path is not None and Path(state_path).exists():
            self.load_state_dict(torch.load(state_path, weights_only=False))
            if progress is not None:
                progress.update(self.step)
        t0, tokens, ema = time.perf_counter(), 0, None
        while self.step < self.cfg.steps:
            loss, n_tok = self.train_step(batches(self.step))
            tokens += n_tok
            ema = loss if ema is None else 0.98 * ema + 0.02 * loss
            if progress is not None:
                if self.step % 10 == 0:
                    progress.set_postfix(loss=f"{ema:.3f}", tok_s=f"{tokens / (time.perf_counter() - t0):.0f}",
                                         refresh=False)
                progress.update(1)
            if writer is not None and (self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps):
                writer.add_scalar("sft/loss", loss, self.step)
                writer.add_scalar("sft/lr", self.scheduler.get_last_lr()[0], self.step)
            if state_path is not None and self.cfg.save_every and self.step % self.cfg.save_every == 0:
                self.save_state(state_path)
        if state_path is not None:
            self.save_state(state_path)
        secs = time.perf_counter() - t0
        return {"steps": self.step, "final_loss": ema, "tokens": tokens, "seconds": secs,
                "tokens_per_s": tokens / secs if secs > 0 else 0.0}
