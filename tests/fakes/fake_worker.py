"""A fake instance worker: the worker's command line and HTTP contract, no model (docs/open-models.md).

    python tests/fakes/fake_worker.py --engine transformers --task chat --model-id m --port 8123 \
        --engine-arg load_s=0.3 --engine-arg delay_s=0.2

Its behaviour comes from its own flags or from the same names given as `--engine-arg` (which is how a model's
`engine_args` reach it through the real backend):

- `load_s`: `GET /health` answers 503 `{"status": "loading"}` for this long, then 200 `{"status": "ready"}`.
- `fail_load`: after `load_s`, print a reason on stderr and exit 1 (a missing model file).
- `never_ready`: `/health` answers 503 for ever.
- `delay_s`: how long each request takes (a request's `fake_delay_s` field overrides it, and so does
  `[fake_delay_s=N]` in the last message's text, which passes through the gateway's chat surfaces). Chat with
  `"stream": true` answers SSE chunks spread over that time (a usage chunk with `stream_options.include_usage`),
  ending `data: [DONE]`. `/v1/chat/completions`, `/v1/completions` and `/v1/run` echo the input text;
  `/v1/embeddings` answers small made-up vectors.
- `[fake_stream_cut]` in the last message's text: a stream's body ends before its finish_reason and `[DONE]`;
  `[fake_tool_call]`: a stream sends a tool call, then finish_reason "stop".
- `exit_after`: exit (code 3) once this many requests have been answered.
- `ignore_sigterm`: keep running on SIGTERM (to test the SIGKILL after the grace period).

Answers say which instance served them (`instance`: the port, `pid`), and `GET /stats` reports
`{"served", "in_flight", "max_in_flight", "health_checks", "pid"}`; its first line on stderr names its port and pid. Like the
real worker it honours a lifeline (`UNIMODEL_LIFELINE_FD`), with the real worker's code
(unimodel/runtime/lifeline.py): when the process that started it is gone, it kills its process group. Standard
library only besides that module, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FLAGS = ("load_s", "delay_s", "fail_load", "never_ready", "exit_after", "ignore_sigterm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", required=True, choices=["llama.cpp", "transformers", "command"])
    parser.add_argument("--task", required=True)
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--path")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--command")
    parser.add_argument("--health-path", default="/health")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--load-s", type=float, default=0.0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--fail-load", action="store_true")
    parser.add_argument("--never-ready", action="store_true")
    parser.add_argument("--exit-after", type=int, default=0)
    parser.add_argument("--ignore-sigterm", action="store_true")
    args = parser.parse_args(argv)
    for item in args.engine_arg:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--engine-arg {item!r} is not KEY=VALUE")
        if key in FLAGS:
            default = getattr(args, key)
            if isinstance(default, bool):
                setattr(args, key, value.lower() in ("1", "true", "yes"))
            else:
                setattr(args, key, type(default)(value))
    return args


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.health_checks = 0  # GET /health answered

    def ready(self) -> bool:
        return not self.args.never_ready and time.monotonic() - self.started >= self.args.load_s

    def begin(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self) -> None:
        with self.lock:
            self.in_flight -= 1
            self.served += 1
            done = self.args.exit_after and self.served >= self.args.exit_after
        if done:
            print(f"fake worker: exiting after {self.served} requests", file=sys.stderr, flush=True)
            os._exit(3)


def last_text(body: dict[str, Any]) -> str:
    """The text of the last message (string content or text parts)."""
    messages = body.get("messages") or [{"content": ""}]
    content = messages[-1].get("content") or ""
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def chunk(args: argparse.Namespace, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": args.model_id,
        "instance": args.port,
        "choices": choices,
    }


def chat_completion(body: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": args.model_id,
        "instance": args.port,
        "pid": os.getpid(),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"echo: {last_text(body)}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def completion(body: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": int(time.time()),
        "model": args.model_id,
        "instance": args.port,
        "choices": [{"index": 0, "text": f"echo: {body.get('prompt', '')}", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def embeddings(body: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    inputs = body.get("input")
    texts = inputs if isinstance(inputs, list) else [inputs]
    data = [
        {"object": "embedding", "index": i, "embedding": [round(len(str(t)) / (k + 1), 4) for k in range(8)]}
        for i, t in enumerate(texts)
    ]
    return {"object": "list", "data": data, "model": args.model_id, "usage": {"prompt_tokens": 1, "total_tokens": 1}}


def run(body: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    given = body.get("input")  # the SDK body's string input is the task's text, as the real worker reads it
    return {"output": f"echo: {body.get('text') or (given if isinstance(given, str) else '') or last_text(body)}"}


ANSWERS = {
    "/v1/chat/completions": chat_completion,
    "/v1/completions": completion,
    "/v1/embeddings": embeddings,
    "/v1/run": run,
}


def make_handler(worker: Worker) -> type[BaseHTTPRequestHandler]:
    args = worker.args

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *items: Any) -> None:
            pass

        def send_json(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                with worker.lock:
                    worker.health_checks += 1
                if worker.ready():
                    self.send_json(200, {"status": "ready"})
                else:
                    self.send_json(503, {"status": "loading"})
            elif self.path == "/stats":
                with worker.lock:
                    stats = {
                        "served": worker.served,
                        "in_flight": worker.in_flight,
                        "max_in_flight": worker.max_in_flight,
                        "health_checks": worker.health_checks,
                        "pid": os.getpid(),
                    }
                self.send_json(200, stats)
            else:
                self.send_json(404, {"error": {"message": f"no route {self.path}", "code": "not_found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self.send_json(400, {"error": {"message": "body is not JSON", "code": "invalid_request"}})
                return
            if self.path not in ANSWERS:
                self.send_json(404, {"error": {"message": f"no route {self.path}", "code": "not_found"}})
                return
            if not worker.ready():
                self.send_json(503, {"error": {"message": "model is loading", "code": "loading"}})
                return
            delay = float(body.get("fake_delay_s", args.delay_s))
            if asked := re.search(r"\[fake_delay_s=([0-9.]+)\]", last_text(body)):
                delay = float(asked.group(1))
            worker.begin()
            try:
                if body.get("stream") and self.path == "/v1/chat/completions":
                    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                    self.stream(f"echo: {last_text(body)}", delay, include_usage)
                else:
                    time.sleep(delay)
                    self.send_json(200, ANSWERS[self.path](body, args))
            finally:
                worker.end()

        def stream(self, text: str, delay: float, include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            words = text.split(" ")
            for i, word in enumerate(words):
                time.sleep(delay / len(words))
                delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
                self.send_event(chunk(args, [{"index": 0, "delta": delta, "finish_reason": None}]))
            if "[fake_stream_cut]" in text:  # the body ends cleanly, but before any finish_reason or [DONE]
                self.send_chunk(b"")
                return
            if "[fake_tool_call]" in text:  # a call, then "stop" as some servers say after a forced call
                call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                self.send_event(chunk(args, [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]))
            self.send_event(chunk(args, [{"index": 0, "delta": {}, "finish_reason": "stop"}]))
            if include_usage:
                usage = {"prompt_tokens": 1, "completion_tokens": len(words), "total_tokens": 1 + len(words)}
                self.send_event({**chunk(args, []), "usage": usage})
            self.send_chunk(b"data: [DONE]\n\n")
            self.send_chunk(b"")

        def send_event(self, event: dict[str, Any]) -> None:
            self.send_chunk(f"data: {json.dumps(event)}\n\n".encode())

        def send_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def main(argv: list[str] | None = None) -> None:
    from unimodel.runtime.lifeline import end_process_group, watch_parent

    args = parse_args(argv)
    watch_parent(lambda: end_process_group("fake worker: the process that started it is gone"))
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    worker = Worker(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(worker))
    server.daemon_threads = True
    if args.fail_load:

        def fail() -> None:
            time.sleep(args.load_s)
            print(f"loading {args.model_id}", file=sys.stderr, flush=True)
            print(f"error: model file not found: {args.path or args.model_id}", file=sys.stderr, flush=True)
            os._exit(1)

        threading.Thread(target=fail, daemon=True).start()
    print(f"fake worker for {args.model_id} on port {args.port}, pid {os.getpid()}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
