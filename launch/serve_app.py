"""The OpenAI-compatible HTTP API of the value-guided reasoner (FastAPI app factory).

Endpoints (the official `openai` Python client works against them unchanged):
- `POST /v1/completions`: the prompt is used as given (a string or a list of strings).
- `POST /v1/chat/completions`: messages are rendered with the tokenizer's chat template if it
  has one, else the last user message fills the project's plain template ("Q: {question}\\nA:\\n",
  `reasoner.templates`); system and earlier messages are then ignored.
- `GET /v1/models`, `GET /v1/models/{id}`, `GET /health` (no API key needed for /health).

Extra request fields pick the method and budget (send them with the client's `extra_body`),
either in a `search` object or at the top level:

    {"search": {"method": "beam", "beam_width": 3, "samples": 8, "simulations": 16,
                "max_steps": 20, "token_budget": 4096, "mode": "best", "return_trace": true}}

Methods: greedy (default), sample, best_of_n, beam, mcts (`launch.serve_engine` says how each is
run and what `max_tokens` means for it). With `return_trace`, every choice gets a
`search_trace` (committed steps with their values and visits, the alternatives each step was
chosen over, generated tokens, model calls, model and tree seconds). `usage.completion_tokens`
counts every generated token, the search's extra samples included. `stream: true` sends the
final answer as server-sent events (one chunk per step, then `[DONE]`): the search finishes
before the first chunk, so streaming saves no latency, it only matches clients that stream.

Errors are `{"error": {"message", "type", "param", "code"}}` with a 4xx status for bad input
(malformed JSON and schema errors 400, unknown method 400, budgets above the server's caps 400,
prompt + response over the context limit 400 `context_length_exceeded`, unknown model 404,
missing/wrong API key 401, full queue 429) and 500 for a failure inside the model call, which
fails only that request.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from launch.serve_engine import Method, RequestError, SearchOptions, ServeConfig, ServeEngine, ServeResult
from reasoner.steps import split_steps

__all__ = ["build_app", "CompletionRequest", "ChatCompletionRequest", "SearchField", "Completion",
           "ChatCompletion", "ModelList", "ErrorResponse"]

MAX_BODY_BYTES = 4 * 2**20


# ---------------------------------------------------------------------------------- request models
class SearchField(BaseModel):
    """Method and budget of a request (all optional; the server's defaults and caps apply)."""
    model_config = ConfigDict(extra="forbid")
    method: str | None = None
    samples: int | None = None
    beam_width: int | None = None
    simulations: int | None = None
    max_steps: int | None = None
    token_budget: int | None = None
    mode: str | None = None
    return_trace: bool | None = None


class _RequestBase(BaseModel):
    model_config = ConfigDict(extra="ignore")   # unknown OpenAI fields (user, logit_bias, ...) are ignored
    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    seed: int | None = None
    search: SearchField | None = None
    # the search fields are also accepted at the top level
    method: str | None = None
    samples: int | None = None
    beam_width: int | None = None
    simulations: int | None = None
    max_steps: int | None = None
    token_budget: int | None = None
    mode: str | None = None
    return_trace: bool | None = None

    def search_options(self) -> SearchOptions:
        """The `search` object, with top-level fields filling what it leaves unset."""
        inner = self.search or SearchField()
        merged = {f: getattr(inner, f) if getattr(inner, f) is not None else getattr(self, f)
                  for f in SearchField.model_fields}
        merged["return_trace"] = bool(merged["return_trace"])
        return SearchOptions(**merged)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(_RequestBase):
    prompt: str | list[str]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")


class ChatCompletionRequest(_RequestBase):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None


# ---------------------------------------------------------------------------------- response models
class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: None = None
    search_trace: dict[str, Any] | None = None


class Completion(BaseModel):
    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class AssistantMessage(BaseModel):
    role: str = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None
    search_trace: dict[str, Any] | None = None


class ChatCompletion(BaseModel):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "reasoner"


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _dump(model: BaseModel) -> dict[str, Any]:
    """JSON dict of a response; `search_trace` appears only where a trace was asked for."""
    data = model.model_dump()
    for choice in data.get("choices", []):
        if choice.get("search_trace") is None:
            choice.pop("search_trace", None)
    return data


# ---------------------------------------------------------------------------------- app factory
def build_app(engine: ServeEngine, cfg: ServeConfig, *, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving `engine`.

    Args:
        engine: the batching engine (owns the generator and value function).
        cfg: server settings (served model name, API key variable).
        api_key: required bearer key; None reads `cfg.api_key_env` from the environment
            (unset or empty = no key required).
    """
    key = api_key if api_key is not None else os.environ.get(cfg.api_key_env, "")
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.close()

    app = FastAPI(title="reasoner inference API", version="0.1.0", lifespan=lifespan,
                  description=__doc__.split("\n\n")[0])
    _add_error_handlers(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
            return _error(RequestError(413, f"request body over {MAX_BODY_BYTES} bytes", code="body_too_large"))
        return await call_next(request)

    auth = _auth_dependency(key)
    _add_info_routes(app, engine, cfg, auth, created)
    _add_completion_routes(app, engine, cfg, auth)
    return app


def _auth_dependency(key: str):
    """A FastAPI dependency that checks `Authorization: Bearer <key>` (or `x-api-key`); no-op without a key."""
    async def auth(request: Request) -> None:
        if not key:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not given or not hmac.compare_digest(given.encode(), key.encode()):
            raise RequestError(401, "missing or incorrect API key (send 'Authorization: Bearer <key>')",
                               code="invalid_api_key")
    return auth


def _check_model(cfg: ServeConfig, name: str) -> None:
    if name != cfg.model_name:
        raise RequestError(404, f"the model {name!r} does not exist; this server serves {cfg.model_name!r}",
                           param="model", code="model_not_found")


def _add_info_routes(app: FastAPI, engine: ServeEngine, cfg: ServeConfig, auth, created: int) -> None:
    @app.get("/health")
    async def health() -> dict[str, Any]:
        methods = [m.value for m in Method if _available(engine, m)]
        return {"status": "ok", "model": cfg.model_name, "value_model": engine.value_fn is not None,
                "methods": methods, "context_limit": engine.context_limit, "pending": engine.pending,
                "stats": dataclasses.asdict(engine.stats)}

    @app.get("/v1/models", response_model=ModelList, dependencies=[Depends(auth)])
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=cfg.model_name, created=created)])

    @app.get("/v1/models/{model_id}", response_model=ModelCard, dependencies=[Depends(auth)])
    async def model(model_id: str) -> ModelCard:
        _check_model(cfg, model_id)
        return ModelCard(id=cfg.model_name, created=created)


def _add_completion_routes(app: FastAPI, engine: ServeEngine, cfg: ServeConfig, auth) -> None:
    errors = {400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}}

    @app.post("/v1/completions", response_model=Completion, dependencies=[Depends(auth)], responses=errors)
    async def completions(body: CompletionRequest):
        _check_model(cfg, body.model)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not 1 <= len(prompts) <= cfg.max_prompts:
            raise RequestError(400, f"prompt must be a string or a list of 1..{cfg.max_prompts} strings",
                               param="prompt")
        opts = body.search_options()
        reqs = [engine.make_request(p, n=body.n, max_tokens=body.max_tokens, temperature=body.temperature,
                                    top_p=body.top_p, stop=body.stop_list(), seed=body.seed, search=opts)
                for p in prompts]
        results = await asyncio.gather(*(engine.submit(r) for r in reqs))
        choices = [CompletionChoice(index=body.n * i + k, text=c.text, finish_reason=c.finish_reason,
                                    search_trace=c.trace)
                   for i, res in enumerate(results) for k, c in enumerate(res.choices)]
        resp = Completion(id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=cfg.model_name,
                          choices=choices, usage=_usage(results))
        if body.stream:
            return _stream(_completion_chunks(resp, engine, _include_usage(body)))
        return JSONResponse(_dump(resp))

    @app.post("/v1/chat/completions", response_model=ChatCompletion, dependencies=[Depends(auth)], responses=errors)
    async def chat_completions(body: ChatCompletionRequest):
        _check_model(cfg, body.model)
        prompt, question = engine.render_chat([{"role": m.role, "content": m.text()} for m in body.messages])
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        req = engine.make_request(prompt, question, n=body.n, max_tokens=max_tokens, temperature=body.temperature,
                                  top_p=body.top_p, stop=body.stop_list(), seed=body.seed,
                                  search=body.search_options())
        res = await engine.submit(req)
        choices = [ChatChoice(index=k, message=AssistantMessage(content=c.text), finish_reason=c.finish_reason,
                              search_trace=c.trace) for k, c in enumerate(res.choices)]
        resp = ChatCompletion(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=cfg.model_name,
                              choices=choices, usage=_usage([res]))
        if body.stream:
            return _stream(_chat_chunks(resp, engine, _include_usage(body)))
        return JSONResponse(_dump(resp))


def _available(engine: ServeEngine, method: Method) -> bool:
    if method == Method.BEAM:
        return engine.value_fn is not None
    if method == Method.MCTS:
        return engine.value_fn is not None or engine.self_eval_available()
    return True


def _usage(results: list[ServeResult]) -> Usage:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


# ---------------------------------------------------------------------------------- streaming
def _include_usage(body: _RequestBase) -> bool:
    return bool((body.stream_options or {}).get("include_usage"))


def _stream(chunks) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"
    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _completion_chunks(resp: Completion, engine: ServeEngine, usage: bool):
    head = {"id": resp.id, "object": "text_completion", "created": resp.created, "model": resp.model}
    for c in resp.choices:
        for piece in split_steps(c.text, engine.step_format) or [""]:
            yield {**head, "choices": [{"index": c.index, "text": piece, "finish_reason": None, "logprobs": None}]}
        last = {"index": c.index, "text": "", "finish_reason": c.finish_reason, "logprobs": None}
        if c.search_trace is not None:
            last["search_trace"] = c.search_trace
        yield {**head, "choices": [last]}
    if usage:
        yield {**head, "choices": [], "usage": resp.usage.model_dump()}


def _chat_chunks(resp: ChatCompletion, engine: ServeEngine, usage: bool):
    head = {"id": resp.id, "object": "chat.completion.chunk", "created": resp.created, "model": resp.model}
    for c in resp.choices:
        yield {**head, "choices": [{"index": c.index, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}
        for piece in split_steps(c.message.content, engine.step_format):
            yield {**head, "choices": [{"index": c.index, "delta": {"content": piece}, "finish_reason": None}]}
        last = {"index": c.index, "delta": {}, "finish_reason": c.finish_reason}
        if c.search_trace is not None:
            last["search_trace"] = c.search_trace
        yield {**head, "choices": [last]}
    if usage:
        yield {**head, "choices": [], "usage": resp.usage.model_dump()}


# ---------------------------------------------------------------------------------- errors
def _error(e: RequestError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    return JSONResponse(e.body(), status_code=e.status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(_: Request, e: RequestError) -> JSONResponse:
        return _error(e)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request", "type": ""}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        if first.get("type") == "json_invalid":
            return _error(RequestError(400, f"malformed JSON body: {first.get('msg')}", code="invalid_json"))
        param = ".".join(loc) or None
        return _error(RequestError(400, f"{param or 'body'}: {first.get('msg')}", param=param,
                                   code="invalid_request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if e.status_code == 404 else None
        return _error(RequestError(e.status_code, str(e.detail), code=kind))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, e: Exception) -> JSONResponse:
        return _error(RequestError(500, f"internal error: {type(e).__name__}: {e}", type="server_error"))
