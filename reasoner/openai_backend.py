"""The OpenAI-compatible HTTP `Generator` backend: a policy, annotator or judge served elsewhere.

Talks to `/v1/completions` of an OpenAI-compatible server through the `openai` SDK (its retries with
backoff on connection errors, 408/409/429 and 5xx; its timeouts) and maps the answers onto
the `Generator` contract (`reasoner.generation`), as `reasoner.vllm_backend` does for an
in-process engine:

- `generate`: one request per prompt, sent concurrently (`max_concurrency`), with `n`,
  `temperature`, `top_p`, `max_tokens`, `stop`, `logprobs=1` and `seed + i * n` for prompt i (the
  offline vLLM backend's seeds, so both give the same samples from the same engine); `top_k > 0`
  is sent as vLLM's `top_k` extension. Greedy with `n > 1` asks for one sample and repeats it.
- Token ids: the completions API returns token *strings*; the vLLM extension
  `return_tokens_as_token_ids` turns them into "token_id:<id>", which this backend requires.
  Finish reasons: "length" -> LENGTH; "stop" with vLLM's `stop_reason` a string -> STOP, else EOS.
  Log-probabilities are raw-model ones when the server runs with vLLM's default
  `--logprobs-mode raw_logprobs`.
- `logprobs(prompts, continuations)`: tokenises prompt (with special tokens) and continuation
  (without) through the server's `/tokenize` (vLLM), then scores prompt + continuation ids with
  `echo=True, max_tokens=1, logprobs=1` and reads the echoed prompt log-probabilities. A server
  without `/tokenize` or echo scoring raises `UnsupportedServerError` with the reason.

So a vLLM server (`python -m vllm.entrypoints.openai.api_server ...`, or `vllm serve` with the
official package) supports the whole contract; other OpenAI-compatible servers at least need
`return_tokens_as_token_ids` and `stop_reason`. The server URL comes from `GeneratorConfig.base_url`
(e.g. http://127.0.0.1:8000/v1); the API key is passed in (`api_key`): entry points in `launch/`
read it from the environment variable named by `GeneratorConfig.api_key_env`; this module reads
no environment. Weights are the server's business: there is no `load_weights` here.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from reasoner.generation import (Completion, GenerationStats, GeneratorConfig, SamplingParams,
                                 ScoredContinuation)
from reasoner.vllm_backend import map_finish

__all__ = ["OpenAIGenerator", "ServerError", "UnsupportedServerError"]

_TOKEN_ID = "token_id:"


class ServerError(RuntimeError):
    """The server answered with an error that is not about the request's content."""


class UnsupportedServerError(RuntimeError):
    """The server lacks an extension the contract needs (token ids, `/tokenize`, echo scoring)."""


class OpenAIGenerator:
    """`Generator` over an OpenAI-compatible completions server (see module docstring)."""

    def __init__(self, model: str, cfg: GeneratorConfig | None = None, *, max_concurrency: int = 16,
                 timeout_s: float = 600.0, max_retries: int = 2, api_key: str | None = None):
        """`api_key`: the server's key (None or "" = none; a placeholder is sent, which servers
        without a key ignore); `max_retries`: SDK retries with exponential backoff per request."""
        import openai
        self.cfg = cfg or GeneratorConfig()
        if not self.cfg.base_url:
            raise ValueError("the openai backend needs generator.base_url, e.g. http://127.0.0.1:8000/v1")
        self.model = model
        self.base_url = self.cfg.base_url.rstrip("/")
        # vLLM serves /tokenize next to /v1
        self.root_url = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        self.max_concurrency = max_concurrency
        # an explicit key always: the SDK would otherwise read OPENAI_API_KEY itself
        self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "EMPTY", timeout=timeout_s,
                                    max_retries=max_retries)
        self.stats = GenerationStats()

    # ------------------------------------------------------------------ public API
    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        """Sample `params.n` completions per prompt; returns [B][n] in prompt order."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not one string")
        t0 = time.perf_counter()
        greedy = params.temperature == 0.0
        bodies = [self._body(p, params, i) for i, p in enumerate(prompts)]
        answers = self._map(self._complete, bodies)
        out: list[list[Completion]] = []
        for ans in answers:
            row = [self._completion(c) for c in sorted(ans["choices"], key=lambda c: c["index"])]
            out.append(row * params.n if greedy else row)
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.prompt_tokens += sum(a.get("usage", {}).get("prompt_tokens", 0) for a in answers)
        self.stats.generated_tokens += sum(c.num_tokens for row in out for c in row)
        self.stats.seconds += time.perf_counter() - t0
        return out

    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[ScoredContinuation]:
        """Teacher-forced log-probs of each continuation's tokens after its prompt (echo scoring)."""
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not one string")
        t0 = time.perf_counter()
        p_ids = self._map(lambda p: self.tokenize(p, add_special_tokens=True), list(prompts))
        c_ids = self._map(lambda c: self.tokenize(c, add_special_tokens=False) if c else [], list(continuations))
        todo = [i for i, c in enumerate(c_ids) if c]
        bodies = [dict(model=self.model, prompt=p_ids[i] + c_ids[i], max_tokens=1, temperature=0.0, echo=True,
                       logprobs=1, return_tokens_as_token_ids=True) for i in todo]
        answers = self._map(self._complete, bodies)
        results = [ScoredContinuation((), ()) for _ in c_ids]
        for i, ans in zip(todo, answers):
            p, c = p_ids[i], c_ids[i]
            lp = (ans["choices"][0].get("logprobs") or {}).get("token_logprobs")
            if not lp or len(lp) < len(p) + len(c):
                raise UnsupportedServerError(f"{self.base_url} does not echo prompt log-probabilities "
                                          "(needs echo=True with logprobs, as vLLM's server has)")
            results[i] = ScoredContinuation(tuple(c), tuple(float(x) for x in lp[len(p):len(p) + len(c)]))
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.prompt_tokens += sum(len(p) + len(c) for p, c in zip(p_ids, c_ids))
        self.stats.seconds += time.perf_counter() - t0
        return results

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        """Token ids of `text` from the server's `/tokenize` (vLLM)."""
        try:
            ans = self._post(f"{self.root_url}/tokenize",
                             dict(model=self.model, prompt=text, add_special_tokens=add_special_tokens))
        except ServerError as e:
            raise UnsupportedServerError(f"{self.root_url}/tokenize failed ({e}); scoring needs a vLLM server") from e
        return list(ans["tokens"])

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ internals
    def _map(self, fn, items: list) -> list:
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def _complete(self, body: dict[str, Any]) -> dict:
        """One `/completions` request (vLLM extensions in `extra_body`), as a plain dict."""
        std = {k: body[k] for k in ("model", "prompt", "n", "temperature", "top_p", "max_tokens", "logprobs",
                                    "stop", "seed", "echo") if k in body}
        extra = {k: v for k, v in body.items() if k not in std}
        return self._call(f"{self.base_url}/completions",
                          lambda: self.client.completions.create(**std, extra_body=extra).model_dump())

    def _post(self, url: str, body: dict[str, Any]) -> dict:
        """A POST to a non-OpenAI route of the server (vLLM's `/tokenize`), with the SDK's retries."""
        return self._call(url, lambda: self.client.post(url, body=body, cast_to=object))

    @staticmethod
    def _call(url: str, fn) -> dict:
        import openai
        try:
            return fn()
        except openai.BadRequestError as e:   # the request itself is wrong (too long, bad parameter)
            raise ValueError(f"{url} rejected the request: {_error_message(e)}") from None
        except openai.APIStatusError as e:
            raise ServerError(f"{url} answered {e.status_code}: {_error_message(e)}") from None
        except openai.APIConnectionError as e:
            raise ServerError(f"{url} unreachable: {e}") from None

    def _body(self, prompt: str, params: SamplingParams, i: int) -> dict[str, Any]:
        greedy = params.temperature == 0.0
        body: dict[str, Any] = dict(model=self.model, prompt=prompt, n=1 if greedy else params.n,
                                    temperature=params.temperature, top_p=params.top_p,
                                    max_tokens=params.max_tokens, logprobs=1, return_tokens_as_token_ids=True)
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed + i * params.n
        if params.top_k > 0:
            body["top_k"] = params.top_k
        return body

    @staticmethod
    def _completion(choice: dict) -> Completion:
        lp = choice.get("logprobs") or {}
        tokens = lp.get("tokens") or []
        if any(not t.startswith(_TOKEN_ID) for t in tokens):
            raise UnsupportedServerError("the server returned token strings, not ids: it must support "
                                      "return_tokens_as_token_ids (vLLM's OpenAI server does)")
        reason, hit = map_finish(choice.get("finish_reason"), choice.get("stop_reason"))
        return Completion(choice["text"], tuple(int(t[len(_TOKEN_ID):]) for t in tokens),
                          tuple(float(x) for x in lp.get("token_logprobs") or []), reason, hit)


def _error_message(e) -> str:
    """The server's error message from an `openai.APIStatusError`."""
    body = e.body
    if isinstance(body, dict):
        err = body.get("error", body)
        return str(err.get("message", err)) if isinstance(err, dict) else str(err)
    return str(e.message)[:500]
