"""The `Generator` contract: batched sampling and scoring, shared by every backend.

Search hands a generator many prompts at once (the leaves of many trees); learners and
evaluators use the same calls. Backends (`reasoner.hf_backend.HFGenerator`,
`reasoner.vllm_backend.VLLMGenerator`, `reasoner.openai_backend.OpenAIGenerator`) implement
`Generator` and nothing else, so search and evaluation code never branches on the backend.

Conventions (all backends):
- `Completion.text` excludes a matched stop string (as vLLM does); `token_ids` and
  `logprobs` include every sampled token, also the one(s) that completed a stop string or EOS.
- `logprobs[i]` is the log-probability of `token_ids[i]` under the *unmodified* model
  distribution (temperature 1, no top-p/top-k), so priors and OREO ratios do not depend on the
  sampling temperature.
- `finish_reason` is one of `FinishReason`: EOS (the model ended the sequence), STOP (a stop
  string matched; `stop_reason` says which), LENGTH (`max_tokens` reached).

This module imports no torch, so search and configs can import it cheaply.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

__all__ = [
    "Completion", "FinishReason", "GenerationStats", "Generator", "SamplingParams",
    "ScoredContinuation", "GeneratorConfig", "Backend", "encode_prompts",
]


class FinishReason(str, enum.Enum):
    """Why a completion ended."""
    EOS = "eos"
    STOP = "stop"
    LENGTH = "length"


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to sample one batch.

    Attributes:
        n: completions per prompt.
        max_tokens: new tokens per completion, at most.
        temperature: 0 means greedy (argmax); otherwise logits / temperature.
        top_p: nucleus mass kept (1.0 = off).
        top_k: keep the k most likely tokens (0 = off).
        stop: strings that end a completion; the match is cut from `text`.
        seed: per-call seed for reproducible sampling (None = the backend's running RNG).
    """
    n: int = 1
    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if isinstance(self.stop, str):  # a bare string would be split into characters
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True, slots=True)
class Completion:
    """One sampled continuation of one prompt.

    Attributes:
        text: decoded new text, without a matched stop string.
        token_ids: [L] sampled token ids, including the stop/EOS token(s).
        logprobs: [L] log p(token_ids[i] | prompt, token_ids[:i]) under the raw model.
        finish_reason: EOS, STOP or LENGTH.
        stop_reason: the stop string that matched (None unless finish_reason is STOP).
    """
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: FinishReason
    stop_reason: str | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def sum_logprob(self) -> float:
        return float(sum(self.logprobs))


@dataclass(frozen=True, slots=True)
class ScoredContinuation:
    """Log-probabilities of a given continuation (teacher forcing).

    Attributes:
        token_ids: [L] the continuation's token ids (tokenised on its own, no special tokens).
        logprobs: [L] log p(token_ids[i] | prompt, token_ids[:i]).
    """
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]


@dataclass(slots=True)
class GenerationStats:
    """Running totals a generator keeps, so search can report cost at equal budgets."""
    calls: int = 0
    prompts: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0

    def snapshot(self) -> "GenerationStats":
        return GenerationStats(self.calls, self.prompts, self.generated_tokens,
                               self.prompt_tokens, self.seconds)

    def since(self, earlier: "GenerationStats") -> "GenerationStats":
        return GenerationStats(self.calls - earlier.calls, self.prompts - earlier.prompts,
                               self.generated_tokens - earlier.generated_tokens,
                               self.prompt_tokens - earlier.prompt_tokens,
                               self.seconds - earlier.seconds)


@runtime_checkable
class Generator(Protocol):
    """Batched text generation and scoring (see the module docstring for conventions)."""

    stats: GenerationStats

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        """Sample `params.n` completions for every prompt.

        Returns:
            [B][n] completions, in prompt order.
        """
        ...

    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[ScoredContinuation]:
        """Score `continuations[i]` after `prompts[i]` by teacher forcing. Returns [B] results."""
        ...


class Backend(str, enum.Enum):
    """Which generation backend to build (see `reasoner.loading.build_generator`)."""
    HF = "hf"
    VLLM = "vllm"
    OPENAI = "openai"


@dataclass
class GeneratorConfig:
    """Generation backend settings (the `generator` block of a recipe)."""
    backend: Backend = Backend.HF
    """Which backend generates: hf (CPU/GPU, default), vllm (prefix caching), openai (remote)."""
    device: str = "auto"
    """torch device for the hf backend: auto, cpu, cuda, cuda:N."""
    dtype: str = "auto"
    """Weights dtype: auto (float32 on CPU, bfloat16 on CUDA), float32, bfloat16, float16."""
    max_batch_size: int = 256
    """Sequences per forward pass in the hf backend; larger batches are split."""
    prefix_cache_tokens: int = 65536
    """hf backend: prompt tokens whose keys/values are kept to reuse across calls (0 = off)."""
    max_model_len: int = 1024
    """Longest prompt + completion, in tokens (vLLM engine option; hf truncates prompts from the left)."""
    gpu_memory_utilization: float = 0.45
    """vLLM: share of GPU memory for weights + KV cache (leave room for a colocated learner)."""
    tensor_parallel_size: int = 1
    """vLLM: GPUs per engine."""
    enable_prefix_caching: bool = True
    """vLLM: automatic prefix caching (MCTS expands many continuations of one prefix)."""
    enforce_eager: bool = True
    """vLLM: skip CUDA-graph capture (faster start; turn off for long GPU runs)."""
    kv_cache_space_gib: int = 1
    """vLLM CPU build: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE)."""
    base_url: str = ""
    """openai backend: server URL, e.g. http://127.0.0.1:8000/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai backend: environment variable holding the API key (read by the entry points in launch/)."""
    seed: int = 0
    """Seed of the backend's sampling RNG."""

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("generator.max_batch_size must be >= 1")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError("generator.gpu_memory_utilization must be in (0, 1]")


def encode_prompts(tokenizer, prompts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids of each prompt (with the tokenizer's special tokens, as vLLM encodes them).

    Raises TypeError for a bare string and ValueError for an empty prompt or one that leaves no
    room to generate within `max_len` (the local backends' shared input checks).
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not one string")
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    for p in ids:
        if not p:
            raise ValueError("empty prompt")
        if len(p) >= max_len:
            raise ValueError(f"prompt of {len(p)} tokens does not fit max_model_len={max_len}")
    return ids
