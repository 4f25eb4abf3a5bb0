"""Step-DPO learner: trains the policy on step-level preference pairs from search (MCTS-DPO).

Paper: Xie et al., "Monte Carlo Tree Search Boosts Reasoning via Iterative Preference Learning"
(arXiv 2405.00451); loss and data details in algorithms.md 3.4 / 8.8. The policy sees
`prompt + prefix` and is pushed toward the chosen step and away from the rejected sibling, against
a frozen reference (the SFT model):

    loss = -(1 - eps) log sigma(beta h) - eps log sigma(-beta h),    (`rl.losses.step_dpo_loss`)

with h the difference of policy/reference log-ratios summed over the step tokens after the
divergence (`rl.data`), beta = 0.1 and eps = `StepPair.weight` = N_l / (N_w + N_l) per pair.

Why our own loop and not TRL's `DPOTrainer`: TRL 1.16's sigmoid loss has no label smoothing at
all (`label_smoothing` only feeds its robust/EXO/AOT losses) and it is global, not per pair; and
its collator masks the whole completion, while a step pair must be scored only on the tokens after
the shared prefix. Both are the core of MCTS-DPO, so the loop below (our loss, frozen reference,
AdamW, warm-up + cosine, gradient clipping, TensorBoard) is short and explicit instead. The loss
is checked against TRL's own `DPOTrainer` loss on the same model and tokens in
tests/rl/test_losses.py, so the two agree where both apply (eps = 0, and eps > 0 through TRL's
sigmoid loss on both orderings of the pair).

Outputs (`fit`): `OUT/policy/` (HF checkpoint + tokenizer + learner_info.json), `OUT/tensorboard/`
(TensorBoard curves), `OUT/state/training_state.pt` (resumable).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from reasoner.lora import LoraOptions, apply_lora, save_merged
from reasoner.records import REWARD_CONVENTION, StepPair
from rl import training
from rl.data import collate_pairs, encode_pairs, pad_id_of
from rl.losses import masked_sum, step_dpo_loss, token_logprobs

__all__ = ["StepDPOConfig", "StepDPOLearner"]


@dataclass
class StepDPOConfig:
    """Step-DPO training settings (the `step_dpo` block of a recipe); defaults from MCTS-DPO's math scripts."""
    beta: float = 0.1
    """DPO inverse temperature ("scale_coeff")."""
    lr: float = 1e-6
    """Peak learning rate."""
    weight_decay: float = 0.05
    """AdamW weight decay (matrices only)."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    warmup_ratio: float = 0.03
    """Fraction of optimizer steps spent in linear warm-up before the cosine."""
    min_lr_ratio: float = 0.0
    """The cosine ends at this fraction of the peak."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    batch_size: int = 4
    """Pairs per micro-batch (forward pass)."""
    grad_accum: int = 16
    """Micro-batches per optimizer step (global batch = batch_size * grad_accum)."""
    epochs: int = 1
    """Passes over the pairs (used when max_steps = 0)."""
    max_steps: int = 0
    """Optimizer steps of the run (0 = derived from epochs)."""
    max_len: int = 512
    """Pairs whose longer sequence exceeds this many tokens are skipped."""
    use_label_smoothing: bool = True
    """Use each pair's weight as its eps (False = plain DPO, eps = 0)."""
    lora: LoraOptions = field(default_factory=LoraOptions)
    """Optional LoRA on the policy."""
    seed: int = 0
    """Seed of the data order."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    dtype: str = "auto"
    """Compute dtype for autocast and the frozen reference: auto (bf16 on CUDA), float32, bfloat16."""
    log_every: int = 1
    """Optimizer steps between TensorBoard points."""
    save_every: int = 50
    """Optimizer steps between resumable state saves (0 = only at the end)."""

    def __post_init__(self) -> None:
        if self.beta <= 0 or self.lr <= 0:
            raise ValueError("step_dpo.beta and step_dpo.lr must be > 0")
        if self.batch_size < 1 or self.grad_accum < 1 or self.epochs < 1 or self.max_steps < 0:
            raise ValueError("step_dpo.batch_size, grad_accum, epochs must be >= 1 and max_steps >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("step_dpo.warmup_ratio must be in [0, 1)")
        self.adam_betas = tuple(self.adam_betas)


class StepDPOLearner:
    """Trains `policy` on `StepPair` records against the frozen `ref_policy`.

    Args:
        policy: HF causal LM to train (LoRA is applied here if `cfg.lora.enabled`).
        ref_policy: HF causal LM, frozen (normally the SFT checkpoint the policy started from).
        tokenizer: the policy's tokenizer.
        cfg: `StepDPOConfig`.
    """

    algo = "step_dpo"

    def __init__(self, policy, ref_policy, tokenizer, cfg: StepDPOConfig):
        from reasoner.loading import resolve_device, resolve_dtype
        self.cfg = cfg
        self.device = torch.device(resolve_device(cfg.device))
        self.dtype = resolve_dtype(cfg.dtype, self.device.type)
        self.policy = training.prepare_trainable(apply_lora(policy, cfg.lora), self.device)
        self.ref = training.freeze(ref_policy, self.device, self.dtype)
        self.tokenizer = tokenizer
        self.pad_id = pad_id_of(tokenizer)
        self.optimizer = training.build_adamw(self.policy, lr=cfg.lr, betas=cfg.adam_betas,
                                              weight_decay=cfg.weight_decay)
        self.scheduler = None
        self.step = 0
        self._items: list = []
        self.policy_version = 0

    # ------------------------------------------------------------------ one optimizer step
    def batch_loss(self, indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean loss (with grad) and metrics of the encoded pairs at `indices`."""
        batch = collate_pairs([self._items[i] for i in indices], self.pad_id).to(self.device)
        with training.autocast(self.device, self.dtype):
            with torch.no_grad():
                ref_lp = token_logprobs(training.causal_lm_logits(self.ref, batch.input_ids, batch.attention_mask),
                                        batch.input_ids)                                   # [2B, L-1]
            lp = token_logprobs(training.causal_lm_logits(self.policy, batch.input_ids, batch.attention_mask),
                                batch.input_ids)                                           # [2B, L-1]
        chosen, rejected = masked_sum(lp, batch.action_mask).chunk(2)                      # [B], [B]
        ref_chosen, ref_rejected = masked_sum(ref_lp, batch.action_mask).chunk(2)
        eps = batch.label_smoothing if self.cfg.use_label_smoothing else 0.0
        out = step_dpo_loss(chosen, rejected, ref_chosen, ref_rejected, eps, beta=self.cfg.beta)
        loss = out.losses.mean()
        stats = {"loss": loss.item(), "margin": (out.chosen_rewards - out.rejected_rewards).mean().item(),
                 "accuracy": (out.chosen_rewards > out.rejected_rewards).float().mean().item(),
                 "reward_chosen": out.chosen_rewards.mean().item(),
                 "reward_rejected": out.rejected_rewards.mean().item()}
        return loss, stats

    def train_step(self) -> dict[str, float]:
        """One optimizer step over `grad_accum` micro-batches; returns averaged metrics."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for k in range(cfg.grad_accum):
            idx = training.micro_batch_indices(len(self._items), cfg.batch_size, cfg.seed,
                                               self.step * cfg.grad_accum + k)
            loss, stats = self.batch_loss(idx)
            (loss / cfg.grad_accum).backward()
            for name, v in stats.items():
                totals[name] = totals.get(name, 0.0) + v / cfg.grad_accum
        totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(
            [p for p in self.policy.parameters() if p.requires_grad], cfg.grad_clip))
        totals["lr"] = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return totals

    def encode(self, pairs: Sequence[StepPair]) -> tuple[list, int]:
        """Token ids of the pairs (`rl.data.encode_pairs`); returns (kept, skipped). Subclasses may re-encode."""
        return encode_pairs(pairs, self.tokenizer, self.cfg.max_len)

    # ------------------------------------------------------------------ state and outputs
    def state_dict(self) -> dict:
        return {"step": self.step, "policy": training.trainable_state_dict(self.policy),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": training.capture_rng()}

    def load_state_dict(self, state: dict) -> None:
        training.load_trainable_state_dict(self.policy, state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        training.restore_rng(state["rng"])
        self.step = int(state["step"])

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write `out_dir/policy` as an HF checkpoint (LoRA merged) with tokenizer and learner_info.json."""
        path = save_merged(self.policy, Path(out_dir) / "policy")
        self.tokenizer.save_pretrained(str(path))
        info = {"algo": self.algo, "steps": self.step, "policy_version": self.policy_version,
                "reward_convention": REWARD_CONVENTION, "config": asdict(self.cfg)}
        (path / "learner_info.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
        return path

    def fit(self, pairs: Sequence[StepPair], out_dir: str | os.PathLike | None = None, *,
            progress: bool = True) -> dict:
        """Train on `pairs` until the step budget; resumes from `out_dir/state` when present.

        Returns:
            `training.run_loop`'s summary plus {"pairs", "skipped"}.

        Raises:
            ValueError: no pairs, or none fits in `cfg.max_len`.
        """
        cfg = self.cfg
        if self.scheduler is not None:
            raise RuntimeError("fit() runs once per learner; build a new learner for the next round")
        if not pairs:
            raise ValueError("step-DPO needs at least one StepPair")
        self._items, skipped = self.encode(pairs)
        if not self._items:
            raise ValueError(f"all {len(pairs)} pairs are longer than max_len={cfg.max_len} tokens")
        self.policy_version = max(p.policy_version for p in pairs) + 1
        total = training.num_optimizer_steps(len(self._items), batch_size=cfg.batch_size,
                                             grad_accum=cfg.grad_accum, epochs=cfg.epochs, max_steps=cfg.max_steps)
        self.scheduler = training.build_scheduler(self.optimizer, total_steps=total, warmup_ratio=cfg.warmup_ratio,
                                                  min_lr_ratio=cfg.min_lr_ratio)
        out = Path(out_dir) if out_dir is not None else None
        writer = training.open_writer(out / "tensorboard" if out else None)
        try:
            summary = training.run_loop(
                self, total_steps=total, state_path=out / "state" / training.STATE_FILE if out else None,
                writer=writer, tag=self.algo, log_every=cfg.log_every, save_every=cfg.save_every,
                progress=progress, meta={"algo": self.algo, "records": len(self._items)})
        finally:
            if writer is not None:
                writer.close()
        if out is not None:
            self.save(out)
        return {**summary, "pairs": len(self._items), "skipped": skipped}
