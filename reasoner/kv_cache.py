"""Prefix KV caching for the HF backend: reuse the keys/values of prompts seen in earlier calls.

Step-level search calls the generator again and again with prompts that extend earlier prompts
by one step (MCTS: the leaf's prefix = its parent's prefix + one step; beam search: beam + step).
Without reuse every call re-encodes the whole question and solution so far; in batched MCTS on
the tiny arithmetic model that prefill was ~40% of generation time. vLLM does this with its
automatic prefix caching; this module is the HF backend's small equivalent:

- `PrefixKVCache` stores, per encoded prompt (a tuple of token ids), the per-layer keys and values
  of that prompt, unpadded, and evicts least-recently-used entries beyond `max_tokens` tokens.
- `longest_prefix(ids)` finds the longest stored prompt that is a prefix of `ids` (exact token
  ids, so tokenisation differences can never mix states).
- `build_past` assembles a batch `DynamicCache` from per-row cached prefixes, left-padded so all
  rows end at the same column, with the attention mask and the positions of the new tokens.

Keys carry their rotary position already (positions start at 0 at each row's first real token),
so a cached prefix is valid wherever its row is placed, as long as padding is masked.
Measured on batched MCTS over 64 arithmetic problems (tiny model, 1 CPU thread): 3.3 s with the
cache against 4.8 s without, same tokens generated.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple, Sequence

import torch

__all__ = ["PrefixKVCache", "PastBatch", "build_past"]


class PrefixKVCache:
    """LRU store of prompt keys/values: ids tuple -> per-layer (K, V), each [kv_heads, L, head_dim]."""

    def __init__(self, max_tokens: int, max_lookback: int = 256):
        self.max_tokens = max_tokens
        self.max_lookback = max_lookback
        self._store: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self.tokens = 0
        self.hits = 0          # prompt tokens served from the cache
        self.queries = 0       # prompt tokens asked for

    def __len__(self) -> int:
        return len(self._store)

    def put(self, ids: Sequence[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Store the keys/values of prompt `ids` (each tensor [kv_heads, len(ids), head_dim])."""
        key = tuple(ids)
        if self.max_tokens <= 0 or len(key) > self.max_tokens:
            return
        if key in self._store:
            self._store.move_to_end(key)
            return
        self._store[key] = layers
        self.tokens += len(key)
        while self.tokens > self.max_tokens:
            old, _ = self._store.popitem(last=False)
            self.tokens -= len(old)

    def longest_prefix(self, ids: Sequence[int]) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """(length, layers) of the longest stored proper prefix of `ids` (0, None if none)."""
        self.queries += len(ids)
        ids = tuple(ids)
        for n in range(len(ids) - 1, max(0, len(ids) - 1 - self.max_lookback), -1):
            layers = self._store.get(ids[:n])
            if layers is not None:
                self._store.move_to_end(ids[:n])
                self.hits += n
                return n, layers
        return 0, None

    def clear(self) -> None:
        self._store.clear()
        self.tokens = 0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


class PastBatch(NamedTuple):
    """A batch ready for one forward pass over the uncached suffixes.

    Attributes:
        past: `DynamicCache` of the cached prefixes ([R, kv_heads, P, head_dim] per layer), or None.
        input_ids: [R, S] suffix tokens, left-padded.
        attention_mask: [R, P + S] 1 on real cached and suffix tokens.
        position_ids: [R, S] absolute positions of the suffix tokens.
        used: [R] cached tokens used per row.
    """
    past: object
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    used: list[int]


def build_past(prompts: list[list[int]], cached: list[tuple[int, list | None]], pad_id: int,
               device: torch.device) -> PastBatch:
    """Assemble one forward pass that encodes every prompt, reusing cached prefixes.

    All rows must feed the same number S of new tokens, so S = the longest uncached suffix and
    a row with a shorter suffix re-encodes a few of its cached tokens (its used prefix shrinks).
    """
    from transformers import DynamicCache

    suffix = [len(p) - c for p, (c, _) in zip(prompts, cached)]
    S = max(suffix)
    used = [max(0, len(p) - S) if layers is not None else 0 for p, (c, layers) in zip(prompts, cached)]
    P = max(used)
    R = len(prompts)
    input_ids = torch.full((R, S), pad_id, dtype=torch.long)
    mask = torch.zeros((R, P + S), dtype=torch.long)
    positions = torch.zeros((R, S), dtype=torch.long)
    for r, (p, u) in enumerate(zip(prompts, used)):
        new = p[u:]
        input_ids[r, S - len(new):] = torch.tensor(new)
        mask[r, P - u:P] = 1
        mask[r, P + S - len(new):] = 1
        positions[r, S - len(new):] = torch.arange(u, len(p))
    past = None
    if P > 0:
        first = next(layers for _, layers in cached if layers is not None)
        past = DynamicCache()
        for li, (k0, v0) in enumerate(first):
            keys = k0.new_zeros((R, k0.shape[0], P, k0.shape[2]))
            values = v0.new_zeros((R, v0.shape[0], P, v0.shape[2]))
            for r, ((_, layers), u) in enumerate(zip(cached, used)):
                if u:
                    keys[r, :, P - u:] = layers[li][0][:, :u]
                    values[r, :, P - u:] = layers[li][1][:, :u]
            past.update(keys.to(device), values.to(device), li)
    return PastBatch(past, input_ids.to(device), mask.to(device), positions.to(device), used)

