"""The Hugging Face transformers `Generator` backend (CPU and CUDA).

A hand-written decode loop over `model(...)` with a KV cache, rather than `model.generate`,
because search needs things `generate` does not give together: raw-model log-probabilities of
the sampled tokens whatever the sampling temperature, stop strings with vLLM's cut semantics,
one prefill per distinct prompt shared by its `n` samples (the MCTS shape: many continuations of
one prefix), and dropping finished rows from the batch.

Per call:
1. Prompts are tokenised (the tokenizer's special tokens, as vLLM does) and split into chunks of
   at most `max_batch_size` rows (prompts x n).
2. Each chunk is left-padded and prefilled once, reusing the keys/values of earlier prompts that
   are token-exact prefixes of the new ones (`reasoner.kv_cache`; search extends its
   prompts one step per call); the cache is then repeated `n` times.
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
                                 SamplingParams, ScoredContinuation, encode_prompts)
from reasoner.kv_cache import PrefixKVCache, build_past

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
        self._stop_masks: dict[tuple[str, ...], torch.Tensor] = {}
        self.prefix_cache = PrefixKVCache(self.cfg.prefix_cache_tokens) if self.cfg.prefix_cache_tokens > 0 else None
        self._pieces: list[str] | None = None
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
        if self.prefix_cache is not None:
            self.prefix_cache.clear()  # cached keys/values belong to the old weights
        missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied embeddings
        if missing or unexpected:
            raise ValueError(f"weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")

    # ------------------------------------------------------------------ internals
    def _encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts, self.max_len)

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
        out, mask = self._prefill(prompt_ids)
        cache = out.past_key_values
        logits = out.logits[:, -1, :]                                   # [b, V]
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)                 # [R, V], R = b * n
            mask = mask.repeat_interleave(n, dim=0)
        rows, width = logits.shape[0], mask.shape[1]
        budget = min(params.max_tokens, self.max_len - max(len(p) for p in prompt_ids))
        mask = torch.cat([mask, mask.new_ones((rows, budget))], dim=-1)  # [R, W + budget], sliced per step
        next_pos = mask[:, :width].sum(-1)                              # [R]
        toks = torch.zeros((rows, budget), dtype=torch.long)            # [R, budget] sampled ids (CPU)
        lps = torch.zeros((rows, budget))                               # [R, budget] raw logprobs
        length = [0] * rows
        finish: list[tuple[FinishReason, str | None] | None] = [None] * rows
        batch_rows = list(range(rows))                                  # batch position -> row id
        running = torch.ones(rows, dtype=torch.bool)                    # [r] batch positions not finished
        eos = torch.tensor(self.eos_ids, device=self.device)
        candidates = self._stop_candidates(params.stop) if params.stop else None
        for step in range(budget):
            nxt = sample_tokens(logits, params, gen)                    # [r]
            nxt_lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, nxt[:, None]).squeeze(-1)
            nxt_cpu, lp_cpu = nxt.cpu(), nxt_lp.cpu()
            at = torch.tensor(batch_rows)
            live = running.nonzero().squeeze(-1)                        # batch positions still generating
            toks[at[live], step], lps[at[live], step] = nxt_cpu[live], lp_cpu[live]
            ended = torch.isin(nxt_cpu, eos.cpu()) & running
            for j in ended.nonzero().squeeze(-1).tolist():
                finish[batch_rows[j]] = (FinishReason.EOS, None)
            for j in live.tolist():
                length[batch_rows[j]] = step + 1
            if candidates is not None:
                check = running & ~ended & candidates[nxt_cpu]
                for j in check.nonzero().squeeze(-1).tolist():
                    r = batch_rows[j]
                    hit = self._stop_hit(toks[r, max(0, step + 1 - _STOP_WINDOW):step + 1].tolist(), params.stop)
                    if hit is not None:
                        finish[r] = (FinishReason.STOP, hit)
                        ended[j] = True
            running &= ~ended
            n_live = int(running.sum())
            if n_live == 0 or step == budget - 1:
                break
            if n_live <= len(batch_rows) // 2:                          # drop finished rows from the batch
                keep = running.nonzero().squeeze(-1)
                cache.batch_select_indices(keep.to(self.device))
                nxt, mask, next_pos = nxt[keep.to(self.device)], mask[keep.to(self.device)], next_pos[keep.to(self.device)]
                batch_rows = [batch_rows[j] for j in keep.tolist()]
                running = torch.ones(len(batch_rows), dtype=torch.bool)
            out = self.model(input_ids=nxt[:, None], attention_mask=mask[:, :width + step + 1],
                             position_ids=next_pos[:, None], past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1, :]
            next_pos = next_pos + 1
        tokens = [toks[r, :length[r]].tolist() for r in range(rows)]
        logprobs = [lps[r, :length[r]].tolist() for r in range(rows)]
        return self._assemble(tokens, logprobs, finish, n, params.stop)

    def _prefill(self, prompt_ids: list[list[int]]):
        """Encode the prompts (reusing cached prefixes); returns (model output, attention mask [b, W])."""
        if self.prefix_cache is None:
            input_ids, mask = self._left_pad(prompt_ids)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            return self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                              use_cache=True, logits_to_keep=1), mask
        batch = build_past(prompt_ids, [self.prefix_cache.longest_prefix(p) for p in prompt_ids],
                           self.pad_id, self.device)
        out = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         position_ids=batch.position_ids, past_key_values=batch.past, use_cache=True,
                         logits_to_keep=1)
        width = batch.attention_mask.shape[1]
        for r, p in enumerate(prompt_ids):  # every row's real tokens are its last len(p) columns
            self.prefix_cache.put(p, [(layer.keys[r, :, width - len(p):].clone(),
                                       layer.values[r, :, width - len(p):].clone())
                                      for layer in out.past_key_values.layers])
        return out, batch.attention_mask

    def _stop_candidates(self, stop: tuple[str, ...]) -> torch.Tensor:
        """[V] bool: tokens after which a stop string may have completed (all True if unsure)."""
        key = tuple(stop)
        if key not in self._stop_masks:
            vocab = self.model.get_output_embeddings().weight.shape[0]
            pieces = self._token_pieces(vocab)
            if pieces is None:
                mask = torch.ones(vocab, dtype=torch.bool)
            else:
                last = {s[-1] for s in stop}
                mask = torch.tensor([any(c in piece for c in last) for piece in pieces], dtype=torch.bool)
            self._stop_masks[key] = mask
        return self._stop_masks[key]

    def _token_pieces(self, vocab: int) -> list[str] | None:
        """Each token's own text if decoding concatenates token texts (checked on samples), else None.

        Then a stop string can only end inside a token whose text holds its last character.
        """
        if self._pieces is None:
            tok = self.tokenizer
            pieces = [tok.decode([i], skip_special_tokens=True) for i in range(min(vocab, len(tok)))]
            pieces += [""] * (vocab - len(pieces))
            rng = torch.Generator().manual_seed(0)
            pairs = torch.randint(0, len(tok), (512, 3), generator=rng).tolist()
            ok = all(tok.decode(list(p), skip_special_tokens=True) == "".join(pieces[i] for i in p) for p in pairs)
            self._pieces = pieces if ok else []
        return self._pieces or None

    def _stop_hit(self, toks: list[int], stop: tuple[str, ...]) -> str | None:
        """A stop string that ends inside the newest token of `toks` (a short tail), else None."""
        if self._pieces:
            window = "".join(self._pieces[t] for t in toks)
            before = window[:len(window) - len(self._pieces[toks[-1]])]
        else:
            window = self.tokenizer.decode(toks, skip_special_tokens=True)
            before = self.tokenizer.decode(toks[:-1], skip_special_tokens=True) if len(toks) > 1 else ""
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
