"""The Hugging Face transformers `Generator` backend (CPU and CUDA).

A hand-written decode loop over `model(...)` with a KV cache, rather than `model.generate`,
because search needs things `generate` does not give together: raw-model log-probabilities of
the sampled tokens whatever the sampling temperature, stop strings with vLLM's cut semantics,
one prefill per distinct prompt shared by its `n` samples (the MCTS shape: many continuations of
one prefix), and dropping finished rows from the batch.

Per call:
1. Prompts are tokenised (the tokenizer's special tokens, as vLLM does) and split into chunks of
   at most `max_batch_size` rows (prompts x n).
2. Each chunk is left-padded and prefilled once; the cache is repeated `n` times.
3. Decode: sample from `logits / T` (top-k, top-p; argmax at T=0), record
   `log_softmax(logits)[token]` of the raw model, stop on EOS, a stop string, or `max_tokens`.
   When fewer than half the rows are still running, the cache is compacted to those rows.

Stop strings: after each token, the last few tokens of a row are decoded and searched; a match
ends the row, `text` is cut before the first occurrence and the tokens are kept (module
`reasoner.generation` states the conventions).
"""
from __future__ import annotations

import time
from typing import Sequence

import torch

from reasoner.generation import (Completion, FinishReason, GenerationStats, GeneratorConfig,
                                 SamplingParams, ScoredContinuation)

__all__ = ["HFGenerator", "sample_tokens"]

_STOP_WINDOW = 8  # tokens decoded to look for a stop string ending at the newest token


def sample_tokens(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator | None) -> torch.Tensor:
    """Pick one token per row from `logits` [R, V] under `params` (temperature, top-k, top-p)."""
    if params.temperature == 0.0:
        return logits.argmax(dim=-1)
    scores = logits.float() / params.temperature
    if params.top_k > 0 and params.top_k < scores.shape[-1]:
        kth = torch.topk(scores, params.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probs = torch.softmax(sorted_scores, dim=-1)
        # drop a token when the mass strictly before it already reaches top_p
        drop = (probs.cumsum(dim=-1) - probs) >= params.top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


class HFGenerator:
    """`Generator` over an HF causal LM already loaded on its device (see module docstring)."""

    def __init__(self, model, tokenizer, cfg: GeneratorConfig | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.cfg = cfg or GeneratorConfig()
        self.stats = GenerationStats()
        self.device = next(model.parameters()).device
        self._gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos_ids = sorted({i for i in [*eos, tokenizer.eos_token_id] if i is not None})
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.max_len = min(self.cfg.max_model_len,
                           getattr(model.config, "max_position_embeddings", self.cfg.max_model_len))

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        """Sample `params.n` completions per prompt; returns [B][n] in prompt order."""
        t0 = time.perf_counter()
        ids = self._encode_prompts(prompts)
        gen = self._gen if params.seed is None else torch.Generator(device=self.device).manual_seed(params.seed)
        out: list[list[Completion]] = []
        per_chunk = max(1, self.cfg.max_batch_size // params.n)
        for start in range(0, len(ids), per_chunk):
            out.extend(self._generate_chunk(ids[start:start + per_chunk], params, gen))
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.prompt_tokens += sum(len(x) for x in ids)
        self.stats.generated_tokens += sum(c.num_tokens for row in out for c in row)
        self.stats.seconds += time.perf_counter() - t0
        return out

    @torch.inference_mode()
    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[ScoredContinuation]:
        """Teacher-forced log-probs of each continuation's tokens after its prompt."""
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        t0 = time.perf_counter()
        p_ids = self._encode_prompts(prompts)
        c_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
        results: list[ScoredContinuation] = []
        step = self.cfg.max_batch_size
        for s in range(0, len(p_ids), step):
            results.extend(self._score_chunk(p_ids[s:s + step], c_ids[s:s + step]))
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.prompt_tokens += sum(len(p) + len(c) for p, c in zip(p_ids, c_ids))
        self.stats.seconds += time.perf_counter() - t0
        return results

    def load_weights(self, path: str) -> None:
        """Reload weights from an HF checkpoint directory in place (after a learner step)."""
        from transformers import AutoModelForCausalLM
        fresh = AutoModelForCausalLM.from_pretrained(path, dtype=next(self.model.parameters()).dtype)
        self.update_weights(fresh.state_dict())

    def update_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy a state dict into the served model (same architecture)."""
        missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied embeddings
        if missing or unexpected:
            raise ValueError(f"weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")

    # ------------------------------------------------------------------ internals
    def _encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not one string")
        ids = [self.tokenizer(p)["input_ids"] for p in prompts]
        for p in ids:
            if not p:
                raise ValueError("empty prompt")
            if len(p) >= self.max_len:
                raise ValueError(f"prompt of {len(p)} tokens does not fit max_model_len={self.max_len}")
        return ids

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def _generate_chunk(self, prompt_ids: list[list[int]], params: SamplingParams,
                        gen: torch.Generator) -> list[list[Completion]]:
        n = params.n
        input_ids, mask = self._left_pad(prompt_ids)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        logits = out.logits[:, -1, :]                                   # [b, V]
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)                 # [R, V], R = b * n
            mask = mask.repeat_interleave(n, dim=0)
        rows = logits.shape[0]
        next_pos = mask.sum(-1)                                         # [R]
        budget = min(params.max_tokens, self.max_len - max(len(p) for p in prompt_ids))
        tokens: list[list[int]] = [[] for _ in range(rows)]
        lps: list[list[float]] = [[] for _ in range(rows)]
        finish: list[tuple[FinishReason, str | None] | None] = [None] * rows
        live = torch.arange(rows, device=self.device)                   # row ids still in the batch
        eos = torch.tensor(self.eos_ids, device=self.device)
        for step in range(budget):
            raw = torch.log_softmax(logits.float(), dim=-1)
            nxt = sample_tokens(logits, params, gen)                    # [r]
            nxt_lp = raw.gather(-1, nxt[:, None]).squeeze(-1)
            is_eos = torch.isin(nxt, eos)
            for j, (row, tok, lp, e) in enumerate(zip(live.tolist(), nxt.tolist(), nxt_lp.tolist(), is_eos.tolist())):
                tokens[row].append(tok)
                lps[row].append(lp)
                if e:
                    finish[row] = (FinishReason.EOS, None)
                elif params.stop:
                    hit = self._stop_hit(tokens[row], params.stop)
                    if hit is not None:
                        finish[row] = (FinishReason.STOP, hit)
            keep = [j for j, row in enumerate(live.tolist()) if finish[row] is None]
            if not keep or step == budget - 1:
                break
            keep_t = torch.tensor(keep, device=self.device)
            if len(keep) < len(live):
                nxt, mask, next_pos, live = nxt[keep_t], mask[keep_t], next_pos[keep_t], live[keep_t]
                cache.batch_select_indices(keep_t)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            out = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                             past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1, :]
            next_pos = next_pos + 1
        return self._assemble(tokens, lps, finish, n, params.stop)

    def _stop_hit(self, toks: list[int], stop: tuple[str, ...]) -> str | None:
        """A stop string that ends inside the newest token, else None."""
        window = self.tokenizer.decode(toks[-_STOP_WINDOW:], skip_special_tokens=True)
        before = self.tokenizer.decode(toks[-_STOP_WINDOW:-1], skip_special_tokens=True) if len(toks) > 1 else ""
        best = None
        for s in stop:
            i = window.find(s)
            if i >= 0 and s not in before and (best is None or i < best[0]):
                best = (i, s)
        return None if best is None else best[1]

    def _assemble(self, tokens, lps, finish, n, stop) -> list[list[Completion]]:
        done: list[Completion] = []
        for toks, lp, fin in zip(tokens, lps, finish):
            reason, hit = fin if fin is not None else (FinishReason.LENGTH, None)
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            if reason == FinishReason.STOP:
                text = text[:text.find(hit)]
            elif reason == FinishReason.LENGTH and stop:
                # a stop string may complete exactly at the budget's last token
                for s in stop:
                    if s in text:
                        text, reason, hit = text[:text.find(s)], FinishReason.STOP, s
                        break
            done.append(Completion(text, tuple(toks), tuple(lp), reason, hit))
        return [done[i:i + n] for i in range(0, len(done), n)]

    def _score_chunk(self, p_ids: list[list[int]], c_ids: list[list[int]]) -> list[ScoredContinuation]:
        rows = [p + c for p, c in zip(p_ids, c_ids)]
        for r in rows:
            if len(r) > self.max_len:
                raise ValueError(f"prompt + continuation of {len(r)} tokens exceeds max_model_len={self.max_len}")
        input_ids, mask = self._left_pad(rows)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits
        logp = torch.log_softmax(logits.float(), dim=-1)                # [b, W, V]
        width = input_ids.shape[1]
        out = []
        for i, (p, c) in enumerate(zip(p_ids, c_ids)):
            if not c:
                out.append(ScoredContinuation((), ()))
                continue
            # token at column t is predicted by the logits at column t-1
            cols = torch.arange(width - len(c), width, device=self.device)
            lp = logp[i, cols - 1].gather(-1, input_ids[i, cols][:, None]).squeeze(-1)
            out.append(ScoredContinuation(tuple(c), tuple(lp.tolist())))
        return out
