"""The serving engine's batching: concurrent requests share model calls; one bad request fails alone."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from launch.serve_engine import Method, RequestError, SearchOptions, ServeConfig, ServeEngine

PROMPTS = [f"Q: Mia has {k} coins. She buys 4 more. How many coins does she have?\nA:\n" for k in (3, 5, 7, 9, 11)]


@pytest.fixture(scope="module")
def policy(trained_policy_dir):
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy, load_tokenizer
    model, tok = load_policy(trained_policy_dir, "cpu")
    return HFGenerator(model, tok), load_tokenizer(trained_policy_dir)


def _engine(policy, **cfg) -> ServeEngine:
    gen, tok = policy
    return ServeEngine(gen, tok, ServeConfig(**cfg), context_limit=gen.max_len)


def _run_all(engine: ServeEngine, requests) -> list:
    async def go():
        try:
            return await asyncio.gather(*(engine.submit(r) for r in requests), return_exceptions=True)
        finally:
            await engine.close()
    return asyncio.run(go())


def test_concurrent_greedy_requests_share_one_generate_call(policy):
    from reasoner.generation import SamplingParams
    gen, _ = policy
    expected = [row[0].text for row in gen.generate(PROMPTS, SamplingParams(max_tokens=32, temperature=0))]
    engine = _engine(policy, batch_wait_ms=20)
    calls = gen.stats.calls
    results = _run_all(engine, [engine.make_request(p, max_tokens=32) for p in PROMPTS])
    assert gen.stats.calls - calls == 1
    assert (engine.stats.batches, engine.stats.requests, engine.stats.largest_batch) == (1, 5, 5)
    assert [r.choices[0].text for r in results] == expected


def test_groups_by_settings_and_respects_batch_size(policy):
    gen, _ = policy
    engine = _engine(policy, batch_wait_ms=20, max_batch_size=4)
    calls = gen.stats.calls
    reqs = [engine.make_request(p, max_tokens=16 if i % 2 else 24) for i, p in enumerate(PROMPTS)]
    results = _run_all(engine, reqs)
    assert all(len(r.choices) == 1 for r in results)
    # batch 1: 4 requests in two max_tokens groups (2 calls); batch 2: the fifth request, whose
    # call runs alone or merges into batch 1's 24-token call if that has not started yet
    assert engine.stats.batches == 2 and engine.stats.largest_batch == 4
    assert gen.stats.calls - calls == 3 - engine.generator.merged_calls


def test_best_of_n_requests_share_one_search(policy):
    gen, _ = policy
    engine = _engine(policy, batch_wait_ms=20)
    calls = gen.stats.calls
    opts = SearchOptions(method="best_of_n", samples=3, return_trace=True)
    results = _run_all(engine, [engine.make_request(p, n=2, max_tokens=24, seed=0, search=opts) for p in PROMPTS[:3]])
    assert gen.stats.calls - calls == 1            # 3 requests x 2 choices x 3 samples: one sampling call
    for r in results:
        assert len(r.choices) == 2
        for c in r.choices:
            assert c.trace["method"] == "best_of_n/majority" and c.trace["steps"][0]["visits"] == 3
            assert c.generated_tokens == c.trace["generated_tokens"] > 0


def test_bad_request_fails_alone(policy):
    """A request that slips past validation and breaks the model call errors; its batch mates don't."""
    engine = _engine(policy, batch_wait_ms=20)
    good = [engine.make_request(p, max_tokens=16) for p in PROMPTS[:3]]
    too_long = dataclasses.replace(good[0], prompt="Q: " + "apples " * 600, id="bad")
    results = _run_all(engine, [good[0], too_long, good[1], good[2]])
    assert isinstance(results[1], RequestError) and results[1].code == "context_length_exceeded"
    assert results[1].status == 400
    from reasoner.generation import SamplingParams
    gen, _ = policy
    expected = [row[0].text for row in gen.generate(PROMPTS[:3], SamplingParams(max_tokens=16, temperature=0))]
    assert [results[i].choices[0].text for i in (0, 2, 3)] == expected
    assert engine.stats.failed_requests == 1


def test_validation_caps_and_defaults(policy):
    engine = _engine(policy, max_n=2, max_beam_width=2, max_simulations=4)
    with pytest.raises(RequestError) as e:
        engine.make_request(PROMPTS[0], n=3)
    assert (e.value.status, e.value.param, e.value.code) == (400, "n", "budget_exceeded")
    with pytest.raises(RequestError) as e:   # no value model: beam refused before it can be queued
        engine.make_request(PROMPTS[0], search=SearchOptions(method="beam"))
    assert e.value.code == "value_model_required"
    req = engine.make_request(PROMPTS[0], search=SearchOptions(method="best_of_n"))
    assert req.spec.method == Method.BEST_OF_N and req.spec.samples == 8 and req.spec.mode.value == "majority"
    assert req.spec.max_tokens == 128 and req.spec.temperature == 1.0
    greedy = engine.make_request(PROMPTS[0], temperature=0.7)
    assert greedy.spec.temperature == 0.0            # greedy ignores the temperature
