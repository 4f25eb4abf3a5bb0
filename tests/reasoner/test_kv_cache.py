"""Prefix KV reuse gives the same results as encoding from scratch, and the store behaves as an LRU."""
import pytest
import torch

from envs.arith import load_arith
from reasoner.generation import GeneratorConfig, SamplingParams
from reasoner.hf_backend import HFGenerator
from reasoner.kv_cache import PrefixKVCache
from reasoner.loading import load_policy


@pytest.fixture(scope="module")
def policy(trained_policy_dir):
    return load_policy(trained_policy_dir, "cpu")


def _gens(policy):
    model, tok = policy
    return (HFGenerator(model, tok, GeneratorConfig(prefix_cache_tokens=0)),
            HFGenerator(model, tok, GeneratorConfig(prefix_cache_tokens=10_000)))


def test_reused_prefixes_give_identical_generations_and_logprobs(policy):
    plain, cached = _gens(policy)
    probs = load_arith("test", 12)
    prompts = ["Q: " + p.question + "\nA:\n" for p in probs]
    params = SamplingParams(max_tokens=12, temperature=0, stop=("\n",))
    # round 1 fills the cache; round 2 extends every prompt by the step it generated (the MCTS shape),
    # mixed with prompts that have no cached prefix at all
    first = cached.generate(prompts, params)
    nxt = [p + row[0].text + "\n" for p, row in zip(prompts, first)]
    fresh = ["Q: " + p.question + "\nA:\n" for p in load_arith("test", 16)[12:]]
    for batch in (nxt, nxt[:3] + fresh, fresh):
        a = plain.generate(batch, params)
        b = cached.generate(batch, params)
        for ra, rb in zip(a, b):
            assert ra[0].token_ids == rb[0].token_ids and ra[0].text == rb[0].text
            assert list(rb[0].logprobs) == pytest.approx(list(ra[0].logprobs), abs=1e-4)
    assert cached.prefix_cache.hits > 0 and 0 < cached.prefix_cache.hit_rate < 1


def test_sampled_rows_match_with_the_same_seed(policy):
    plain, cached = _gens(policy)
    prompts = ["Q: " + p.question + "\nA:\n" for p in load_arith("test", 4)]
    cached.generate(prompts, SamplingParams(max_tokens=4, temperature=0))
    ext = [p + "1" for p in prompts]
    params = SamplingParams(n=3, max_tokens=8, temperature=1.0, seed=5)
    assert [[c.token_ids for c in r] for r in plain.generate(ext, params)] == \
        [[c.token_ids for c in r] for r in cached.generate(ext, params)]


def test_weight_reload_clears_the_cache(policy):
    _, cached = _gens(policy)
    cached.generate(["Q: Ben has 3 coins.\nA:\n"], SamplingParams(max_tokens=2))
    assert len(cached.prefix_cache) == 1
    cached.update_weights(cached.model.state_dict())
    assert len(cached.prefix_cache) == 0


def test_lru_store():
    store = PrefixKVCache(max_tokens=6)
    kv = [(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2))]
    store.put((1, 2, 3), kv)
    store.put((4, 5, 6), kv)
    assert store.longest_prefix((1, 2, 3, 9))[0] == 3           # touches (1, 2, 3)
    store.put((7, 8, 9), kv)                                      # evicts (4, 5, 6), the least recent
    assert store.longest_prefix((4, 5, 6, 1))[0] == 0
    assert store.longest_prefix((7, 8, 9, 1))[0] == 3
    assert store.longest_prefix((1, 2, 3))[0] == 0                # only proper prefixes
    assert store.tokens == 6
