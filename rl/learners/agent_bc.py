"""Behaviour cloning on multi-turn agent trajectories (SFT of an agent; rejection-sampling fine-tuning).

An agent trajectory reads `prompt + steps[0] + observations[0] + steps[1] + ...` (`rl.data`):
the agent's turns are interleaved with the environment's observations. Behaviour cloning trains
the policy to produce every turn given everything before it, with the token-mean cross-entropy
over the *turn tokens only* (never the prompt or the observations; EOS after the final turn is a
turn token, so the policy learns when an episode of its own ends). One sequence per trajectory
holds all its turns, so a T-turn episode costs one forward pass, not T.

Two uses, as in OREO's ALFWorld experiments (algorithms.md 2.5 and table O2):
- SFT / BC: on expert trajectories (`search.expert_trajectories`), the starting policy.
- Rejection sampling (RFT): on the policy's own successful rollouts (reward 1), lr 2e-5 in the
  paper for ALFWorld; `fit(..., successes_only=True)` keeps only those.

Optimizer, schedule, data order and resumable state come from `rl.training` (AdamW, linear
warm-up + cosine, seeded permutation per epoch). Outputs (`fit`): `OUT/` HF checkpoint +
tokenizer + learner_info.json, `OUT/tensorboard/`, `OUT/state/training_state.pt`.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from reasoner.records import Trajectory
from rl import training
from rl.data import TrajectoryBatch, collate_trajectories, encode_trajectories, pad_id_of

__all__ = ["AgentBCConfig", "AgentBCLearner", "turn_nll"]


@dataclass
class AgentBCConfig:
    """Behaviour-cloning settings (the `agent_bc` block of a recipe)."""
    lr: float = 2e-3
    """Peak learning rate (2e-3 for the tiny from-scratch model; 2e-5 for 2B models, OREO's ALFWorld SFT and RFT)."""
    weight_decay: float = 0.01
    """AdamW weight decay (matrices only)."""
    adam_betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas."""
    warmup_ratio: float = 0.03
    """Fraction of optimizer steps spent in linear warm-up before the cosine."""
    min_lr_ratio: float = 0.1
    """The cosine ends at this fraction of the peak."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    batch_size: int = 8
    """Trajectories per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    epochs: int = 2
    """Passes over the trajectories (used when max_steps = 0; OREO's ALFWorld SFT: 2)."""
    max_steps: int = 0
    """Optimizer steps of the run (0 = derived from epochs)."""
    max_len: int = 2048
    """Trajectories longer than this many tokens are skipped."""
    seed: int = 0
    """Seed of the data order."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    dtype: str = "auto"
    """Compute dtype under autocast: auto (bf16 on CUDA), float32, bfloat16."""
    log_every: int = 10
    """Optimizer steps between TensorBoard points."""
    save_every: int = 200
    """Optimizer steps between resumable state saves (0 = only at the end)."""

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.grad_accum < 1 or self.epochs < 1 or self.max_steps < 0:
            raise ValueError("agent_bc.lr must be > 0, batch_size/grad_accum/epochs >= 1, max_steps >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("agent_bc.warmup_ratio must be in [0, 1)")
        self.adam_betas = tuple(self.adam_betas)


def turn_nll(logits: torch.Tensor, batch: TrajectoryBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed negative log-likelihood of the turn tokens and their count.

    Args:
        logits: [B, L-1, V] (label-aligned: index j predicts token j+1).
        batch: the collated trajectories (its `action_mask` [B, L-1] marks turn tokens).

    Returns:
        (sum of -log p over turn tokens, number of turn tokens), both scalars.
    """
    targets = batch.input_ids[:, 1:]
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                          reduction="none").view_as(targets)                       # [B, L-1]
    return (nll * batch.action_mask).sum(), batch.action_mask.sum()


class AgentBCLearner:
    """Trains `policy` by behaviour cloning on `Trajectory` records; see the module docstring."""

    def __init__(self, policy, tokenizer, cfg: AgentBCConfig):
        from reasoner.loading import resolve_device, resolve_dtype
        self.cfg = cfg
        self.device = torch.device(resolve_device(cfg.device))
        self.dtype = resolve_dtype(cfg.dtype, self.device.type)
        self.policy = training.prepare_trainable(policy, self.device)
        self.tokenizer = tokenizer
        self.pad_id = pad_id_of(tokenizer)
        self.opt = training.build_adamw(self.policy, lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
        self.sched = None
        self.step = 0
        self._items: list = []
        self.policy_version = 0

    def train_step(self) -> dict[str, float]:
        """One optimizer step over `grad_accum` micro-batches; token-mean NLL over all their turn tokens."""
        cfg = self.cfg
        self.opt.zero_grad(set_to_none=True)
        batches = []
        for k in range(cfg.grad_accum):
            idx = training.micro_batch_indices(len(self._items), cfg.batch_size, cfg.seed,
                                               self.step * cfg.grad_accum + k)
            batches.append(collate_trajectories([self._items[i] for i in idx], self.pad_id).to(self.device))
        n_tok = max(1.0, float(sum(b.action_mask.sum() for b in batches)))
        total = 0.0
        for batch in batches:
            with training.autocast(self.device, self.dtype):
                logits = training.causal_lm_logits(self.policy, batch.input_ids, batch.attention_mask)
            nll, _ = turn_nll(logits, batch)
            (nll / n_tok).backward()
            total += nll.item()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip))
        lr = self.sched.get_last_lr()[0]
        self.opt.step()
        self.sched.step()
        self.step += 1
        return {"loss": total / n_tok, "grad_norm": grad_norm, "lr": lr, "tokens": n_tok}

    def state_dict(self) -> dict:
        return {"step": self.step, "rng": training.capture_rng(), "policy": training.trainable_state_dict(self.policy),
                "opt": self.opt.state_dict(), "sched": self.sched.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        training.load_trainable_state_dict(self.policy, state["policy"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        training.restore_rng(state["rng"])
        self.step = int(state["step"])

    def save(self, out_dir: str | os.PathLike, *, algo: str = "agent_bc") -> Path:
        """Write the HF checkpoint + tokenizer + learner_info.json to `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.policy.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
        info = {"algo": algo, "steps": self.step, "policy_version": self.policy_version, "config": asdict(self.cfg)}
        (out / "learner_info.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
        return out

    def fit(self, trajectories: Sequence[Trajectory], out_dir: str | os.PathLike | None = None, *,
            successes_only: bool = False, algo: str = "agent_bc", progress: bool = True) -> dict:
        """Train until the step budget (resuming from `out_dir/state`), then save to `out_dir`.

        Args:
            trajectories: the records to imitate.
            successes_only: keep only trajectories with reward 1 (rejection sampling).
            algo: name written into learner_info.json and the resumable state ("agent_bc", "rft").

        Returns:
            `training.run_loop`'s summary plus {"trajectories", "skipped"}.

        Raises:
            ValueError: nothing to train on (no trajectories, no successes, or all too long).
        """
        cfg = self.cfg
        if self.sched is not None:
            raise RuntimeError("fit() runs once per learner; build a new learner for the next round")
        data = [t for t in trajectories if t.reward == 1.0] if successes_only else list(trajectories)
        if not data:
            raise ValueError(f"{algo}: no trajectories to train on "
                             f"({len(trajectories)} given{', none successful' if successes_only else ''})")
        self._items, skipped = encode_trajectories(data, self.tokenizer, cfg.max_len)
        if not self._items:
            raise ValueError(f"{algo}: all {len(data)} trajectories are longer than max_len={cfg.max_len} tokens")
        self.policy_version = max(t.policy_version for t in data) + 1
        total = training.num_optimizer_steps(len(self._items), batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                                             epochs=cfg.epochs, max_steps=cfg.max_steps)
        self.sched = training.build_scheduler(self.opt, total_steps=total, warmup_ratio=cfg.warmup_ratio,
                                              min_lr_ratio=cfg.min_lr_ratio)
        out = Path(out_dir) if out_dir is not None else None
        writer = training.open_writer(out / "tensorboard" if out else None)
        try:
            summary = training.run_loop(
                self, total_steps=total, state_path=out / "state" / training.STATE_FILE if out else None,
                writer=writer, tag=algo, log_every=cfg.log_every, save_every=cfg.save_every, progress=progress,
                meta={"algo": algo, "records": len(self._items)})
        finally:
            if writer is not None:
                writer.close()
        if out is not None:
            self.save(out, algo=algo)
        return {**summary, "trajectories": len(self._items), "skipped": skipped}
