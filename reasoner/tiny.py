"""Tiny Hugging Face causal LMs built from config, for the embedded default and for tests.

The embedded default policy is the "S" model of embedded-default-calibration.md: 2 layers,
hidden 128, 4 heads, FFN 512 and tied embeddings (about 0.54M parameters with a ~160-token
word-level vocabulary), which trains at several thousand tokens/s on one CPU core.

Architecture: Llama by default. A Qwen2 config is available, but transformers 5 maps the `qwen2`
model type to `Qwen2Tokenizer`, which replaces a checkpoint's own pre-tokenizer with Qwen's
byte-level one; `AutoTokenizer` (and so vLLM) would then mis-tokenise our word-level tokenizer.
With `llama` the saved `tokenizer.json` is loaded as written. (Calibration used Qwen2; the two
differ only in Qwen2's q/k/v biases.) Checkpoints are plain HF directories (`save_pretrained`), so
`AutoModelForCausalLM`, `AutoTokenizer` and vLLM load them unchanged.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Arch", "TinyModelConfig", "build_tiny_model"]


class Arch(str, enum.Enum):
    QWEN2 = "qwen2"
    LLAMA = "llama"


@dataclass
class TinyModelConfig:
    """Architecture of a from-scratch policy (the `tiny_model` block of a recipe)."""
    arch: Arch = Arch.LLAMA
    """HF architecture: llama (default) or qwen2 (needs a tokenizer Qwen2Tokenizer accepts)."""
    hidden_size: int = 128
    """Model width."""
    num_layers: int = 2
    """Transformer blocks."""
    num_heads: int = 4
    """Attention heads (head_dim = hidden_size / num_heads)."""
    num_kv_heads: int = 4
    """Key/value heads (grouped-query attention when < num_heads)."""
    intermediate_size: int = 512
    """MLP width."""
    max_position_embeddings: int = 512
    """Longest sequence the model supports."""
    tie_word_embeddings: bool = True
    """Share input and output embeddings."""

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError("tiny_model.hidden_size must be divisible by num_heads")
        if self.num_heads % self.num_kv_heads:
            raise ValueError("tiny_model.num_heads must be divisible by num_kv_heads")


def build_tiny_model(cfg: TinyModelConfig, tokenizer, seed: int = 0):
    """A randomly initialised causal LM sized by `cfg` for `tokenizer`'s vocabulary."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings, head_dim=cfg.hidden_size // cfg.num_heads,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    config = Qwen2Config(**common) if cfg.arch == Arch.QWEN2 else LlamaConfig(**common)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
