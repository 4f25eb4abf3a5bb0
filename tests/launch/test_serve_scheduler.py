"""Interleaved model calls: merging, priority, failure isolation (a canned generator), and an MCTS
request that no longer blocks a greedy one (the trained tiny policy)."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from launch.serve_scheduler import INTERACTIVE, SEARCH, ModelScheduler
from reasoner.generation import Completion, FinishReason, GenerationStats, SamplingParams


class CannedGenerator:
    """Answers prompt p with text p.upper(); each call waits until `gate` is set; logs calls."""

    def __init__(self):
        self.stats = GenerationStats()
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def generate(self, prompts, params):
        self.gate.wait(10)
        self.calls.append(list(prompts))
        if any(p == "boom" for p in prompts):
            raise ValueError("prompt 'boom' is too long")
        return [[Completion(p.upper(), (1,), (0.0,), FinishReason.EOS)] * params.n for p in prompts]

    def logprobs(self, prompts, continuations):
        raise NotImplementedError


def _in_thread(fn, *args):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", _catch(fn, *args)))
    t.start()
    return t, out


def _catch(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001
        return e


def _wait_pending(sched: ModelScheduler, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(sched._pending) < n:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_calls_merge_and_interactive_goes_first():
    gen = CannedGenerator()
    sched = ModelScheduler(gen)
    greedy, sample = SamplingParams(max_tokens=8), SamplingParams(max_tokens=8, temperature=1.0, seed=1)
    gen.gate.clear()                      # hold the model thread inside the first call
    first = _in_thread(sched.generate, ["a"], greedy)
    while not sched._pending and not gen.calls and first[0].is_alive() and len(sched._pending) == 0:
        time.sleep(0.005)
        if sched._pending == [] and gen.gate.is_set() is False:
            break
    time.sleep(0.05)                      # the first call is now on the model thread
    threads = []
    with sched.priority(SEARCH):
        threads.append(_in_thread(sched.generate, ["s1"], sample))
    _wait_pending(sched, 1)

    def interactive(prompts):
        with sched.priority(INTERACTIVE):
            return sched.generate(prompts, greedy)
    threads.append(_in_thread(interactive, ["b", "c"]))
    threads.append(_in_thread(interactive, ["d"]))
    _wait_pending(sched, 3)
    gen.gate.set()
    for t, _ in [first, *threads]:
        t.join(10)
    # the two interactive greedy calls merged into one backend call and ran before the search call
    assert gen.calls == [["a"], ["b", "c", "d"], ["s1"]]
    assert [[c.text for c in row] for row in threads[1][1]["r"]] == [["B"], ["C"]]
    assert [[c.text for c in row] for row in threads[2][1]["r"]] == [["D"]]
    assert sched.merged_calls == 1
    sched.close()


def test_a_search_call_that_waited_too_long_goes_first():
    gen = CannedGenerator()
    sched = ModelScheduler(gen, max_search_wait_s=0.02)
    params = SamplingParams(max_tokens=8, temperature=0)

    def interactive(prompts):
        with sched.priority(INTERACTIVE):
            return sched.generate(prompts, params)
    gen.gate.clear()
    first = _in_thread(interactive, ["i0"])
    time.sleep(0.05)                                   # i0 runs; then a search and a greedy call wait
    search = _in_thread(sched.generate, ["s"], SamplingParams(max_tokens=8, temperature=1.0, seed=2))
    _wait_pending(sched, 1)
    second = _in_thread(interactive, ["i1"])
    _wait_pending(sched, 2)
    time.sleep(0.05)                                   # the search call is now overdue
    gen.gate.set()
    for t, _ in (first, search, second):
        t.join(10)
    assert gen.calls == [["i0"], ["s"], ["i1"]]       # the overdue search before the newer greedy call
    sched.close()


def test_a_failing_merged_call_fails_only_its_caller():
    gen = CannedGenerator()
    sched = ModelScheduler(gen)
    params = SamplingParams(max_tokens=8)
    gen.gate.clear()
    first = _in_thread(sched.generate, ["a"], params)
    time.sleep(0.05)
    good, bad = _in_thread(sched.generate, ["x"], params), None
    _wait_pending(sched, 1)
    bad = _in_thread(sched.generate, ["boom"], params)
    _wait_pending(sched, 2)
    gen.gate.set()
    for t, _ in (first, good, bad):
        t.join(10)
    assert [[c.text for c in row] for row in good[1]["r"]] == [["X"]]
    assert isinstance(bad[1]["r"], ValueError) and "boom" in str(bad[1]["r"])
    assert gen.calls == [["a"], ["x", "boom"], ["x"], ["boom"]]   # merged, failed, each alone
    sched.close()


@pytest.fixture(scope="module")
def policy(trained_policy_dir):
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy, load_tokenizer
    model, tok = load_policy(trained_policy_dir, "cpu")
    return HFGenerator(model, tok), load_tokenizer(trained_policy_dir)


def test_greedy_request_finishes_during_a_long_mcts_request(policy):
    from launch.serve_engine import SearchOptions, ServeConfig, ServeEngine
    from reasoner.value_model import ValueModel
    from search.evaluators import LearnedValue
    gen, tok = policy
    value = LearnedValue(ValueModel.from_policy(gen.model, tokenizer=tok).eval())
    engine = ServeEngine(gen, tok, ServeConfig(batch_wait_ms=1), value_fn=value, context_limit=gen.max_len)
    prompt = "Q: Mia has 3 coins. She buys 4 more. How many coins does she have?\nA:\n"
    mcts = engine.make_request(prompt, max_tokens=16, search=SearchOptions(method="mcts", simulations=32,
                                                                           max_steps=6))
    greedy = engine.make_request(prompt, max_tokens=32)
    expected = gen.generate([prompt], SamplingParams(max_tokens=32, temperature=0))[0][0].text
    done: dict[str, float] = {}

    calls = gen.stats.calls

    async def go():
        async def timed(name, req, after_calls):
            while gen.stats.calls - calls < after_calls:   # greedy arrives once the search is under way
                await asyncio.sleep(0.005)
            res = await engine.submit(req)
            done[name] = time.perf_counter()
            return res
        try:
            return await asyncio.gather(timed("mcts", mcts, 0), timed("greedy", greedy, 2))
        finally:
            await engine.close()
    m, g = asyncio.run(go())
    assert g.choices[0].text == expected
    assert done["greedy"] < done["mcts"]                  # it did not wait for the search
    assert gen.stats.calls - calls > 3                    # the search made many model calls
    assert m.choices[0].generated_tokens > 0
