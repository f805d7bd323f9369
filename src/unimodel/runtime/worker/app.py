"""The worker's HTTP app: health, the OpenAI-compatible endpoints and `/v1/run`, over one engine.

The model loads in a background thread (`__main__` starts it before it imports this module), so `/health`
answers 503 while it loads; it answers 200 once the model has loaded and the server listens (state.py). Each request is answered by its connection's thread (server.py), which runs the engine
itself; an engine that is not thread-safe serves one request at a time, in arrival order. A generation stops
when its client goes away: a streamed one before its next chunk, another one at its next piece.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .engines.base import (
    CHAT_TASKS,
    EMBEDDING_TASKS,
    GENERATIVE_TASKS,
    VISION_CHAT_TASKS,
    MediaOutput,
    Outcome,
    unsupported_task,
)
from .errors import WorkerError, invalid_request, unsupported_parameter
from .params import Generation, from_openai, generation, validate_object
from .server import HTTPError, JSONResponse, Request, Response, Router, StreamingResponse
from .state import ModelState
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
Answer = Response | StreamingResponse


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


class Gate:
    """One holder at a time, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        with self._lock:
            if not self._busy:
                self._busy = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the holder before us, who hands the gate over

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._busy = False


class Worker:
    """The model's state (`model`) as the app sees it, and the one-at-a-time gate for engines that need it."""

    def __init__(self, model: ModelState) -> None:
        self.model = model
        self.engine = model.engine
        self._gate = None if self.engine.thread_safe else Gate()

    @property
    def status(self) -> str:
        return self.model.status

    @property
    def error(self) -> str | None:
        return self.model.error

    def check_ready(self) -> None:
        self.model.check_ready()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """The engine, for this thread (one at a time for engines that are not thread-safe)."""
        if self._gate is None:
            yield
            return
        self._gate.acquire()
        try:
            yield
        finally:
            self._gate.release()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        with self.turn():
            return fn(*args)

    def generate(
        self,
        start: Callable[[], Iterator[str]],
        gen: Generation,
        outcome: Outcome,
        gone: Callable[[], bool] | None = None,
    ) -> Generator[str, None, None]:
        """Text pieces of one generation, cut at `gen.stop`; it stops when closed, or when `gone()` says the
        client has gone. Errors before the first piece raise at the first `next`."""
        with self.turn():
            pieces = start()
            trimmer = StopTrimmer(gen.stop)
            hit = False
            try:
                for piece in pieces:
                    out, hit = trimmer.feed(piece)
                    if out:
                        yield out
                    if hit or (gone is not None and gone()):
                        break
                else:
                    if tail := trimmer.flush():
                        yield tail
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
            if hit:
                outcome.finish_reason = "stop"


def _first(pieces: Iterator[str]) -> str | None:
    """The first piece (so errors before any output become a proper error response)."""
    return next(pieces, None)


def _error(exc: WorkerError) -> JSONResponse:
    headers = {"retry-after": "1"} if exc.code == "model_loading" else None
    return JSONResponse(exc.body(), status=exc.status, headers=headers)


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
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


def create_app(worker: Worker) -> Router:
    """The routes serving `worker`'s engine (server.py), and how their errors are answered."""
    engine = worker.engine
    spec = engine.spec
    forward: Callable[[Request], Answer] | None = getattr(engine, "forward", None)

    def gen_from(params: Any) -> Generation:
        return generation(params, engine.generate_specs, engine.name, engine.generate_reasons)

    def health(request: Request) -> Answer:
        body: dict[str, Any] = {
            "status": worker.status,
            "model": spec.model_id,
            "task": spec.task,
            "engine": spec.engine,
        }
        if worker.error:
            body["error"] = worker.error
        return JSONResponse(body, status=200 if worker.status == "ready" else 503)

    def models(request: Request) -> Answer:
        card = {"id": spec.model_id, "object": "model", "created": 0, "owned_by": "unimodel"}
        return JSONResponse({"object": "list", "data": [card]})

    def openai_generate(request: Request, kind: str) -> Answer:
        worker.check_ready()
        if forward is not None:
            return forward(request)
        body = _json_body(request)
        endpoint = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
        allowed = CHAT_TASKS | {"text-generation"} if kind == "chat" else GENERATIVE_TASKS
        if spec.task not in allowed:
            raise unsupported_task(endpoint, spec.task, "a chat or text-generation model")
        gen = gen_from(from_openai(body, engine.name))
        stream = _flag(body, "stream")
        options = body.get("stream_options") or {}
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        outcome = Outcome()
        if kind == "chat":
            messages = messages_from(body.get("messages"), images=spec.task in VISION_CHAT_TASKS)
            start: Callable[[], Iterator[str]] = lambda: engine.chat(messages, gen, outcome)  # noqa: E731
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise invalid_request("'prompt' must be a string (one prompt per request).", "prompt")
            start = lambda: engine.complete(prompt, gen, outcome)  # noqa: E731
        envelope = Envelope(kind, str(body.get("model") or spec.model_id))
        rest = worker.generate(start, gen, outcome, None if stream else request.gone)
        first = _first(rest)
        if not stream:
            text = (first or "") + "".join(rest)
            return JSONResponse(envelope.response(text, outcome))

        def events() -> Iterator[bytes]:
            try:
                yield envelope.chunk(first, first=True)
                for piece in rest:
                    yield envelope.chunk(piece)
                yield envelope.chunk(None, outcome.finish_reason)
                if include_usage:
                    yield envelope.usage_chunk(outcome)
            except WorkerError as exc:  # after the first byte an error can only end the stream
                yield _sse_error(exc)
            except Exception as exc:
                yield _sse_error(WorkerError(500, "engine_error", f"{type(exc).__name__}: {exc}"))
            finally:
                rest.close()  # a client that went away stops the generation
            yield SSE_DONE

        headers = {"cache-control": "no-cache"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers, on_close=rest.close)

    def chat_completions(request: Request) -> Answer:
        return openai_generate(request, "chat")

    def completions(request: Request) -> Answer:
        return openai_generate(request, "text")

    def embeddings(request: Request) -> Answer:
        worker.check_ready()
        if forward is not None:
            return forward(request)
        body = _json_body(request)
        if spec.task not in EMBEDDING_TASKS:
            raise unsupported_task("/v1/embeddings", spec.task, "a feature-extraction model")
        texts = texts_field(body.get("input"), "input")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise invalid_request("'encoding_format' must be float or base64.", "encoding_format")
        for name in body.keys() - {"model", "input", "encoding_format", "dimensions", "user"}:
            raise unsupported_parameter(name, engine.name)
        vectors, tokens = worker.call(engine.embed, texts)
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

    def run(request: Request) -> Answer:
        worker.check_ready()
        body = _json_body(request)
        fields = run_fields(body)
        stream = _flag(body, "stream")
        task = spec.task
        if stream and task not in GENERATIVE_TASKS:
            raise invalid_request(f"Task '{task}' does not stream; send stream: false.", "stream")
        if task in GENERATIVE_TASKS:
            return run_generate(request, body, fields, stream)
        if task in EMBEDDING_TASKS:
            for name in validate_object(body.get("params")):
                raise unsupported_parameter(name, engine.name, f"task '{task}' takes no params")
            value = fields.get("text")
            texts = texts_field(value, "text")
            vectors, _ = worker.call(engine.embed, texts)
            return JSONResponse({"output": vectors[0] if isinstance(value, str) else vectors})
        output = worker.call(engine.run, fields, body.get("params"))
        if isinstance(output, MediaOutput):  # generated media: its bytes, for the gateway's media store
            return Response(output.data, headers={"content-type": output.content_type})
        return JSONResponse({"output": output})

    def run_generate(request: Request, body: dict[str, Any], fields: dict[str, Any], stream: bool) -> Answer:
        gen = gen_from(body.get("params"))
        outcome = Outcome()
        if spec.task in CHAT_TASKS:
            raw = fields.get("messages")
            if raw is None and isinstance(fields.get("text"), str):
                raw = [{"role": "user", "content": fields["text"]}]
            messages = messages_from(raw, images=spec.task in VISION_CHAT_TASKS)
            start: Callable[[], Iterator[str]] = lambda: engine.chat(messages, gen, outcome)  # noqa: E731
            prefix = ""
        else:
            if gen.return_full_text is not None and spec.task != "text-generation":
                raise invalid_request("'return_full_text' applies to text-generation only.", "return_full_text")
            text = text_field(fields)
            start = lambda: engine.complete(text, gen, outcome)  # noqa: E731
            prefix = text if gen.return_full_text else ""
        rest = worker.generate(start, gen, outcome, None if stream else request.gone)
        first = _first(rest)
        if stream:

            def chunks() -> Iterator[bytes]:
                if prefix or first:
                    yield (prefix + (first or "")).encode()
                try:
                    for piece in rest:
                        yield piece.encode()
                except Exception as exc:  # after the first byte an error can only end the stream
                    print(f"unimodel worker: stream ended by an error: {exc}", file=sys.stderr, flush=True)
                finally:
                    rest.close()

            return StreamingResponse(chunks(), media_type="text/plain; charset=utf-8", on_close=rest.close)
        text_out = prefix + (first or "") + "".join(rest)
        output: Any = {"role": "assistant", "content": text_out} if spec.task in CHAT_TASKS else text_out
        return JSONResponse({"output": output, "usage": usage(outcome), "finish_reason": outcome.finish_reason})

    def on_error(request: Request, exc: Exception) -> Answer:
        if isinstance(exc, WorkerError):
            return _error(exc)
        if isinstance(exc, HTTPError):
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "invalid_request")
            return _error(WorkerError(exc.status, code, f"{request.method} {request.path}: {exc}"))
        print(f"unimodel worker: {request.path} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return _error(
            WorkerError(500, "engine_error", f"The engine failed on this request: {type(exc).__name__}: {exc}")
        )

    routes: dict[str, dict[str, Callable[[Request], Answer]]] = {
        "/health": {"GET": health},
        "/v1/models": {"GET": models},
        "/v1/chat/completions": {"POST": chat_completions},
        "/v1/completions": {"POST": completions},
        "/v1/embeddings": {"POST": embeddings},
        "/v1/run": {"POST": run},
    }
    return Router(routes, on_error)


def _sse_error(exc: WorkerError) -> bytes:
    return sse(exc.body())
