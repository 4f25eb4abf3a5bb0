"""SPaR's two learners: actor DPO with an NLL term on the chosen response, refiner RFT.

Paper: Cheng et al., SPaR (arXiv 2412.11605); algorithms.md 4.4. The actor is trained on
refinement pairs (chosen = refined response, rejected = the original failing one) with
LLaMA-Factory's DPO + "pref_ftx":

    L = -log sigma(beta * h) + nll_weight * NLL(y_w | x),     beta = 0.1, nll_weight = 0.1

where h is the usual DPO log-ratio margin over the whole responses (`rl.losses.step_dpo_loss`
with eps = 0) and NLL is the per-token mean negative log-likelihood of the chosen response (as
LLaMA-Factory's `sft_loss = -chosen_logps / chosen_length`). Each response ends with EOS and
is scored in full: unlike step pairs, the shared start of chosen and rejected is not moved into
the context, so the NLL term sees every chosen token (the DPO margin is unchanged, the shared
tokens' ratios cancel).

The refiner is trained by rejection-sampling fine-tuning (RFT): plain SFT (`rl.learners.sft`) on
its own successful refinements and majority critiques (`search.spar_data.refiner_examples`), for
`epochs` passes at a constant learning rate after a 10% warm-up (the paper's settings).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from reasoner.records import StepPair
from rl import training
from rl.data import EncodedPair, _ids, collate_pairs
from rl.learners.sft import SFTConfig
from rl.learners.step_dpo import StepDPOConfig, StepDPOLearner
from rl.losses import masked_sum, step_dpo_loss, token_logprobs

__all__ = ["SparDPOConfig", "SparDPOLearner", "RFTConfig", "encode_response_pair", "rft_sft_config"]


@dataclass
class SparDPOConfig(StepDPOConfig):
    """Actor DPO settings (the `spar_dpo` block); paper: beta 0.1, lr 2e-7, 1 epoch, 10% warm-up, batch 2 x 2."""
    nll_weight: float = 0.1
    """Weight of the chosen response's per-token NLL ("pref_ftx")."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nll_weight < 0:
            raise ValueError("spar_dpo.nll_weight must be >= 0")


def encode_response_pair(pair: StepPair, tokenizer) -> EncodedPair:
    """Prompt (+ prefix) as context; chosen and rejected responses in full, each followed by EOS."""
    context = _ids(tokenizer, pair.prompt, special=True) + _ids(tokenizer, pair.prefix)
    eos = [tokenizer.eos_token_id]
    return EncodedPair(context, _ids(tokenizer, pair.chosen) + eos, _ids(tokenizer, pair.rejected) + eos, 0.0)


class SparDPOLearner(StepDPOLearner):
    """`StepDPOLearner` with whole-response pairs and the NLL term (see module docstring)."""

    algo = "spar_dpo"

    def encode(self, pairs: Sequence[StepPair]) -> tuple[list, int]:
        items = [encode_response_pair(p, self.tokenizer) for p in pairs]
        kept = [e for e in items if len(e.context) + max(len(e.chosen), len(e.rejected)) <= self.cfg.max_len]
        return kept, len(items) - len(kept)

    def batch_loss(self, indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        """DPO (eps = 0) + nll_weight * mean per-token NLL of the chosen responses."""
        batch = collate_pairs([self._items[i] for i in indices], self.pad_id).to(self.device)
        with training.autocast(self.device, self.dtype):
            with torch.no_grad():
                ref_lp = token_logprobs(training.causal_lm_logits(self.ref, batch.input_ids, batch.attention_mask),
                                        batch.input_ids)                                   # [2B, L-1]
            lp = token_logprobs(training.causal_lm_logits(self.policy, batch.input_ids, batch.attention_mask),
                                batch.input_ids)                                           # [2B, L-1]
        chosen, rejected = masked_sum(lp, batch.action_mask).chunk(2)                      # [B], [B]
        ref_chosen, ref_rejected = masked_sum(ref_lp, batch.action_mask).chunk(2)
        out = step_dpo_loss(chosen, rejected, ref_chosen, ref_rejected, 0.0, beta=self.cfg.beta)
        n_chosen = batch.action_mask.chunk(2)[0].sum(-1).clamp(min=1.0)                    # [B]
        nll = -(chosen / n_chosen)                                                         # [B]
        loss = out.losses.mean() + self.cfg.nll_weight * nll.mean()
        stats = {"loss": loss.item(), "dpo_loss": out.losses.mean().item(), "nll": nll.mean().item(),
                 "margin": (out.chosen_rewards - out.rejected_rewards).mean().item(),
                 "accuracy": (out.chosen_rewards > out.rejected_rewards).float().mean().item()}
        return loss, stats


@dataclass
class RFTConfig:
    """Refiner RFT settings (the `rft` block); paper: lr 2e-6, 5 epochs, constant LR after 10% warm-up, batch 2 x 4."""
    lr: float = 2e-6
    """Learning rate (constant after warm-up)."""
    epochs: int = 5
    """Passes over the refiner examples."""
    batch_size: int = 8
    """Examples per optimizer step."""
    warmup_ratio: float = 0.1
    """Share of the steps spent in linear warm-up."""
    max_len: int = 4096
    """Longest example in tokens (cut from the right)."""
    max_steps: int = 0
    """Cap on optimizer steps (0 = from epochs)."""

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.epochs < 1 or self.batch_size < 1 or self.max_steps < 0:
            raise ValueError("rft: lr > 0, epochs >= 1, batch_size >= 1, max_steps >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("rft.warmup_ratio must be in [0, 1)")


def rft_sft_config(cfg: RFTConfig, n_examples: int, base: SFTConfig) -> SFTConfig:
    """The `SFTConfig` that runs RFT on `n_examples`: epochs -> steps, constant LR after warm-up."""
    steps = max(1, math.ceil(cfg.epochs * n_examples / cfg.batch_size))
    if cfg.max_steps:
        steps = min(steps, cfg.max_steps)
    return SFTConfig(steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, min_lr_ratio=1.0,
                     warmup_steps=int(cfg.warmup_ratio * steps), weight_decay=base.weight_decay, beta1=base.beta1,
                     beta2=base.beta2, grad_clip=base.grad_clip, max_len=cfg.max_len, log_every=base.log_every,
                     save_every=0, device=base.device, dtype=base.dtype)
