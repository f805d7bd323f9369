"""A tiny OpenAI-compatible server for the command engine's tests, run as a script.

`python tests/worker_fake_openai.py --port N --model M [--ready-after S] [--exit-now]`: /health answers 503
until S seconds have passed, then 200; chat completions answer "echo: <last user message>" (streamed word
by word when asked), completions "<prompt>!", embeddings [len(text), 1.0]. `--exit-now` prints a line
and exits 7 (a server that cannot start).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def create_app(model: str, ready_at: float) -> Starlette:
    async def health(request: Request) -> Response:
        ready = time.monotonic() >= ready_at
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def chat(request: Request) -> Response:
        body = await request.json()
        if body.get("temperature", 0) > 2:
            return JSONResponse({"error": {"message": "temperature too high", "type": "invalid_request_error"}}, 400)
        text = "echo: " + body["messages"][-1]["content"]
        words = text.split(" ")
        if not body.get("stream"):
            usage = {"prompt_tokens": 3, "completion_tokens": len(words), "total_tokens": 3 + len(words)}
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return JSONResponse(
                {"id": "fake-1", "object": "chat.completion", "model": model, "choices": [choice], "usage": usage}
            )

        async def events() -> AsyncIterator[bytes]:
            for i, word in enumerate(words):
                delta = {"content": word if i == 0 else " " + word}
                chunk = {
                    "id": "fake-1",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            end = {
                "id": "fake-1",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(end)}\n\n".encode()
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 3, "completion_tokens": len(words), "total_tokens": 3 + len(words)}
                yield f"data: {json.dumps({'id': 'fake-1', 'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0]} for i, t in enumerate(texts)]
        return JSONResponse(
            {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 2, "total_tokens": 2}}
        )

    routes = [
        Route("/health", health),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="fake")
    parser.add_argument("--ready-after", type=float, default=0.0)
    parser.add_argument("--exit-now", action="store_true")
    args = parser.parse_args()
    if args.exit_now:
        print("fake server: cannot open the model file", flush=True)
        sys.exit(7)
    print(f"fake server for {args.model} on port {args.port} pid {os.getpid()}", flush=True)
    app = create_app(args.model, time.monotonic() + args.ready_after)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
