"""Loading HF-format checkpoints and building a `Generator` for them.

Checkpoints are Hugging Face directories (config.json, model.safetensors, tokenizer files).
`load_policy` resolves the device and dtype; `build_generator` picks the backend named in the
`GeneratorConfig` (hf by default; vllm and openai import their packages only when chosen).
"""
from __future__ import annotations

import os
from pathlib import Path

from reasoner.generation import Backend, Generator, GeneratorConfig

__all__ = ["resolve_device", "resolve_dtype", "load_policy", "load_tokenizer", "build_generator",
           "CheckpointError"]


class CheckpointError(ValueError):
    """A model path is missing or is not an HF checkpoint directory."""


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; other values pass through."""
    if device != "auto":
        return device
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    """'auto' -> bfloat16 on CUDA, float32 elsewhere."""
    import torch
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r} (use auto, float32, bfloat16, float16)") from None


def _check_checkpoint(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"model path {p} does not exist")
    if not (p / "config.json").exists():
        raise CheckpointError(f"model path {p} is not an HF checkpoint (no config.json)")
    return p


def load_tokenizer(path: str | os.PathLike):
    """The checkpoint's tokenizer, with left padding and a pad token."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(_check_checkpoint(path)))
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy(path: str | os.PathLike, device: str = "auto", dtype: str = "auto"):
    """Load (model, tokenizer) from an HF checkpoint directory, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM
    p = _check_checkpoint(path)
    device = resolve_device(device)
    model = AutoModelForCausalLM.from_pretrained(str(p), dtype=resolve_dtype(dtype, device))
    return model.to(device).eval(), load_tokenizer(p)


def build_generator(cfg: GeneratorConfig, model_path: str | os.PathLike, *, api_key: str | None = None) -> Generator:
    """The `Generator` for `model_path` with the backend named in `cfg` (`api_key`: openai backend)."""
    if cfg.backend == Backend.HF:
        from reasoner.hf_backend import HFGenerator
        model, tok = load_policy(model_path, cfg.device, cfg.dtype)
        return HFGenerator(model, tok, cfg)
    if cfg.backend == Backend.VLLM:
        from reasoner.vllm_backend import VLLMGenerator
        return VLLMGenerator(str(_check_checkpoint(model_path)), cfg)
    if cfg.backend == Backend.OPENAI:
        from reasoner.openai_backend import OpenAIGenerator
        return OpenAIGenerator(str(model_path), cfg, api_key=api_key)
    raise ValueError(f"unknown generator backend {cfg.backend!r}")
