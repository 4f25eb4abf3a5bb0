"""Optional LoRA (peft) on the policy or the value backbone, and merged HF-format export.

peft is imported only when LoRA is switched on, so the learners run with torch + transformers
alone. OREO trains its 7B critic with LoRA rank 64, alpha 64 on all linear layers
(algorithms.md 2.4); those are the defaults here.

`merged_state_dict` computes `W + scale * B @ A` for every LoRA layer *without* touching the
training model (no merge/unmerge rounding, no model copy), so a checkpoint written mid-training is
a plain HF directory that `from_pretrained` and vLLM load unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

__all__ = ["LoraOptions", "apply_lora", "is_peft_model", "merged_state_dict", "save_merged"]


@dataclass
class LoraOptions:
    """LoRA on one model (the `policy_lora` / `value_lora` block of a learner config)."""
    enabled: bool = False
    """Train low-rank adapters instead of all weights."""
    rank: int = 64
    """Adapter rank r."""
    alpha: int = 64
    """Adapter scale numerator (scale = alpha / r)."""
    dropout: float = 0.0
    """Dropout on the adapter input."""
    target_modules: str = "all-linear"
    """Comma-separated module names, or "all-linear"."""

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha < 1:
            raise ValueError("lora.rank and lora.alpha must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("lora.dropout must be in [0, 1)")


def is_peft_model(model: nn.Module) -> bool:
    """True for a peft-wrapped model (checked without importing peft)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def apply_lora(model: nn.Module, opts: LoraOptions) -> nn.Module:
    """Wrap `model` with fresh LoRA adapters (base weights frozen); returns it unchanged if disabled."""
    if not opts.enabled:
        return model
    from peft import LoraConfig, get_peft_model
    targets = opts.target_modules if opts.target_modules == "all-linear" else \
        [t.strip() for t in opts.target_modules.split(",") if t.strip()]
    cfg = LoraConfig(r=opts.rank, lora_alpha=opts.alpha, lora_dropout=opts.dropout, target_modules=targets,
                     bias="none")
    return get_peft_model(model, cfg)


def merged_state_dict(model: nn.Module) -> dict:
    """The state dict of `model` with LoRA deltas folded in and peft's names removed.

    For a model without adapters this is just `model.state_dict()`.
    """
    if not is_peft_model(model):
        return model.state_dict()
    from peft.tuners.lora import LoraLayer
    base = model.get_base_model()
    deltas = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer) and not module.merged:
            delta = sum(module.get_delta_weight(a) for a in module.active_adapters if a in module.lora_A)
            deltas[f"{name}.base_layer.weight"] = delta
    out = {}
    for key, value in base.state_dict().items():
        if ".lora_" in key:
            continue
        if key in deltas:
            value = value + deltas[key].to(value.dtype)
        out[key.replace(".base_layer.", ".")] = value.detach()
    return out


def save_merged(model: nn.Module, path: str | os.PathLike) -> Path:
    """`save_pretrained` of `model` (or of its merged base when it carries LoRA adapters)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if is_peft_model(model):
        model.get_base_model().save_pretrained(str(path), state_dict=merged_state_dict(model))
    else:
        model.save_pretrained(str(path))
    return path
