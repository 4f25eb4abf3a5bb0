"""OREO learner: joint policy + value training from scored trajectories (soft Bellman consistency).

Paper: Wang et al., "Offline Reinforcement Learning for LLM Multi-Step Reasoning" (OREO,
arXiv 2412.16145); the objectives, stop-gradients and update order are algorithms.md 2.2-2.4 and
8.1-8.4. From unpaired trajectories with outcome reward R in {0, 1} it minimises, per state s_t of
the response (`rl.losses`):

    value  (eq. 8):  ( V(s_t) + beta * sg[P_t] - R )^2                 P_t = sum_{i >= t} rho_i
    policy (eq. 9):  ( sg[V(s_t)] + beta * rho_t + beta * sg[P_{t+1}] - R )^2  +  alpha * KL(pi || pi_ref)

with the exact full-vocabulary KL per action token (alpha = 0.01) and beta = 0.03. Variants
(`OREOVariant`): token-level (default; every action token is a step), step-level (a reasoning
step, i.e. one `Trajectory.steps` entry, is the action; states are step boundaries) and
response-level (eq. 10: the whole response is one action; states = {s_0}).

Update order per micro-batch (algorithms.md 2.2): the reference, policy and critic forwards run
first; the critic's values from *before* its update enter the policy loss, detached. The two
losses are summed into one backward: by the stop-gradients the value loss reaches only the
critic's parameters and the policy loss only the policy's (checked in tests/rl/test_oreo.py), so
this equals OREO's "critic backward, then policy forward/backward" while sharing one policy
forward. Both optimizers step after `grad_accum` micro-batches.

Iterative OREO (algorithms.md 2.5, section 8.9): train, export `OUT/policy` and `OUT/value`,
regenerate trajectories with the new policy, then build a new learner from those checkpoints
(reference unchanged: the SFT model) and train again.

Outputs (`fit`): `OUT/policy/` (HF checkpoint + tokenizer + learner_info.json), `OUT/value/`
(`ValueModel` directory), `OUT/tensorboard/`, `OUT/state/training_state.pt`.
"""
from __future__ import annotations

import enum
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from reasoner.lora import LoraOptions, apply_lora, save_merged
from reasoner.records import REWARD_CONVENTION, Trajectory
from rl import training
from rl.data import TrajectoryBatch, collate_trajectories, encode_trajectories, pad_id_of
from rl.losses import (exact_kl, group_first_index, group_sum, oreo_policy_loss, oreo_value_loss,
                       sequence_mean, token_logprobs)

__all__ = ["OREOVariant", "ValueStates", "OREOConfig", "OREOLearner", "action_groups"]


class OREOVariant(str, enum.Enum):
    """What one action is (algorithms.md 2.3)."""
    TOKEN = "token"
    STEP = "step"
    RESPONSE = "response"


class ValueStates(str, enum.Enum):
    """Which states the value-only fit (`train_policy=False`) regresses on R."""
    ALL = "all"
    """Every state s_t of the variant (OREO's eq. 8 with rho = 0)."""
    FINAL = "final"
    """Only the last state: the finished response as search scores it (an outcome verifier)."""


@dataclass
class OREOConfig:
    """OREO training settings (the `oreo` block of a recipe); defaults from OREO's 1.5B math scripts."""
    variant: OREOVariant = OREOVariant.TOKEN
    """token (default), step or response."""
    train_policy: bool = True
    """False: fit only the value, the frozen policy being its own reference (rho = 0): eq. 8 then
    regresses V(s_t) on R, the Monte-Carlo value of the data (no policy or reference forward)."""
    value_states: ValueStates = ValueStates.ALL
    """Value-only fit: regress every state (all) or only the finished response's (final) on R."""
    beta: float = 0.03
    """KL-regularisation strength in the soft Bellman equation."""
    alpha: float = 0.01
    """Coefficient of the exact KL(pi || pi_ref) regulariser (paper: 0.1 best for step-level)."""
    policy_lr: float = 5e-6
    """Peak learning rate of the policy."""
    value_lr: float = 5e-6
    """Peak learning rate of the critic (1e-4 with LoRA-64 on a 7B critic)."""
    weight_decay: float = 0.0
    """AdamW weight decay (matrices only)."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas for both optimizers."""
    warmup_ratio: float = 0.03
    """Fraction of optimizer steps spent in linear warm-up before the cosine."""
    min_lr_ratio: float = 0.0
    """The cosine ends at this fraction of the peak."""
    grad_clip: float = 1.0
    """Gradient-norm clip, applied to each model separately."""
    batch_size: int = 4
    """Trajectories per micro-batch (forward pass)."""
    grad_accum: int = 32
    """Micro-batches per optimizer step (global batch 128 in the paper)."""
    epochs: int = 1
    """Passes over the trajectories (used when max_steps = 0)."""
    max_steps: int = 0
    """Optimizer steps of the run (0 = derived from epochs)."""
    max_len: int = 2048
    """Trajectories longer than this many tokens are skipped."""
    append_eos: bool = True
    """Append EOS to the final step (a finished attempt; see rl.data)."""
    policy_lora: LoraOptions = field(default_factory=LoraOptions)
    """Optional LoRA on the policy."""
    value_lora: LoraOptions = field(default_factory=LoraOptions)
    """Optional LoRA on the critic backbone (the head always trains)."""
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
        self.variant = OREOVariant(self.variant)
        self.value_states = ValueStates(self.value_states)
        if self.value_states == ValueStates.FINAL and self.train_policy:
            raise ValueError("oreo.value_states=final is for the value-only fit (train_policy=false)")
        if self.beta <= 0 or self.alpha < 0 or self.policy_lr <= 0 or self.value_lr <= 0:
            raise ValueError("oreo.beta, policy_lr, value_lr must be > 0 and alpha >= 0")
        if self.batch_size < 1 or self.grad_accum < 1 or self.epochs < 1 or self.max_steps < 0:
            raise ValueError("oreo.batch_size, grad_accum, epochs must be >= 1 and max_steps >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("oreo.warmup_ratio must be in [0, 1)")
        self.adam_betas = tuple(self.adam_betas)


def action_groups(batch: TrajectoryBatch, variant: OREOVariant) -> tuple[torch.Tensor, int]:
    """Which action each label-aligned token belongs to, for `rl.losses.group_sum`.

    Returns:
        group ids [B, L-1] long (-1 outside actions) and the number of groups G:
        token: the k-th action token of a row is group k; step: `Trajectory.steps` index;
        response: every action token is group 0.
    """
    act = batch.action_mask > 0                                                    # [B, L-1]
    if variant == OREOVariant.TOKEN:
        ids = torch.where(act, act.long().cumsum(-1) - 1, -1)
    elif variant == OREOVariant.STEP:
        ids = batch.step_index
    else:
        ids = torch.where(act, 0, -1)
    return ids, max(int(ids.max()) + 1, 1)


class OREOLearner:
    """Trains `policy` and `value_model` jointly on `Trajectory` records; see the module docstring.

    Args:
        policy: HF causal LM to train (LoRA applied here if `cfg.policy_lora.enabled`).
        ref_policy: frozen HF causal LM (the SFT checkpoint).
        value_model: `reasoner.value_model.ValueModel` (LoRA on its backbone if `cfg.value_lora.enabled`).
        tokenizer: the policy's tokenizer.
        cfg: `OREOConfig`.
    """

    def __init__(self, policy, ref_policy, value_model, tokenizer, cfg: OREOConfig):
        from reasoner.loading import resolve_device, resolve_dtype
        self.cfg = cfg
        self.device = torch.device(resolve_device(cfg.device))
        self.dtype = resolve_dtype(cfg.dtype, self.device.type)
        if cfg.train_policy:
            self.policy = training.prepare_trainable(apply_lora(policy, cfg.policy_lora), self.device)
        else:
            self.policy = training.freeze(policy, self.device, torch.float32)
        value_model.backbone = apply_lora(value_model.backbone, cfg.value_lora)
        if value_model.tokenizer is None:
            value_model.tokenizer = tokenizer
        self.value = training.prepare_trainable(value_model, self.device)
        self.ref = training.freeze(ref_policy, self.device, self.dtype)
        self.tokenizer = tokenizer
        self.pad_id = pad_id_of(tokenizer)
        self.policy_opt = training.build_adamw(self.policy, lr=cfg.policy_lr, betas=cfg.adam_betas,
                                               weight_decay=cfg.weight_decay) if cfg.train_policy else None
        self.value_opt = training.build_adamw(self.value, lr=cfg.value_lr, betas=cfg.adam_betas,
                                              weight_decay=cfg.weight_decay)
        self.policy_sched = self.value_sched = None
        self.step = 0
        self._items: list = []
        self.policy_version = 0

    # ------------------------------------------------------------------ losses of one micro-batch
    def losses(self, batch: TrajectoryBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """(value loss, policy loss, KL) of one batch, with the stop-gradients of eqs. 8-9."""
        cfg = self.cfg
        groups, G = action_groups(batch, cfg.variant)
        if not cfg.train_policy:
            return self._value_only_losses(batch, groups, G)
        with training.autocast(self.device, self.dtype):
            with torch.no_grad():
                ref_logits = training.causal_lm_logits(self.ref, batch.input_ids, batch.attention_mask)
            with torch.set_grad_enabled(cfg.train_policy and torch.is_grad_enabled()):
                logits = training.causal_lm_logits(self.policy, batch.input_ids, batch.attention_mask)  # [B, L-1, V]
            values = self.value(batch.input_ids, batch.attention_mask)[:, :-1]      # [B, L-1] V(after token j)
        rho = (token_logprobs(logits, batch.input_ids) - token_logprobs(ref_logits, batch.input_ids)
               ) * batch.action_mask                                               # [B, L-1]
        rho_t = group_sum(rho, groups, G)                                          # [B, T] per action
        first, mask_t = group_first_index(groups, G)                               # [B, T]
        v_t = values.gather(1, first)                                              # [B, T] V(s_t)
        value_loss = oreo_value_loss(v_t, rho_t, mask_t, batch.rewards, beta=cfg.beta)
        policy_loss = oreo_policy_loss(v_t, rho_t, mask_t, batch.rewards, beta=cfg.beta)
        act = batch.action_mask > 0
        kl_tok = torch.zeros_like(rho).masked_scatter(act, exact_kl(logits[act], ref_logits[act]))
        kl = sequence_mean(kl_tok, batch.action_mask)
        stats = {"value_loss": value_loss.item(), "policy_loss": policy_loss.item(), "kl": kl.item(),
                 "v_s0": v_t[:, 0].mean().item(), "logratio": (rho.sum(-1)).mean().item()}
        return value_loss, policy_loss, kl, stats

    def _value_only_losses(self, batch: TrajectoryBatch, groups: torch.Tensor, G: int):
        """Value-only fit: rho = 0 (the frozen policy is its own reference), so eq. 8 is
        ( V(s_t) - R )^2. A fixed policy is not the soft-optimal policy of eq. 8's consistency
        condition, so its log-ratio to the SFT reference would only add noise to the target."""
        with training.autocast(self.device, self.dtype):
            values = self.value(batch.input_ids, batch.attention_mask)[:, :-1]      # [B, L-1]
        first, mask_t = group_first_index(groups, G)                               # [B, T]
        if self.cfg.value_states == ValueStates.FINAL:   # keep each row's last state only
            last = mask_t.cumsum(-1).argmax(-1, keepdim=True)                      # [B, 1]
            mask_t = torch.zeros_like(mask_t).scatter(1, last, mask_t.gather(1, last))
        v_t = values.gather(1, first)
        rho_t = torch.zeros_like(v_t)
        value_loss = oreo_value_loss(v_t, rho_t, mask_t, batch.rewards, beta=self.cfg.beta)
        zero = value_loss.new_zeros(())
        stats = {"value_loss": value_loss.item(), "policy_loss": 0.0, "kl": 0.0,
                 "v_s0": v_t[:, 0].mean().item(), "logratio": 0.0}
        return value_loss, zero, zero, stats

    def train_step(self) -> dict[str, float]:
        """One optimizer step of both models over `grad_accum` micro-batches; returns averaged metrics."""
        cfg = self.cfg
        models = [("value", self.value, self.value_opt, self.value_sched)]
        if cfg.train_policy:
            models.insert(0, ("policy", self.policy, self.policy_opt, self.policy_sched))
        for _, _, opt, _ in models:
            opt.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for k in range(cfg.grad_accum):
            idx = training.micro_batch_indices(len(self._items), cfg.batch_size, cfg.seed,
                                               self.step * cfg.grad_accum + k)
            batch = collate_trajectories([self._items[i] for i in idx], self.pad_id).to(self.device)
            value_loss, policy_loss, kl, stats = self.losses(batch)
            loss = value_loss + (policy_loss + cfg.alpha * kl if cfg.train_policy else 0.0)
            (loss / cfg.grad_accum).backward()
            for name, v in stats.items():
                totals[name] = totals.get(name, 0.0) + v / cfg.grad_accum
        for name, model, opt, sched in models:
            params = [p for p in model.parameters() if p.requires_grad]
            totals[f"{name}_grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            totals[f"{name}_lr"] = sched.get_last_lr()[0]
            opt.step()
            sched.step()
        self.step += 1
        return totals

    # ------------------------------------------------------------------ state and outputs
    def state_dict(self) -> dict:
        state = {"step": self.step, "rng": training.capture_rng(),
                 "value": training.trainable_state_dict(self.value),
                 "value_opt": self.value_opt.state_dict(), "value_sched": self.value_sched.state_dict()}
        if self.cfg.train_policy:
            state.update(policy=training.trainable_state_dict(self.policy), policy_opt=self.policy_opt.state_dict(),
                         policy_sched=self.policy_sched.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        training.load_trainable_state_dict(self.value, state["value"])
        self.value_opt.load_state_dict(state["value_opt"])
        self.value_sched.load_state_dict(state["value_sched"])
        if self.cfg.train_policy:
            training.load_trainable_state_dict(self.policy, state["policy"])
            self.policy_opt.load_state_dict(state["policy_opt"])
            self.policy_sched.load_state_dict(state["policy_sched"])
        training.restore_rng(state["rng"])
        self.step = int(state["step"])

    def save(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Write `out_dir/policy` (HF checkpoint) and `out_dir/value` (ValueModel), LoRA merged."""
        out = Path(out_dir)
        policy_dir = save_merged(self.policy, out / "policy")
        self.tokenizer.save_pretrained(str(policy_dir))
        info = {"algo": "oreo", "steps": self.step, "policy_version": self.policy_version,
                "reward_convention": REWARD_CONVENTION, "config": asdict(self.cfg)}
        (policy_dir / "learner_info.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
        return policy_dir, self.value.save_pretrained(out / "value")

    def fit(self, trajectories: Sequence[Trajectory], out_dir: str | os.PathLike | None = None, *,
            progress: bool = True) -> dict:
        """Train on `trajectories` until the step budget; resumes from `out_dir/state` when present.

        Returns:
            `training.run_loop`'s summary plus {"trajectories", "skipped"}.

        Raises:
            ValueError: no trajectories, a reward outside {0, 1}, or none fits in `cfg.max_len`.
        """
        cfg = self.cfg
        if self.value_sched is not None:
            raise RuntimeError("fit() runs once per learner; build a new learner for the next round")
        if not trajectories:
            raise ValueError("OREO needs at least one Trajectory")
        bad = [t.problem_id for t in trajectories if t.reward not in (0.0, 1.0)]
        if bad:
            raise ValueError(f"OREO expects R in {{0, 1}} ({REWARD_CONVENTION}); got others for {bad[:3]}")
        self._items, skipped = encode_trajectories(trajectories, self.tokenizer, cfg.max_len,
                                                   append_eos=cfg.append_eos)
        if not self._items:
            raise ValueError(f"all {len(trajectories)} trajectories are longer than max_len={cfg.max_len} tokens")
        self.policy_version = max(t.policy_version for t in trajectories) + 1
        total = training.num_optimizer_steps(len(self._items), batch_size=cfg.batch_size,
                                             grad_accum=cfg.grad_accum, epochs=cfg.epochs, max_steps=cfg.max_steps)
        sched = dict(total_steps=total, warmup_ratio=cfg.warmup_ratio, min_lr_ratio=cfg.min_lr_ratio)
        self.policy_sched = training.build_scheduler(self.policy_opt, **sched) if cfg.train_policy else None
        self.value_sched = training.build_scheduler(self.value_opt, **sched)
        out = Path(out_dir) if out_dir is not None else None
        writer = training.open_writer(out / "tensorboard" if out else None)
        try:
            summary = training.run_loop(
                self, total_steps=total, state_path=out / "state" / training.STATE_FILE if out else None,
                writer=writer, tag="oreo", log_every=cfg.log_every, save_every=cfg.save_every,
                progress=progress, meta={"algo": f"oreo-{cfg.variant.value}", "records": len(self._items)})
        finally:
            if writer is not None:
                writer.close()
        if out is not None:
            self.save(out)
        return {**summary, "trajectories": len(self._items), "skipped": skipped}
