"""The serving engine behind the inference API: validated requests in, interleaved model calls out.

The server owns one policy `Generator` (and optionally one value function). Requests arrive on
the event loop; `ServeEngine.make_request` validates them against the caps (so a bad request
never joins a batch), `ServeEngine.submit` queues one with an asyncio future and returns when
it is done. A background task collects the requests that arrive within `batch_wait_ms` (or
until `max_batch_size` choices wait), groups them by method and budget, and starts each group
on a worker thread at once (up to `max_concurrent_groups`), then goes back to collecting: a
running search never stops new requests from starting (continuous batching).

Every model call of every group goes through one `launch.serve_scheduler.ModelScheduler`: one
model thread runs the calls, greedy / sample calls before search calls, merging pending calls
with equal sampling settings into one backend call. So a greedy request that arrives during a
64-simulation MCTS search waits for the search's model call in flight, not for the whole search,
and the backend (HF models are not thread-safe) is only ever used from that one thread.

Inside a group (`launch.serve_methods.run_batch`) all greedy requests with the same sampling
settings share one `Generator.generate` call, all best-of-N / beam / MCTS requests with the same
budget share one batched search call (`search.value_guided`), so K concurrent users cost about
one user's model calls (the lock-step batching of AlphaMath / rStar-Math, peers.md 8.2). A
failing group is re-run request by request, so one bad request never fails the others.

Methods (the `search.method` request field):
- greedy: temperature 0, one completion.
- sample: plain sampling at the request's temperature (OpenAI's default behaviour).
- best_of_n: `samples` full samples; picked by the learned value when one is loaded (mode
  `best`; `weighted` = value-weighted vote), else by majority vote over final answers
  (`envs.grading`; maj@N, the first sample when no answer can be extracted).
- beam: OREO's value-guided step beam search (needs the value model; 400 otherwise).
- mcts: step-level MCTS (MCTS-DPO) with the learned value, else LLM self-evaluation; never
  reference-guided (test time has no reference).

Seeds: a request without `seed` gets a fresh seed per batched call; with `seed` it joins only
requests with the same seed, and its samples are reproducible when it runs with the same batch
mates (rows of one call share the sampling RNG). `logprobs` are not returned.

Token budgets: for greedy / sample / best_of_n `max_tokens` bounds each sampled response; for
beam / mcts a response is at most `max_steps` steps of at most `max_tokens` tokens each, so
the context check is `prompt + max_steps * max_tokens <= context_limit`.
"""
from __future__ import annotations

import asyncio
import enum
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

from launch.serve_scheduler import INTERACTIVE, SEARCH, ModelScheduler, ScheduledValue
from reasoner.generation import Generator
from reasoner.steps import StepFormat
from reasoner.templates import PromptConfig
from search.evaluators import ValueFn
from search.value_guided import BestOfNMode

__all__ = ["Method", "ServeConfig", "SearchOptions", "MethodSpec", "ServeRequest", "ServeChoice",
           "ServeResult", "RequestError", "EngineStats", "ServeEngine"]


class Method(str, enum.Enum):
    """Decoding / search method of one request."""
    GREEDY = "greedy"
    SAMPLE = "sample"
    BEST_OF_N = "best_of_n"
    BEAM = "beam"
    MCTS = "mcts"


SEARCH_METHODS = (Method.BEAM, Method.MCTS)


@dataclass
class ServeConfig:
    """Inference server settings: served name, per-request caps and defaults, batching."""
    model_name: str = "reasoner"
    """Model id the API serves (`GET /v1/models`; requests must name it)."""
    default_method: Method = Method.GREEDY
    """Method of a request that names none."""
    default_max_tokens: int = 128
    """max_tokens of a request that gives none."""
    max_tokens: int = 1024
    """Cap on a request's max_tokens (per response, or per step for beam / mcts)."""
    max_n: int = 8
    """Cap on `n` (choices per prompt)."""
    max_prompts: int = 32
    """Cap on prompts in one /v1/completions request."""
    max_samples: int = 64
    """Cap on best_of_n samples."""
    default_samples: int = 8
    """best_of_n samples of a request that gives none."""
    max_beam_width: int = 8
    """Cap on the beam width."""
    default_beam_width: int = 3
    """Beam width of a request that gives none (OREO: 3)."""
    max_simulations: int = 64
    """Cap on MCTS simulations per decision."""
    default_simulations: int = 8
    """MCTS simulations per decision of a request that gives none."""
    max_steps: int = 32
    """Cap on steps of a beam / mcts response."""
    default_max_steps: int = 12
    """Steps of a beam / mcts response that gives none."""
    default_step_tokens: int = 64
    """Tokens per step for beam / mcts when the request gives no max_tokens."""
    max_token_budget: int = 65536
    """Cap on `token_budget` (generated tokens per choice, search extras included)."""
    max_batch_size: int = 64
    """Choices (requests x n) per batch, at most; more wait for the next batch."""
    batch_wait_ms: float = 5.0
    """How long the first request of a batch waits for company."""
    max_pending: int = 4096
    """Queued requests beyond which new ones get 429."""
    max_concurrent_groups: int = 16
    """Request groups (one method + budget each) running at once; their model calls interleave."""
    api_key_env: str = "REASONER_API_KEY"
    """Environment variable holding the API key ("" unset = no key required)."""

    def __post_init__(self) -> None:
        self.default_method = Method(self.default_method)
        ints = ("default_max_tokens", "max_tokens", "max_n", "max_prompts", "max_samples", "default_samples",
                "max_beam_width", "default_beam_width", "max_simulations", "default_simulations", "max_steps",
                "default_max_steps", "default_step_tokens", "max_token_budget", "max_batch_size", "max_pending",
                "max_concurrent_groups")
        for name in ints:
            if getattr(self, name) < 1:
                raise ValueError(f"serve.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ValueError("serve.batch_wait_ms must be >= 0")


class RequestError(Exception):
    """A request the API refuses, in OpenAI's error shape (status, message, type, param, code)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class SearchOptions:
    """The per-request method and budget fields, as sent (None = server default)."""
    method: str | None = None
    samples: int | None = None
    beam_width: int | None = None
    simulations: int | None = None
    max_steps: int | None = None
    token_budget: int | None = None
    mode: str | None = None
    return_trace: bool = False


@dataclass(frozen=True)
class MethodSpec:
    """Resolved method + budget; requests with equal specs share one model / search call."""
    method: Method
    max_tokens: int                  # per response (greedy/sample/best_of_n) or per step (beam/mcts)
    temperature: float
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    samples: int = 1
    mode: BestOfNMode | None = None
    beam_width: int = 1
    simulations: int = 1
    max_steps: int = 1
    token_budget: int = 0
    seed: int | None = None


@dataclass(frozen=True)
class ServeRequest:
    """One validated prompt with `n` choices to produce."""
    id: str
    prompt: str
    question: str                    # what self-evaluation sees as the question
    prompt_tokens: int
    n: int
    spec: MethodSpec
    return_trace: bool = False


@dataclass(frozen=True)
class ServeChoice:
    text: str
    finish_reason: str               # "stop" | "length"
    generated_tokens: int            # every token generated for this choice, search extras included
    trace: dict[str, Any] | None = None


@dataclass(frozen=True)
class ServeResult:
    request_id: str
    choices: list[ServeChoice]
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(c.generated_tokens for c in self.choices)


@dataclass
class EngineStats:
    """Running totals (reported by GET /health)."""
    batches: int = 0
    requests: int = 0
    choices: int = 0
    failed_requests: int = 0
    largest_batch: int = 0
    busy_seconds: float = 0.0            # summed over groups (they overlap)


@dataclass
class _Pending:
    request: ServeRequest
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class ServeEngine:
    """Validates requests and runs their groups concurrently over one model thread (module docstring).

    Args:
        generator: the policy `Generator` (used only from the scheduler's model thread).
        tokenizer: an HF tokenizer for counting prompt tokens and rendering chat messages, used on
            the event loop; pass a separate instance from the generator's (thread safety).
        cfg: caps, defaults and batching settings.
        value_fn: learned value for best_of_n / beam / mcts (None = no value model).
        prompt: plain template for chat requests when the tokenizer has no chat template.
        step_format: what a step is for beam / mcts.
        context_limit: longest prompt + response in tokens (the generator's max model length).
    """

    def __init__(self, generator: Generator, tokenizer, cfg: ServeConfig, *, value_fn: ValueFn | None = None,
                 prompt: PromptConfig | None = None, step_format: StepFormat | None = None,
                 context_limit: int = 1024):
        self.backend = generator
        self.generator = ModelScheduler(generator, max_rows=max(cfg.max_batch_size, 256))
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.value_fn = None if value_fn is None else ScheduledValue(value_fn, self.generator)
        self.prompt = prompt or PromptConfig()
        self.step_format = step_format or StepFormat()
        self.context_limit = context_limit
        self.stats = EngineStats()
        self._seed_counter = 0
        self._seed_lock = threading.Lock()
        self._self_eval_ok: bool | None = None
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ prompts
    def count_tokens(self, text: str) -> int:
        """Prompt tokens as the generator counts them (with the tokenizer's special tokens)."""
        return len(self.tokenizer(text)["input_ids"])

    def render_chat(self, messages: Sequence[dict[str, str]]) -> tuple[str, str]:
        """(prompt, question) for chat messages [{role, content}].

        With a chat template the tokenizer renders all messages (plus the generation prompt);
        otherwise the last user message fills the plain template ("Q: {question}\\nA:\\n").
        """
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise RequestError(400, "messages must contain at least one user message", param="messages")
        question = users[-1]
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
            return prompt, question
        return self.prompt.plain_format.replace("{question}", question), question

    # ------------------------------------------------------------------ validation
    def make_request(self, prompt: str, question: str | None = None, *, n: int = 1, max_tokens: int | None = None,
                     temperature: float | None = None, top_p: float | None = None,
                     stop: Sequence[str] = (), seed: int | None = None,
                     search: SearchOptions | None = None) -> ServeRequest:
        """Validate one prompt's settings against the caps; raises `RequestError` (4xx) if refused."""
        cfg, opts = self.cfg, search or SearchOptions()
        method = self._method(opts.method)
        _check_range("n", n, 1, cfg.max_n)
        if max_tokens is not None:
            _check_range("max_tokens", max_tokens, 1, cfg.max_tokens)
        if temperature is not None and not 0.0 <= temperature <= 10.0:
            raise RequestError(400, f"temperature must be in [0, 10], got {temperature}", param="temperature")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise RequestError(400, f"top_p must be in (0, 1], got {top_p}", param="top_p")
        if any(not isinstance(s, str) or not s for s in stop) or len(stop) > 4:
            raise RequestError(400, "stop must be at most 4 non-empty strings", param="stop")
        if not prompt:
            raise RequestError(400, "prompt must not be empty", param="prompt")
        spec = self._spec(method, opts, max_tokens, temperature, top_p, tuple(stop), seed)
        prompt_tokens = self.count_tokens(prompt)
        longest = spec.max_tokens * (spec.max_steps if method in SEARCH_METHODS else 1)
        if prompt_tokens + longest > self.context_limit:
            what = f"{spec.max_steps} steps x {spec.max_tokens} tokens" if method in SEARCH_METHODS \
                else f"{spec.max_tokens} completion tokens"
            raise RequestError(400, f"this model's maximum context length is {self.context_limit} tokens; the "
                                    f"request needs {prompt_tokens} prompt tokens + {what} = "
                                    f"{prompt_tokens + longest}; shorten the prompt or lower max_tokens"
                                    + (" / max_steps" if method in SEARCH_METHODS else ""),
                               param="prompt", code="context_length_exceeded")
        return ServeRequest(id=uuid.uuid4().hex[:24], prompt=prompt, question=question if question is not None else prompt,
                            prompt_tokens=prompt_tokens, n=n, spec=spec, return_trace=bool(opts.return_trace))

    def _method(self, name: str | None) -> Method:
        if name is None:
            return self.cfg.default_method
        try:
            method = Method(name)
        except ValueError:
            raise RequestError(400, f"unknown method {name!r}; use one of {[m.value for m in Method]}",
                               param="search.method", code="unknown_method") from None
        if method == Method.BEAM and self.value_fn is None:
            raise RequestError(400, "beam search needs a value model; start the server with --value",
                               param="search.method", code="value_model_required")
        if method == Method.MCTS and self.value_fn is None and not self.self_eval_available():
            raise RequestError(400, "mcts without a value model uses self-evaluation, which this policy's "
                                    "tokenizer cannot express; start the server with --value",
                               param="search.method", code="value_model_required")
        return method

    def _spec(self, method: Method, opts: SearchOptions, max_tokens, temperature, top_p, stop, seed) -> MethodSpec:
        cfg = self.cfg
        if opts.token_budget is not None:
            _check_range("search.token_budget", opts.token_budget, 0, cfg.max_token_budget)
        budget = opts.token_budget or 0
        if method in (Method.GREEDY, Method.SAMPLE):
            temp = 0.0 if method == Method.GREEDY else (1.0 if temperature is None else temperature)
            return MethodSpec(method, max_tokens or cfg.default_max_tokens, temp, top_p or 1.0, stop, seed=seed)
        temp = 1.0 if temperature is None else temperature
        if method == Method.BEST_OF_N:
            samples = _pick("search.samples", opts.samples, cfg.default_samples, cfg.max_samples)
            return MethodSpec(method, max_tokens or cfg.default_max_tokens, temp, samples=samples,
                              mode=self._mode(opts.mode), token_budget=budget, seed=seed)
        steps = _pick("search.max_steps", opts.max_steps, cfg.default_max_steps, cfg.max_steps)
        step_tokens = max_tokens or cfg.default_step_tokens
        if method == Method.BEAM:
            width = _pick("search.beam_width", opts.beam_width, cfg.default_beam_width, cfg.max_beam_width)
            return MethodSpec(method, step_tokens, temp, beam_width=width, max_steps=steps, token_budget=budget,
                              seed=seed)
        sims = _pick("search.simulations", opts.simulations, cfg.default_simulations, cfg.max_simulations)
        return MethodSpec(method, step_tokens, temp, simulations=sims, max_steps=steps, token_budget=budget,
                          seed=seed)

    def _mode(self, name: str | None) -> BestOfNMode:
        if name is None:
            return BestOfNMode.BEST if self.value_fn is not None else BestOfNMode.MAJORITY
        try:
            mode = BestOfNMode(name)
        except ValueError:
            raise RequestError(400, f"unknown best_of_n mode {name!r}; use best, weighted or majority",
                               param="search.mode") from None
        if mode != BestOfNMode.MAJORITY and self.value_fn is None:
            raise RequestError(400, f"best_of_n mode {name!r} needs a value model; use majority or start the "
                                    "server with --value", param="search.mode", code="value_model_required")
        return mode

    def self_eval_available(self) -> bool:
        """Whether self-evaluation's two options tokenize differently (and without unknown tokens)."""
        if self._self_eval_ok is None:
            from search.evaluators import SelfEvalConfig
            se = SelfEvalConfig()
            a = self.tokenizer(se.correct, add_special_tokens=False)["input_ids"]
            b = self.tokenizer(se.incorrect, add_special_tokens=False)["input_ids"]
            unk = getattr(self.tokenizer, "unk_token_id", None)
            self._self_eval_ok = bool(a) and bool(b) and a != b and unk not in a and unk not in b
        return self._self_eval_ok

    def next_seed(self) -> int:
        """A fresh seed for a batched call whose requests gave none (thread-safe)."""
        with self._seed_lock:
            self._seed_counter += 1
            return self._seed_counter

    # ------------------------------------------------------------------ batching
    @property
    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, request: ServeRequest) -> ServeResult:
        """Queue a validated request; returns its result when its batch is done (raises RequestError)."""
        self._ensure_started()
        if self._queue.qsize() >= self.cfg.max_pending:
            raise RequestError(429, "server busy: too many queued requests, retry later",
                               type="rate_limit_error", code="server_busy")
        item = _Pending(request, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(item)
        return await item.future

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._queue = self._queue or asyncio.Queue()
            self._executor = self._executor or ThreadPoolExecutor(max_workers=self.cfg.max_concurrent_groups,
                                                                  thread_name_prefix="serve-group")
            self._task = asyncio.get_running_loop().create_task(self._batch_loop())

    async def close(self) -> None:
        """Stop the batch loop and the worker threads; queued and running requests get 503."""
        for task in list(self._running):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RequestError(503, "server shutting down", type="server_error"))
        self._queue = None   # a later submit (maybe on another event loop) starts afresh
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _batch_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self.cfg.batch_wait_ms > 0 and self._queue.qsize() + 1 < self.cfg.max_batch_size:
                await asyncio.sleep(self.cfg.batch_wait_ms / 1000.0)
            rows = batch[0].request.n
            while rows < self.cfg.max_batch_size and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                rows += item.request.n
            batch = [b for b in batch if not b.future.done()]   # cancelled: the client went away
            if not batch:
                continue
            self.stats.batches += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            groups: dict[MethodSpec, list[_Pending]] = {}
            for b in batch:
                groups.setdefault(b.request.spec, []).append(b)
            for items in groups.values():   # start every group now; do not wait for them
                task = asyncio.get_running_loop().create_task(self._run_group(items))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _run_group(self, items: list[_Pending]) -> None:
        """One group on a worker thread; resolves its futures when done."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch, [b.request for b in items])
        except asyncio.CancelledError:
            for b in items:
                if not b.future.done():
                    b.future.set_exception(RequestError(503, "server shutting down", type="server_error"))
            raise
        except Exception as e:  # run_batch catches per request; this is a last resort
            results = [RequestError(500, f"internal error: {e!r}", type="server_error")] * len(items)
        self._account(items, results, time.perf_counter() - t0)
        for b, res in zip(items, results):
            if b.future.done():
                continue
            if isinstance(res, Exception):
                b.future.set_exception(res)
            else:
                b.future.set_result(res)

    def _account(self, group: list[_Pending], results: list, seconds: float) -> None:
        s = self.stats
        s.requests += len(group)
        s.choices += sum(b.request.n for b in group)
        s.failed_requests += sum(isinstance(r, Exception) for r in results)
        s.busy_seconds += seconds

    def run_batch(self, requests: list[ServeRequest]) -> list[ServeResult | RequestError]:
        """Run validated requests together (synchronous; a worker thread calls it). One result each.

        The calling thread's model calls get interactive priority when every request is greedy or
        sample, search priority otherwise (`launch.serve_scheduler`)."""
        from launch.serve_methods import run_batch
        level = INTERACTIVE if all(r.spec.method in (Method.GREEDY, Method.SAMPLE) for r in requests) else SEARCH
        with self.generator.priority(level):
            return run_batch(self, requests)


def _check_range(param: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        over = isinstance(value, int) and not isinstance(value, bool) and value > high
        raise RequestError(400, f"{param} must be an integer in [{low}, {high}] (server cap), got {value!r}",
                           param=param, code="budget_exceeded" if over else "invalid_value")


def _pick(param: str, value: int | None, default: int, cap: int) -> int:
    if value is None:
        return min(default, cap)
    _check_range(param, value, 1, cap)
    return value

