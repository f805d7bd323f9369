"""The worker's HTTP app: health, the OpenAI-compatible endpoints and `/v1/run`, over one engine.

The model loads in a background thread once the app starts, so `/health` answers 503 while it loads.
Blocking inference runs in threads; an engine that is not thread-safe gets one request at a time (a lock
held until its thread finishes, even when the client has gone). Streams are produced by a thread into a
queue, so the event loop stays free for `/health`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .engines.base import CHAT_TASKS, EMBEDDING_TASKS, GENERATIVE_TASKS, Engine, Outcome, unsupported_task
from .errors import LoadError, WorkerError, invalid_request, unsupported_parameter
from .params import Generation, from_openai, generation, validate_object
from .wire import (
    SSE_DONE,
    Envelope,
    embeddings_response,
    messages_from,
    run_fields,
    sse,
    text_field,
    texts_field,
    usage,
)

T = TypeVar("T")
_END = object()


class StopTrimmer:
    """Cuts generated text at the first stop string, holding back a tail that may be the start of one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        self.buffer += text
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buffer = self.buffer[: min(hits)], ""
            return out, True
        hold = max((n for s in self.stops for n in range(len(s) - 1, 0, -1) if self.buffer.endswith(s[:n])), default=0)
        cut = len(self.buffer) - hold
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out, False

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


class Worker:
    """The engine's state (loading, ready, failed) and the one-at-a-time gate for engines that need it."""

    def __init__(self, engine: Engine, on_failed: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.status = "loading"
        self.error: str | None = None
        self.on_failed = on_failed
        self._gate = None if engine.thread_safe else asyncio.Semaphore(1)
        engine.on_fatal = self.fail

    def fail(self, reason: str) -> None:
        """The model cannot serve (it failed to load, or its server died): say why and stop the process."""
        spec = self.engine.spec
        self.error = f"model '{spec.model_id}' ({spec.engine}, {spec.task}): {reason}"
        self.status = "failed"
        if self.on_failed is not None:
            self.on_failed(self.error)

    def load(self) -> None:
        started = time.monotonic()
        try:
            self.engine.load()
        except Exception as exc:
            reason = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
            self.fail(f"cannot load: {reason}")
            return
        self.status = "ready"
        print(f"unimodel worker: ready in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)

    def check_ready(self) -> None:
        if self.status != "ready":
            message = "The model is still loading; retry when GET /health answers 200."
            if self.status == "failed":
                message = f"The model failed to load: {self.error}"
            raise WorkerError(503, "model_loading", message)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` in a thread, one at a time for engines that are not thread-safe."""
        future = await self._start(fn, *args)
        return await asyncio.shield(future)  # a cancelled caller leaves the thread (and the gate) to finish

    async def _start(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        if self._gate is not None:
            await self._gate.acquire()
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        if self._gate is not None:
            future.add_done_callback(self._leave)  # when the thread is done, not when the caller gives up
        return future

    def _leave(self, _: object) -> None:
        if self._gate is not None:
            self._gate.release()

    async def generate(
        self, start: Callable[[], Iterator[str]], gen: Generation, outcome: Outcome
    ) -> AsyncGenerator[str, None]:
        """Text pieces of one generation, cut at `gen.stop`; errors before the first piece raise here."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def produce() -> None:
            try:
                pieces = start()
                trimmer = StopTrimmer(gen.stop)
                hit = False
                try:
                    for piece in pieces:
                        out, hit = trimmer.feed(piece)
                        if out:
                            put(out)
                        if hit or cancelled.is_set():
                            break
                    else:
                        if tail := trimmer.flush():
                            put(tail)
                finally:
                    close = getattr(pieces, "close", None)
                    if close is not None:
                        close()
                if hit:
                    outcome.finish_reason = "stop"
                put(_END)
            except BaseException as exc:
                put(exc)

        await self._start(produce)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
        finally:
            cancelled.set()


async def _first(pieces: AsyncGenerator[str, None]) -> tuple[str | None, AsyncGenerator[str, None]]:
    """The first piece (so errors before any output become a proper error response) and the rest."""
    try:
        return await anext(pieces), pieces
    except StopAsyncIteration:
        return None, pieces


def _error(exc: WorkerError) -> JSONResponse:
    headers = {"retry-after": "1"} if exc.code == "model_loading" else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_request(f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise invalid_request("The body must be a JSON object.")
    return body


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_request(f"'{name}' must be true or false.", name)
    return value


def create_app(worker: Worker) -> Starlette:
    """The ASGI app serving `worker`'s engine; the model starts loading when the app starts."""
    engine = worker.engine
    spec = engine.spec

    def gen_from(params: Any) -> Generation:
        return generation(params, engine.generate_specs, engine.name, engine.generate_reasons)

    async def health(request: Request) -> Response:
        body: dict[str, Any] = {
            "status": worker.status,
            "model": spec.model_id,
            "task": spec.task,
            "engine": spec.engine,
        }
        if worker.error:
            body["error"] = worker.error
        return JSONResponse(body, status_code=200 if worker.status == "ready" else 503)

    async def models(request: Request) -> Response:
        card = {"id": spec.model_id, "object": "model", "created": 0, "owned_by": "unimodel"}
        return JSONResponse({"object": "list", "data": [card]})

    async def openai_generate(request: Request, kind: str) -> Response:
        worker.check_ready()
        forward = getattr(engine, "forward", None)
        if forward is not None:
            response: Response = await forward(request)
            return response
        body = await _json_body(request)
        endpoint = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
        allowed = {"chat", "text-generation"} if kind == "chat" else GENERATIVE_TASKS
        if spec.task not in allowed:
            raise unsupported_task(endpoint, spec.task, "a chat or text-generation model")
        gen = gen_from(from_openai(body, engine.name))
        stream = _flag(body, "stream")
        options = body.get("stream_options") or {}
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        outcome = Outcome()
        if kind == "chat":
            messages = messages_from(body.get("messages"))
            start: Callable[[], Iterator[str]] = lambda: engine.chat(messages, gen, outcome)  # noqa: E731
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise invalid_request("'prompt' must be a string (one prompt per request).", "prompt")
            start = lambda: engine.complete(prompt, gen, outcome)  # noqa: E731
        envelope = Envelope(kind, str(body.get("model") or spec.model_id))
        first, rest = await _first(worker.generate(start, gen, outcome))
        if not stream:
            text = (first or "") + "".join([piece async for piece in rest])
            return JSONResponse(envelope.response(text, outcome))

        async def events() -> AsyncIterator[bytes]:
            try:
                yield envelope.chunk(first, first=True)
                async for piece in rest:
                    yield envelope.chunk(piece)
                yield envelope.chunk(None, outcome.finish_reason)
                if include_usage:
                    yield envelope.usage_chunk(outcome)
            except WorkerError as exc:  # after the first byte an error can only end the stream
                yield _sse_error(exc)
            except Exception as exc:
                yield _sse_error(WorkerError(500, "engine_error", f"{type(exc).__name__}: {exc}"))
            finally:
                await rest.aclose()  # a client that went away stops the generation
            yield SSE_DONE

        return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})

    async def chat_completions(request: Request) -> Response:
        return await openai_generate(request, "chat")

    async def completions(request: Request) -> Response:
        return await openai_generate(request, "text")

    async def embeddings(request: Request) -> Response:
        worker.check_ready()
        forward = getattr(engine, "forward", None)
        if forward is not None:
            response: Response = await forward(request)
            return response
        body = await _json_body(request)
        if spec.task not in EMBEDDING_TASKS:
            raise unsupported_task("/v1/embeddings", spec.task, "a feature-extraction model")
        texts = texts_field(body.get("input"), "input")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise invalid_request("'encoding_format' must be float or base64.", "encoding_format")
        for name in body.keys() - {"model", "input", "encoding_format", "dimensions", "user"}:
            raise unsupported_parameter(name, engine.name)
        vectors, tokens = await worker.call(engine.embed, texts)
        dims = body.get("dimensions")
        if dims is not None and (not vectors or dims != len(vectors[0])):
            raise WorkerError(
                400,
                "unsupported_parameter",
                f"'dimensions' must be {len(vectors[0])} (this model's size).",
                "dimensions",
            )
        model = str(body.get("model") or spec.model_id)
        return JSONResponse(embeddings_response(vectors, tokens, model, encoding))

    async def run(request: Request) -> Response:
        worker.check_ready()
        body = await _json_body(request)
        fields = run_fields(body)
        stream = _flag(body, "stream")
        task = spec.task
        if stream and task not in GENERATIVE_TASKS:
            raise invalid_request(f"Task '{task}' does not stream; send stream: false.", "stream")
        if task in GENERATIVE_TASKS:
            return await run_generate(body, fields, stream)
        if task in EMBEDDING_TASKS:
            for name in validate_object(body.get("params")):
                raise unsupported_parameter(name, engine.name, f"task '{task}' takes no params")
            value = fields.get("text")
            texts = texts_field(value, "text")
            vectors, _ = await worker.call(engine.embed, texts)
            return JSONResponse({"output": vectors[0] if isinstance(value, str) else vectors})
        output = await worker.call(engine.run, fields, body.get("params"))
        return JSONResponse({"output": output})

    async def run_generate(body: dict[str, Any], fields: dict[str, Any], stream: bool) -> Response:
        gen = gen_from(body.get("params"))
        outcome = Outcome()
        if spec.task in CHAT_TASKS:
            raw = fields.get("messages")
            if raw is None and isinstance(fields.get("text"), str):
                raw = [{"role": "user", "content": fields["text"]}]
            messages = messages_from(raw)
            start: Callable[[], Iterator[str]] = lambda: engine.chat(messages, gen, outcome)  # noqa: E731
            prefix = ""
        else:
            if gen.return_full_text is not None and spec.task != "text-generation":
                raise invalid_request("'return_full_text' applies to text-generation only.", "return_full_text")
            text = text_field(fields)
            start = lambda: engine.complete(text, gen, outcome)  # noqa: E731
            prefix = text if gen.return_full_text else ""
        first, rest = await _first(worker.generate(start, gen, outcome))
        if stream:

            async def chunks() -> AsyncIterator[bytes]:
                if prefix or first:
                    yield (prefix + (first or "")).encode()
                try:
                    async for piece in rest:
                        yield piece.encode()
                except Exception as exc:  # after the first byte an error can only end the stream
                    print(f"unimodel worker: stream ended by an error: {exc}", file=sys.stderr, flush=True)
                finally:
                    await rest.aclose()

            return StreamingResponse(chunks(), media_type="text/plain; charset=utf-8")
        text_out = prefix + (first or "") + "".join([piece async for piece in rest])
        output: Any = {"role": "assistant", "content": text_out} if spec.task in CHAT_TASKS else text_out
        return JSONResponse({"output": output, "usage": usage(outcome), "finish_reason": outcome.finish_reason})

    async def on_worker_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WorkerError)
        return _error(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return _error(WorkerError(exc.status_code, code, message))

    async def on_crash(request: Request, exc: Exception) -> Response:
        print(f"unimodel worker: {request.url.path} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return _error(
            WorkerError(500, "engine_error", f"The engine failed on this request: {type(exc).__name__}: {exc}")
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=worker.load, name="load-model", daemon=True).start()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.close)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/run", run, methods=["POST"]),
    ]
    handlers: dict[Any, Callable[..., Any]] = {
        WorkerError: on_worker_error,
        HTTPException: on_http_error,
        Exception: on_crash,
    }
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)


def _sse_error(exc: WorkerError) -> bytes:
    return sse(exc.body())
