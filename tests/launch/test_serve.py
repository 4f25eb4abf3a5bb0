"""The inference API over a real uvicorn on 127.0.0.1, with the committed tiny policy.

The official `openai` client talks to the server unchanged for every method; answers are
checked against the policy and value model called directly (greedy text, the values in a
trace), every bad input gets its 4xx in OpenAI's error shape, the API key is enforced, and a
concurrent burst completes without errors in fewer batches than requests.
"""
from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from launch.serve import ServeOptions, build_engine
from launch.serve_app import MAX_BODY_BYTES, build_app

QUESTION = "Ravi has 8 beads. He multiplies his beads by 4. Then he buys 12 more. How many beads does he have?"
PROMPT = f"Q: {QUESTION}\nA:\n"
SMALL = {"serve": {"max_beam_width": 4, "max_simulations": 8, "max_steps": 16, "max_n": 4, "max_samples": 8}}


@pytest.fixture(scope="module")
def value_dir(trained_policy_dir, tmp_path_factory):
    """A critic on the trained policy's body with a seeded random head (values differ per state)."""
    import torch
    from reasoner.loading import load_tokenizer
    from reasoner.value_model import ValueModel
    model = ValueModel.from_policy(str(trained_policy_dir), tokenizer=load_tokenizer(trained_policy_dir))
    with torch.no_grad():
        model.value_head.weight.copy_(torch.randn(model.value_head.weight.shape,
                                                  generator=torch.Generator().manual_seed(0)) * 0.05)
    return model.save_pretrained(tmp_path_factory.mktemp("value"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _running(app):
    """uvicorn serving `app` on a free loopback port in a thread; shut down on exit."""
    import uvicorn
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="error",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive()


@pytest.fixture(scope="module")
def server(trained_policy_dir, value_dir):
    """(base URL, engine) of a server with the policy and the value model, no API key."""
    engine, cfg = build_engine(ServeOptions(policy=str(trained_policy_dir), value=str(value_dir), device="cpu", **SMALL))
    with _running(build_app(engine, cfg, api_key="")) as url:
        yield url, engine


@pytest.fixture(scope="module")
def keyed_server(trained_policy_dir):
    """A server with no value model that requires the API key 'sekret'."""
    engine, cfg = build_engine(ServeOptions(policy=str(trained_policy_dir), device="cpu", **SMALL))
    with _running(build_app(engine, cfg, api_key="sekret")) as url:
        yield url


@pytest.fixture(scope="module")
def direct(trained_policy_dir, value_dir):
    """The policy and the value model called without the server (expected values)."""
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy
    from reasoner.value_model import ValueModel
    model, tok = load_policy(trained_policy_dir, "cpu")
    return HFGenerator(model, tok), ValueModel.from_pretrained(value_dir)


def _client(url: str, key: str = "unused"):
    from openai import OpenAI
    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


# ---------------------------------------------------------------------------------- methods
def test_openai_client_greedy_matches_the_policy(server, direct):
    from reasoner.generation import SamplingParams
    url, _ = server
    gen, _ = direct
    expected = gen.generate([PROMPT], SamplingParams(max_tokens=48, temperature=0))[0][0]
    client = _client(url)
    assert [m.id for m in client.models.list().data] == ["reasoner"]
    resp = client.completions.create(model="reasoner", prompt=PROMPT, max_tokens=48)
    assert resp.choices[0].text == expected.text
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens == expected.num_tokens
    assert resp.usage.prompt_tokens == len(gen.tokenizer(PROMPT)["input_ids"])
    # chat with no chat template: the last user message fills "Q: {question}\nA:\n"
    chat = client.chat.completions.create(model="reasoner", max_tokens=48, messages=[
        {"role": "system", "content": "ignored"}, {"role": "user", "content": QUESTION}])
    assert chat.choices[0].message.content == expected.text
    assert chat.choices[0].message.role == "assistant"


@pytest.mark.parametrize("search", [
    {"method": "sample", "seed": 3},
    {"method": "best_of_n", "samples": 4},
    {"method": "beam", "beam_width": 2, "max_steps": 8},
    {"method": "mcts", "simulations": 2, "max_steps": 8},
])
def test_openai_client_search_methods_with_trace(server, direct, search):
    url, _ = server
    _, value_model = direct
    search = dict(search, return_trace=True)
    seed = search.pop("seed", 0)   # a seed makes the sampled searches independent of test order
    resp = _client(url).completions.create(model="reasoner", prompt=PROMPT, max_tokens=24, seed=seed,
                                           extra_body={"search": search})
    choice = resp.choices[0]
    trace = choice.model_extra["search_trace"]
    assert choice.text and trace["method"].startswith(search["method"])
    assert trace["generated_tokens"] == resp.usage.completion_tokens > 0
    if search["method"] in ("beam", "mcts"):   # the committed steps spell the answer; values are the critic's
        assert "".join(s["text"] for s in trace["steps"]) == choice.text
        prefixes = [PROMPT + "".join(s["text"] for s in trace["steps"][:i + 1]) for i in range(len(trace["steps"]))]
        if search["method"] == "beam":
            assert [s["value"] for s in trace["steps"]] == pytest.approx(value_model.values(prefixes), abs=1e-5)
        else:
            assert all(s["visits"] >= 1 for s in trace["steps"])
            alts = [(a["text"], s["text"]) for s in trace["steps"] for a in s["alternatives"]]
            assert alts and all(alt != chosen for alt, chosen in alts)
        assert resp.usage.completion_tokens > len(trace["steps"])   # search samples more than it keeps
    if search["method"] == "best_of_n":   # plain best-of-N by the critic's value
        step = trace["steps"][0]
        assert step["visits"] == 4 and len(step["alternatives"]) == 3
        assert step["value"] == pytest.approx(value_model.values([PROMPT + choice.text])[0], abs=1e-5)
        assert step["value"] >= max(a["value"] for a in step["alternatives"])


def test_no_trace_unless_asked_and_top_level_fields(server):
    url, _ = server
    body = {"model": "reasoner", "prompt": PROMPT, "max_tokens": 16, "method": "best_of_n", "samples": 2, "n": 2}
    r = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 200
    data = r.json()
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert all("search_trace" not in c for c in data["choices"])


def test_stream_matches_the_plain_answer(server):
    url, _ = server
    client = _client(url)
    msgs = [{"role": "user", "content": QUESTION}]
    plain = client.chat.completions.create(model="reasoner", messages=msgs, max_tokens=48)
    chunks = list(client.chat.completions.create(model="reasoner", messages=msgs, max_tokens=48, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].text for c in _client(url).completions.create(
        model="reasoner", prompt=PROMPT, max_tokens=48, stream=True))
    assert text == plain.choices[0].message.content


# ---------------------------------------------------------------------------------- bad input
BAD = [
    ("malformed json", b'{"model": "reasoner", "prompt": ', 400, "invalid_json", None),
    ("not an object", b'[1, 2]', 400, "invalid_request", None),
    ("missing prompt", {"model": "reasoner"}, 400, "invalid_request", "prompt"),
    ("unknown method", {"method": "dfs"}, 400, "unknown_method", "search.method"),
    ("unknown search field", {"search": {"method": "beam", "width": 3}}, 400, "invalid_request", "search.width"),
    ("beam width over cap", {"search": {"method": "beam", "beam_width": 5}}, 400, "budget_exceeded", "search.beam_width"),
    ("simulations over cap", {"search": {"method": "mcts", "simulations": 9}}, 400, "budget_exceeded",
     "search.simulations"),
    ("samples over cap", {"method": "best_of_n", "samples": 1000}, 400, "budget_exceeded", "search.samples"),
    ("max_tokens over cap", {"max_tokens": 10**6}, 400, "budget_exceeded", "max_tokens"),
    ("zero max_tokens", {"max_tokens": 0}, 400, "invalid_value", "max_tokens"),
    ("negative n", {"n": -3}, 400, "invalid_value", "n"),
    ("huge n", {"n": 10**30}, 400, "budget_exceeded", "n"),
    ("string n", {"n": "many"}, 400, "invalid_request", "n"),
    ("prompt over context", {"prompt": "Q: " + "apples " * 600}, 400, "context_length_exceeded", "prompt"),
    ("search over context", {"method": "beam", "max_steps": 16, "max_tokens": 40}, 400, "context_length_exceeded",
     "prompt"),
    ("empty prompt", {"prompt": ""}, 400, None, "prompt"),
    ("negative temperature", {"temperature": -1}, 400, None, "temperature"),
    ("unknown model", {"model": "gpt-4"}, 404, "model_not_found", "model"),
]


@pytest.mark.parametrize("name,body,status,code,param", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_openai_error(server, name, body, status, code, param):
    url, _ = server
    if isinstance(body, dict):
        body = {"model": "reasoner", "prompt": PROMPT, **body} if name != "missing prompt" else body
        r = httpx.post(f"{url}/v1/completions", json=body, timeout=30)
    else:
        r = httpx.post(f"{url}/v1/completions", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["type"] == "invalid_request_error"
    assert (err["code"], err["param"]) == (code, param)


def test_bad_chat_input_and_server_survives(server):
    url, _ = server
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "reasoner", "messages": []}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                   json={"model": "reasoner", "messages": [{"role": "system", "content": "only a system message"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    big = httpx.post(f"{url}/v1/completions", timeout=30,
                     json={"model": "reasoner", "prompt": "apples " * (MAX_BODY_BYTES // 7 + 1)})
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    r = httpx.get(f"{url}/v1/nothing-here", timeout=30)
    assert r.status_code == 404 and "error" in r.json()
    health = httpx.get(f"{url}/health", timeout=30).json()
    assert health["status"] == "ok" and health["methods"] == ["greedy", "sample", "best_of_n", "beam", "mcts"]
    ok = httpx.post(f"{url}/v1/completions", json={"model": "reasoner", "prompt": PROMPT, "max_tokens": 8}, timeout=30)
    assert ok.status_code == 200


def test_api_key_from_environment(trained_policy_dir, monkeypatch):
    from fastapi.testclient import TestClient
    monkeypatch.setenv("SERVE_TEST_KEY", "from-env")
    engine, cfg = build_engine(ServeOptions(policy=str(trained_policy_dir), device="cpu",
                                            serve={"api_key_env": "SERVE_TEST_KEY"}))
    with TestClient(build_app(engine, cfg)) as http:
        assert http.get("/v1/models").status_code == 401
        assert http.get("/v1/models", headers={"Authorization": "Bearer from-env"}).json()["data"][0]["id"] == "reasoner"


def test_api_key_and_value_free_methods(keyed_server):
    from openai import AuthenticationError, BadRequestError
    url = keyed_server
    assert httpx.post(f"{url}/v1/completions", json={"model": "reasoner", "prompt": PROMPT}).status_code == 401
    wrong = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(AuthenticationError):
        _client(url, "wrong").completions.create(model="reasoner", prompt=PROMPT, max_tokens=4)
    client = _client(url, "sekret")
    assert client.completions.create(model="reasoner", prompt=PROMPT, max_tokens=8).choices[0].text
    assert httpx.get(f"{url}/health").status_code == 200      # health needs no key
    # no value model: beam is refused, mcts too (self-evaluation's words are outside the tiny vocabulary)
    for method in ("beam", "mcts"):
        with pytest.raises(BadRequestError) as e:
            client.completions.create(model="reasoner", prompt=PROMPT, extra_body={"method": method})
        assert e.value.body["code"] == "value_model_required"
    # best_of_n falls back to majority voting, values null
    resp = client.completions.create(model="reasoner", prompt=PROMPT, max_tokens=24,
                                     extra_body={"search": {"method": "best_of_n", "samples": 3, "return_trace": True}})
    trace = resp.choices[0].model_extra["search_trace"]
    assert trace["method"] == "best_of_n/majority" and trace["steps"][0]["value"] is None


# ---------------------------------------------------------------------------------- load
def test_concurrent_burst_is_batched_without_errors(server):
    url, engine = server
    before = engine.stats.batches
    questions = [f"Q: Tom has {k} apples. He buys 3 more. How many apples does he have?\nA:\n" for k in range(2, 26)]
    with httpx.Client(timeout=60) as http, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda p: http.post(f"{url}/v1/completions", json={
            "model": "reasoner", "prompt": p, "max_tokens": 32}), questions))
    assert [r.status_code for r in responses] == [200] * len(questions)
    assert all(r.json()["choices"][0]["text"] for r in responses)
    assert engine.stats.batches - before < len(questions)


# ---------------------------------------------------------------------------------- entry point
@pytest.mark.slow
def test_cli_serves_and_stops(trained_policy_dir, tmp_path):
    import os
    import subprocess
    import sys
    bad = subprocess.run([sys.executable, "-m", "launch.serve", "--policy", str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "is not a directory" in bad.stderr
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "launch.serve", "--policy", str(trained_policy_dir), "--device",
                             "cpu", "--host", "127.0.0.1", "--port", str(port), "--api-key", "k"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        resp = _client(url, "k").completions.create(model="reasoner", prompt=PROMPT, max_tokens=16)
        assert resp.choices[0].text and resp.usage.completion_tokens <= 16
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) is not None
