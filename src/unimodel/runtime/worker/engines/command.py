"""The command engine: an external OpenAI-compatible server (`vllm serve`, `llama-server`, …) behind the worker.

The worker launches the server from a template (`{port}`, `{model}`, `{path}`) on an internal loopback port
and waits until its health path answers 200; only then does the worker's own `/health` say ready. The
worker stays the instance the backend sees: it proxies the OpenAI endpoints byte for byte (the server
validates its own parameters), serves `/v1/run` by translating to them, relays the server's output to its
own stderr, and exits non-zero when the server dies. The server dies with the worker (SIGTERM on shutdown;
SIGKILL to its group when the worker's gateway is gone, see `abandon`; PR_SET_PDEATHSIG on Linux should the
worker be killed outright).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import httpx

from ..errors import LoadError, WorkerError
from ..params import Generation, pick
from ..server import Request, StreamingResponse
from .base import EMBEDDING_TASKS, ChatMessages, Engine, Outcome

_TAIL_LINES = 20
_OPENAI_NAMES = {
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repetition_penalty": "repetition_penalty",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # the server leads its own session (start_new_session)


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, called after it
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_pdeathsig


class CommandEngine(Engine):
    name = "command"
    thread_safe = True  # the server takes concurrent requests itself
    tasks = frozenset({"chat", "text-generation", "feature-extraction", "sentence-similarity"})
    generate_specs = pick(
        "max_new_tokens temperature top_p top_k min_p do_sample seed presence_penalty frequency_penalty"
        " repetition_penalty stop return_full_text"
    )
    generate_reasons = {"num_beams": "OpenAI-compatible servers take no beam search"}

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._client: httpx.Client | None = None
        self._closing = False
        self._ready = False
        self._relay_thread: threading.Thread | None = None

    def _argv(self, port: int) -> list[str]:
        template = self.spec.command or ""
        if "{path}" in template and not self.spec.path:
            raise LoadError("the command template uses {path}, and no --path was given")
        values = {"{port}": str(port), "{model}": self.spec.model_id, "{path}": self.spec.path or ""}
        argv = []
        for word in shlex.split(template):
            for key, value in values.items():
                word = word.replace(key, value)
            argv.append(word)
        if not argv:
            raise LoadError("the command template is empty")
        return argv

    def load(self) -> None:
        self.spec.local_path()  # a --path that does not exist fails here, before anything starts
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        argv = self._argv(self.port)
        started = threading.Event()
        failure: list[OSError] = []

        def supervise() -> None:
            # The child is started, and waited on, by this thread, which lives as long as the child:
            # PR_SET_PDEATHSIG fires when the thread that forked the child ends, not the process.
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(),  # only prctl runs in the child
                )
            except OSError as exc:
                failure.append(exc)
                return
            finally:
                started.set()
            assert self._proc.stdout is not None
            self._relay_thread = threading.Thread(
                target=self._relay, args=(self._proc.stdout,), name="command-output", daemon=True
            )
            self._relay_thread.start()
            code = self._proc.wait()
            if self._ready and not self._closing and self.on_fatal is not None:
                self.on_fatal(f"the model server exited with status {code}; its last output:\n{self._tail_text()}")

        threading.Thread(target=supervise, name="command", daemon=True).start()
        started.wait()
        if failure:
            raise LoadError(f"cannot start {argv[0]!r}: {failure[0]}") from failure[0]
        self._wait_ready()
        self._ready = True

    def _relay(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self._tail.append(line)
            print(f"[command] {line}", file=sys.stderr, flush=True)

    def _tail_text(self) -> str:
        if self._relay_thread is not None:
            self._relay_thread.join(timeout=2.0)  # the output's end, unless a grandchild holds the pipe open
        return "\n".join(self._tail) or "(no output)"

    def _wait_ready(self) -> None:
        assert self._proc is not None
        url = self.base_url + self.spec.health_path
        deadline = time.monotonic() + self.spec.start_timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise LoadError(
                        f"the command exited with status {code} before it was ready; its last output:\n{self._tail_text()}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.close()
                    raise LoadError(
                        f"the command was not ready after {self.spec.start_timeout_s:g} s ({url} never answered 200); "
                        f"its last output:\n{self._tail_text()}"
                    )
                time.sleep(0.2)

    def close(self) -> None:
        self._closing = True
        if self._client is not None:
            self._client.close()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)  # its group: a server's own workers (vLLM's) go too
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()

    def abandon(self) -> None:
        self._closing = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)  # the server's own session: the worker's group kill misses it

    # --- the OpenAI endpoints, proxied ------------------------------------------------------------------

    def forward(self, request: Request) -> StreamingResponse:
        if self._client is None:
            # trust_env=False: a proxy from the environment must not sit between two loopback processes
            self._client = httpx.Client(
                base_url=self.base_url, timeout=httpx.Timeout(None, connect=5.0), trust_env=False
            )
        path = request.path + (f"?{request.query}" if request.query else "")
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        upstream = self._client.build_request(request.method, path, content=request.body, headers=headers)
        try:
            response = self._client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            raise WorkerError(502, "upstream_error", f"The model server did not answer: {exc}") from exc
        passed = {k: v for k, v in response.headers.items() if k in ("content-type", "retry-after", "cache-control")}
        return StreamingResponse(
            response.iter_raw(),
            status=response.status_code,
            media_type=passed.pop("content-type", "application/octet-stream"),
            headers=passed,
            on_close=response.close,
        )

    # --- /v1/run, translated to the OpenAI endpoints ---------------------------------------------------

    def _openai_body(self, gen: Generation) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.spec.model_id, "stream": True, "stream_options": {"include_usage": True}}
        for ours, theirs in _OPENAI_NAMES.items():
            if getattr(gen, ours) is not None:
                body[theirs] = getattr(gen, ours)
        if gen.greedy:
            body["temperature"] = 0.0
        return body

    def chat(self, messages: ChatMessages, gen: Generation, outcome: Outcome) -> Iterator[str]:
        body = {**self._openai_body(gen), "messages": messages}
        return self._stream("/v1/chat/completions", body, outcome, lambda c: c.get("delta", {}).get("content"))

    def complete(self, prompt: str, gen: Generation, outcome: Outcome) -> Iterator[str]:
        body = {**self._openai_body(gen), "prompt": prompt}
        return self._stream("/v1/completions", body, outcome, lambda c: c.get("text"))

    def _stream(
        self, path: str, body: dict[str, Any], outcome: Outcome, text_of: Callable[[dict[str, Any]], Any]
    ) -> Iterator[str]:
        with httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(None, connect=5.0), trust_env=False) as client:
            try:
                with client.stream("POST", path, json=body) as response:
                    if response.status_code != 200:
                        raise _upstream_error(response.status_code, response.read())
                    for line in response.iter_lines():
                        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                            continue
                        chunk = json.loads(line[5:])
                        if chunk.get("usage"):
                            outcome.prompt_tokens = int(chunk["usage"].get("prompt_tokens") or 0)
                            outcome.completion_tokens = int(chunk["usage"].get("completion_tokens") or 0)
                        for choice in chunk.get("choices") or []:
                            if text := text_of(choice):
                                yield str(text)
                            if choice.get("finish_reason"):
                                outcome.finish_reason = str(choice["finish_reason"])
            except httpx.HTTPError as exc:
                raise WorkerError(502, "upstream_error", f"The model server did not answer: {exc}") from exc

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        if self.spec.task not in EMBEDDING_TASKS:
            return super().embed(texts)
        try:
            with httpx.Client(trust_env=False, timeout=None) as client:
                response = client.post(
                    self.base_url + "/v1/embeddings", json={"model": self.spec.model_id, "input": texts}
                )
        except httpx.HTTPError as exc:
            raise WorkerError(502, "upstream_error", f"The model server did not answer: {exc}") from exc
        if response.status_code != 200:
            raise _upstream_error(response.status_code, response.content)
        body = response.json()
        vectors = [item["embedding"] for item in sorted(body["data"], key=lambda item: item["index"])]
        return vectors, int((body.get("usage") or {}).get("prompt_tokens") or 0)


def _upstream_error(status: int, raw: bytes) -> WorkerError:
    try:
        error = json.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = raw[:500].decode(errors="replace")
    code = "invalid_request" if 400 <= status < 500 else "upstream_error"
    return WorkerError(status if 400 <= status < 500 else 502, code, f"The model server answered {status}: {message}")
