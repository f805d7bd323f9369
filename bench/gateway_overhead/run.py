"""Gateway-overhead benchmark: the latency and throughput a gateway adds in front of an upstream.

One local mock OpenAI upstream (``mock_upstream.py``); the same chat-completion requests are sent to
it directly, through unimodel and through LiteLLM's proxy, in one run.  The platform targets
(``unimodel-base``, ``unimodel-open``, ``unimodel-keys-sqlite``, ``unimodel-keys-postgres``) run unimodel
before the platform work and with gateway keys, rate limits and the usage ledger on, against SQLite and
against a PostgreSQL the harness starts itself, and compare each with ``unimodel-base``.  For each target, after a
warm-up, every concurrency level runs for ``--duration`` seconds, non-streaming (``wrk``) and
streaming (``loadgen.py``, which also measures time to first byte).  The report gives requests per
second, p50/p99 latency, the latency added over the direct path, and the gateway's resident memory.

Usage (from the repository root)::

    .venv/bin/python bench/gateway_overhead/run.py [--duration 10] [--targets direct,unimodel,litellm]
    .venv/bin/python bench/gateway_overhead/run.py --targets direct,unimodel-base,unimodel-open,\
        unimodel-keys-sqlite,unimodel-keys-postgres

Everything it starts (mock, gateways, load generators) listens on or talks to 127.0.0.1 only, and is
stopped when it ends, also on an error or Ctrl-C.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared harness
from harness import LOOPBACK, Children, Proc, free_port, interrupts_unwind
from postgres import PG_BIN, Postgres, PostgresError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BENCH = REPO / "bench"
LITELLM_VENV = BENCH / ".venv-litellm"
CHAT_PATH = "/v1/chat/completions"
MODES = ("non-stream", "stream")
# unimodel without the platform (the source of BASE_REV) and the current source with it on, side by side.
PLATFORM_TARGETS = ("unimodel-base", "unimodel-open", "unimodel-keys-sqlite", "unimodel-keys-postgres")
# unimodel answering another API than chat completions, on the same upstream: target → (path, API of its bodies).
# `added` is then what the gateway adds to a chat completion called directly, translation included.
API_TARGETS = {
    "unimodel-responses": ("/v1/responses", "responses"),  # stored, OpenAI's default
    "unimodel-responses-nostore": ("/v1/responses", "responses-nostore"),  # "store": false
    "unimodel-messages": ("/v1/messages", "messages"),  # Anthropic's Messages API, translated to the chat upstream
}
ALL_TARGETS = ("direct", "unimodel", *API_TARGETS, "litellm", *PLATFORM_TARGETS)
DEFAULT_TARGETS = ("direct", "unimodel", "unimodel-responses", "unimodel-messages", "litellm")
BASE_REV = "44cfa75"  # the commit before the platform work (issue 5)
# Issue 5: keys, limits and the ledger may add at most this much to the p50 of the gateway without them.
PLATFORM_BUDGET_MS = 0.5
# The targets (checked for unimodel): added p50 at c=1, added p99 at c=64, rps vs LiteLLM.
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 15.0
TARGET_RPS_RATIO = 5.0
# A cell during which processes this run did not start (or the hypervisor) took more than this share
# of a CPU is flagged in the report.
OTHER_CPU_WARN = 0.05


# --------------------------------------------------------------------------------------------- data


@dataclass
class Cell:
    """One (target, mode, concurrency) measurement."""

    target: str
    mode: str
    concurrency: int
    loadgen: str
    requests: int = 0
    errors: int = 0
    rps: float = 0.0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    ttfb_p50_ms: float | None = None
    ttfb_p99_ms: float | None = None
    rss_mib: float | None = None
    cpu_ms_per_req: float | None = None  # gateway CPU time (user + system) per successful request
    cpu_util: float | None = None  # gateway CPU seconds per wall second during the cell
    other_cpu: float | None = None  # CPU seconds per second used by processes this run did not start
    steal: float | None = None  # CPU seconds per second the hypervisor took (steal time)
    first_error: str | None = None
    failed: str | None = None  # the cell could not be measured at all
    rounds_p50: list[float | None] | None = None  # interleaved runs with --rounds: every round's p50, in order


@dataclass
class TargetRun:
    name: str
    url: str = ""
    model: str = ""
    api: str = "chat"  # the body the clients send: chat, messages, responses, responses-nostore (API_TARGETS)
    status: str = "pending"  # ok | failed | skipped
    reason: str = ""
    version: str = ""
    startup_s: float | None = None
    idle_rss_mib: float | None = None
    peak_rss_mib: float | None = None
    notes: list[str] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    # Chat requests the clients sent to the target (warm-ups, reruns and probes included): at least / at most
    # (wrk does not say how many were in flight when it stopped).
    sent_min: int = 0
    sent_max: int = 0
    ledger: dict[str, Any] | None = None  # the usage-ledger check of a platform target


class StartError(Exception):
    """A target could not be started or did not answer correctly."""

    def __init__(self, message: str, proc: Proc | None = None) -> None:
        super().__init__(message)
        self.proc = proc


# ---------------------------------------------------------------------------------------- processes


# ------------------------------------------------------------------------------------------- memory


def _tree_pids(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of the process tree of ``root`` so far, in seconds."""
    ticks = 0
    for pid in _tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def system_cpu_seconds(cpu: int | None = None) -> tuple[float, float]:
    """(busy, steal) CPU seconds so far of one CPU, or of the whole machine, from /proc/stat."""
    name = "cpu" if cpu is None else f"cpu{cpu}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
            tck = os.sysconf("SC_CLK_TCK")
            return (user + nice + system + irq + softirq) / tck, steal / tck
    return 0.0, 0.0


class CpuWatch:
    """Splits the CPU time over a cell into the gateway's, ours (mock, load generator, harness) and
    everyone else's, so that a cell disturbed by a foreign process can be flagged.  When pinned, only
    the CPUs in use count: the client CPU always, the gateway CPU while a gateway runs on it."""

    def __init__(self, setup: Setup, gateway_pid: int | None, mock_pid: int) -> None:
        self.gateway_pid, self.mock_pid = gateway_pid, mock_pid
        self.own_pids = list(setup.own_pids)
        self.sibling_pids = [pid for pid in setup.sibling_pids if pid != gateway_pid]
        self.pinned = setup.pin
        self.gateway_cpu, self.client_cpu = setup.gateway_cpu, setup.client_cpu
        self.start = self._sample()

    def _sample(self) -> tuple[float, ...]:
        if self.pinned:
            busy_g, steal_g = system_cpu_seconds(self.gateway_cpu)
            busy_c, steal_c = system_cpu_seconds(self.client_cpu)
        else:
            (busy_g, steal_g), (busy_c, steal_c) = system_cpu_seconds(), (0.0, 0.0)
        gateway = tree_cpu_seconds(self.gateway_pid) if self.gateway_pid is not None else 0.0
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished load generators
        ours = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime + tree_cpu_seconds(self.mock_pid)
        ours += sum(tree_cpu_seconds(pid) for pid in self.own_pids)
        siblings = sum(tree_cpu_seconds(pid) for pid in self.sibling_pids)
        return time.monotonic(), busy_g, steal_g, busy_c, steal_c, gateway, ours, siblings

    def finish(self, cell: Cell) -> None:
        end = self._sample()
        wall, busy_g, steal_g, busy_c, steal_c, gateway, ours, siblings = (
            b - a for a, b in zip(self.start, end, strict=True)
        )
        if wall <= 0:
            return
        gateway += siblings  # the idle gateways of an interleaved run are ours too (on the gateway CPU)
        if not self.pinned:
            cell.steal = steal_g / wall
            cell.other_cpu = max(0.0, busy_g - gateway - ours) / wall
        elif self.gateway_pid is None:  # direct: the gateway CPU is not in use
            cell.steal = steal_c / wall
            cell.other_cpu = max(0.0, busy_c - ours) / wall
        else:
            cell.steal = (steal_g + steal_c) / wall
            cell.other_cpu = (max(0.0, busy_g - gateway) + max(0.0, busy_c - ours)) / wall
        if self.gateway_pid is not None:
            gateway -= siblings
            cell.cpu_util = gateway / wall
            cell.cpu_ms_per_req = 1000 * gateway / cell.requests if cell.requests else None


def tree_memory_mib(root: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) summed over the process tree of ``root``, in MiB."""
    rss = hwm = 0
    for pid in _tree_pids(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return rss / 1024.0, hwm / 1024.0


# -------------------------------------------------------------------------------------------- HTTP


def chat_body(model: str, stream: bool, api: str = "chat") -> str:
    """The request body of `api`: a chat completion, a Responses or a Messages API request (loadgen.py has the
    same)."""
    doc: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "Hello"}]}
    if api == "messages":  # Anthropic's Messages API (max_tokens is required there)
        doc = {**doc, "max_tokens": 64}
    elif api != "chat":
        doc = {"model": model, "input": "Hello", **({"store": False} if api == "responses-nostore" else {})}
    if stream:
        doc["stream"] = True
    return json.dumps(doc, separators=(",", ":"))


def http_call(
    port: int, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body).  Raises OSError/HTTPException."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def probe(port: int, path: str, model: str, api_key: str, stream: bool, run: TargetRun | None = None) -> str | None:
    """One real chat request; None when the answer is a well-formed completion, else what was wrong.
    With ``run``, the request is counted in its ``sent_min``/``sent_max``."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    api = run.api if run is not None else "chat"
    try:
        status, _, data = http_call(port, "POST", path, chat_body(model, stream, api), headers)
    except (OSError, http.client.HTTPException) as exc:
        if run is not None and not isinstance(exc, ConnectionRefusedError):
            run.sent_max += 1  # it may have reached the target
        return f"{type(exc).__name__}: {exc}"
    if run is not None:
        run.sent_min += 1
        run.sent_max += 1
    if status != 200:
        return f"HTTP {status}: {data[:300]!r}"
    if api == "messages":
        return messages_problem(data, stream)
    if api != "chat":
        return responses_problem(data, stream)
    if stream:
        if b"chat.completion.chunk" not in data or not data.rstrip().endswith(b"data: [DONE]"):
            return f"not an SSE chat.completion.chunk stream ending in [DONE]: {data[:300]!r}"
        return None
    try:
        content = json.loads(data)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not a chat.completion: {data[:300]!r}"
    return None if content else f"empty completion: {data[:300]!r}"


def responses_problem(data: bytes, stream: bool) -> str | None:
    """What is wrong with a Responses API answer (a Response object, or an event stream ending completed)."""
    if stream:
        ok = data.startswith(b"event: response.created") and b"event: response.completed" in data
        return None if ok else f"not a Responses event stream ending in response.completed: {data[:300]!r}"
    try:
        doc = json.loads(data)
        text = doc["output"][0]["content"][0]["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not a Response object: {data[:300]!r}"
    return None if doc.get("object") == "response" and text else f"empty response: {data[:300]!r}"


def messages_problem(data: bytes, stream: bool) -> str | None:
    """What is wrong with a Messages API answer (a message, or an event stream ending with message_stop)."""
    if stream:
        ok = data.startswith(b"event: message_start") and b"event: message_stop" in data
        return None if ok else f"not a Messages event stream ending in message_stop: {data[:300]!r}"
    try:
        doc = json.loads(data)
        text = doc["content"][0]["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not a message: {data[:300]!r}"
    return None if doc.get("type") == "message" and text else f"empty message: {data[:300]!r}"


def wait_ready(
    proc: Proc, port: int, path: str, model: str, api_key: str, timeout_s: float, run: TargetRun | None = None
) -> float:
    """Poll with real requests until the target answers; the seconds it took.  Raises StartError."""
    start = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - start < timeout_s:
        if not proc.alive():
            raise StartError(f"{proc.name} exited with code {proc.popen.returncode}; last probe: {last}", proc)
        problem = probe(port, path, model, api_key, stream=False, run=run)
        if problem is None:
            return time.monotonic() - start
        last = problem
        time.sleep(0.25)
    raise StartError(f"{proc.name} not ready after {timeout_s:.0f}s; last probe: {last}", proc)


# ------------------------------------------------------------------------------------- load runs


@dataclass
class Setup:
    helper_python: str
    pin: bool
    gateway_cpu: int
    client_cpu: int
    duration: float
    warmup: float
    concurrency: list[int]
    modes: list[str]
    loadgen: str  # wrk | python (non-streaming)
    out: Path
    quiet_wait: float = 0.0  # seconds to wait for a quiet machine before a cell
    retries: int = 0  # reruns of a disturbed cell
    rounds: int = 1  # interleaved platform targets: times every cell is measured (the median round is kept)
    own_pids: list[int] = field(default_factory=list)  # other process trees this run started (PostgreSQL)
    sibling_pids: list[int] = field(default_factory=list)  # gateways idling on the gateway CPU (interleaved run)

    def pinned(self, argv: list[str], cpu: int) -> list[str]:
        return ["taskset", "-c", str(cpu), *argv] if self.pin else argv


def run_wrk(
    setup: Setup, url: str, model: str, api_key: str, conc: int, duration: float, api: str = "chat"
) -> dict[str, Any]:
    argv = setup.pinned(
        [
            "wrk",
            "-t1",
            f"-c{conc}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "chat.lua"),
            url,
        ],
        setup.client_cpu,
    )
    env = {**os.environ, "WRK_BODY": chat_body(model, False, api), "WRK_API_KEY": api_key}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw: dict[str, Any] = json.loads(line.split(" ", 1)[1])
            return raw
    raise RuntimeError(f"wrk gave no summary (rc {done.returncode}): {(done.stdout + done.stderr)[-500:]}")


def run_loadgen(
    setup: Setup, url: str, model: str, api_key: str, conc: int, duration: float, stream: bool, api: str = "chat"
) -> dict[str, Any]:
    argv = [
        setup.helper_python,
        str(HERE / "loadgen.py"),
        "--url",
        url,
        "--model",
        model,
        "--api-key",
        api_key,
        "--concurrency",
        str(conc),
        "--duration",
        str(duration),
        "--api",
        api,
    ]
    if stream:
        argv.append("--stream")
    done = subprocess.run(
        setup.pinned(argv, setup.client_cpu),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed (rc {done.returncode}): {(done.stdout + done.stderr)[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(setup: Setup, target: TargetRun, api_key: str, mode: str, conc: int, duration: float) -> Cell:
    stream = mode == "stream"
    use_wrk = not stream and setup.loadgen == "wrk"
    cell = Cell(target.name, mode, conc, "wrk" if use_wrk else "loadgen.py")
    try:
        if use_wrk:
            raw = run_wrk(setup, target.url, target.model, api_key, conc, duration, target.api)
            errors = sum(int(v) for v in raw["errors"].values())
            ok = int(raw["requests"]) - int(raw["errors"]["status"])
            secs = raw["duration_us"] / 1e6
            lat = raw["latency_us"]
            cell.requests, cell.errors = ok, errors
            # wrk counts answered requests; up to one per connection was in flight when it stopped
            socket_errors = sum(int(raw["errors"][k]) for k in ("read", "write", "timeout"))
            target.sent_min += int(raw["requests"])
            target.sent_max += int(raw["requests"]) + conc + socket_errors
            cell.rps = ok / secs if secs > 0 else 0.0
            if ok > 0:
                cell.p50_ms, cell.p90_ms = lat["p50"] / 1000, lat["p90"] / 1000
                cell.p99_ms, cell.max_ms = lat["p99"] / 1000, lat["max"] / 1000
            if errors:
                cell.first_error = f"wrk errors: {raw['errors']}"
        else:
            res = run_loadgen(setup, target.url, target.model, api_key, conc, duration, stream, target.api)
            sent = int(res.get("sent", 0))
            target.sent_min += max(0, sent - int(res["errors"]))
            target.sent_max += sent
            cell.requests, cell.errors, cell.rps = res["requests"], res["errors"], res["rps"]
            cell.first_error = res["first_error"]
            if res["latency_ms"]:
                lat = res["latency_ms"]
                cell.p50_ms, cell.p90_ms, cell.p99_ms, cell.max_ms = lat["p50"], lat["p90"], lat["p99"], lat["max"]
            if stream and res["ttfb_ms"]:
                cell.ttfb_p50_ms, cell.ttfb_p99_ms = res["ttfb_ms"]["p50"], res["ttfb_ms"]["p99"]
        if cell.requests == 0:
            cell.failed = f"no successful request; {cell.first_error or 'no error recorded'}"
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        cell.failed = f"{type(exc).__name__}: {exc}"
    return cell


# ---------------------------------------------------------------------------------------- targets


def start_mock(setup: Setup, children: Children) -> tuple[Proc, int]:
    argv = setup.pinned(
        [setup.helper_python, "-u", str(HERE / "mock_upstream.py"), "--host", LOOPBACK, "--port", "0"],
        setup.client_cpu,
    )
    proc = children.start("mock", argv, setup.out / "mock.log")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.alive():
        for line in proc.log.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return proc, int(line.split()[1])
        time.sleep(0.05)
    raise SystemExit(f"mock upstream did not start:\n{proc.log_tail()}")


def gateway_env() -> dict[str, str]:
    env = dict(os.environ)
    # Loopback traffic must never go through a proxy the environment may name.
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = "127.0.0.1,localhost,::1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def version_of(python: str, dist: str) -> str:
    try:
        done = subprocess.run(
            [python, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def git_describe() -> str:
    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""
    return f"{sha or 'no commit'}{' + uncommitted src/ changes' if dirty else ''}"


def start_unimodel(
    args: argparse.Namespace, setup: Setup, children: Children, mock_port: int, run: TargetRun
) -> tuple[Proc, str]:
    exe = Path(args.unimodel_bin)
    if not exe.exists():
        raise StartError(f"{exe} not found (run `make install`)")
    path, run.api = API_TARGETS.get(run.name, (args.unimodel_path, "chat"))
    config = setup.out / ("unimodel.toml" if run.name == "unimodel" else f"{run.name}.toml")
    if args.unimodel_config:
        text = Path(args.unimodel_config).read_text().replace("{mock_base_url}", f"http://{LOOPBACK}:{mock_port}/v1")
    else:
        text = f'[providers.openai]\nbase_url = "http://{LOOPBACK}:{mock_port}/v1"\napi_key = "sk-bench"\n'
        if run.name in API_TARGETS:  # stored responses (and the ledger) in this run's folder, not the user's
            text += f'[store]\ndata_dir = "{setup.out / (run.name + "-store")}"\n'
    config.write_text(text)
    port = free_port()
    argv = [str(exe), "serve", "--config", str(config), "--host", LOOPBACK, "--port", str(port)]
    log = setup.out / ("unimodel.log" if run.name == "unimodel" else f"{run.name}.log")
    proc = children.start(run.name, setup.pinned(argv, setup.gateway_cpu), log, gateway_env())
    run.url = f"http://{LOOPBACK}:{port}{path}"
    run.model = "openai/gpt-4o-mini"
    run.version = f"unimodel {version_of(str(exe.parent / 'python'), 'unimodel')} ({git_describe()})"
    run.startup_s = wait_ready(proc, port, path, run.model, args.unimodel_api_key, args.startup_timeout, run)
    return proc, args.unimodel_api_key


def ensure_litellm(args: argparse.Namespace, out: Path) -> Path:
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    if args.no_install:
        raise StartError(f"{exe} not found and --no-install given")
    log = out / "litellm-install.log"
    print(f"installing litellm[proxy] into {LITELLM_VENV} (log: {log}) ...", flush=True)
    base = shutil.which("python3") or sys.executable
    with log.open("wb") as fh:
        for argv in (
            [base, "-m", "venv", str(LITELLM_VENV)],
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
        ):
            try:
                done = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, timeout=1800, check=False)
            except subprocess.TimeoutExpired as exc:
                raise StartError(f"`{' '.join(argv)}` timed out") from exc
            if done.returncode != 0:
                raise StartError(f"`{' '.join(argv)}` failed (rc {done.returncode}); see {log}")
    if not exe.exists():
        raise StartError(f"litellm installed but {exe} is missing; see {log}")
    return exe


def start_litellm(
    args: argparse.Namespace, setup: Setup, children: Children, mock_port: int, run: TargetRun
) -> tuple[Proc, str]:
    exe = ensure_litellm(args, setup.out)
    config = setup.out / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: openai/gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: http://{LOOPBACK}:{mock_port}/v1\n"
        "      api_key: sk-bench\n"
    )
    master_key = "sk-" + secrets.token_hex(32)
    env = gateway_env()
    env.update(
        {
            # A normal deployment must set a strong master key (the proxy refuses to start without one).
            "LITELLM_MASTER_KEY": master_key,
            # No network at start-up: the model cost map bundled with the package (the CLI's default).
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            # Nothing phones home.
            "LITELLM_TELEMETRY_DISABLED": "true",
        }
    )
    port = free_port()
    argv = [str(exe), "--config", str(config), "--host", LOOPBACK, "--port", str(port), "--num_workers", "1"]
    proc = children.start("litellm", setup.pinned(argv, setup.gateway_cpu), setup.out / "litellm.log", env)
    run.url = f"http://{LOOPBACK}:{port}{CHAT_PATH}"
    run.model = "openai/gpt-4o-mini"
    run.version = f"litellm {version_of(str(LITELLM_VENV / 'bin' / 'python'), 'litellm')}"
    run.notes.append(
        "LiteLLM settings: `--num_workers 1`, LITELLM_MASTER_KEY set (required), "
        "LITELLM_LOCAL_MODEL_COST_MAP=True, LITELLM_TELEMETRY_DISABLED=true; everything else default "
        "(uvicorn access log on, no database, no callbacks)."
    )
    run.startup_s = wait_ready(proc, port, CHAT_PATH, run.model, master_key, args.startup_timeout)
    return proc, master_key


# ------------------------------------------------------------------------------ platform targets


@dataclass
class Variant:
    """One platform target: a unimodel source tree, its config and what it needs (a key, a PostgreSQL)."""

    name: str
    src: Path  # the folder that holds the `unimodel` package (put on PYTHONPATH)
    python: str
    store: str  # "none" (before the platform), "sqlite" or "postgres"
    keys: bool  # [auth] mode = "keys" and a key with a rate limit
    workdir: Path  # config, data_dir
    config: Path = Path()
    env: dict[str, str] = field(default_factory=dict)
    key_id: str | None = None
    secret: str | None = None
    pg: Postgres | None = None
    upstream_path: str = ""  # the variant's own path prefix on the mock, so that its upstream calls can be counted
    upstream_before: int | None = None
    readiness: dict[str, Any] | None = None


def source_tree(rev: str | None, out: Path) -> Path:
    """The `src` folder of ``rev`` (extracted with `git archive`, read-only for the repository), or the working
    tree's when ``rev`` is None."""
    if rev is None:
        return REPO / "src"
    dest = out / f"src-{rev}"
    if not (dest / "src" / "unimodel" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as tar:
            done = subprocess.run(
                ["git", "-C", str(REPO), "archive", "--format=tar", rev, "src"], stdout=tar, stderr=subprocess.PIPE
            )
            if done.returncode != 0:
                raise StartError(f"git archive {rev} src failed: {done.stderr.decode(errors='replace').strip()}")
            tar.seek(0)
            with tarfile.open(fileobj=tar) as archive:
                archive.extractall(dest, filter="data")
    return dest / "src"


def variant_env(src: Path) -> dict[str, str]:
    """The gateway's environment: no UNIMODEL_* settings from the caller's shell, the source tree first on the path."""
    env = {k: v for k, v in gateway_env().items() if not k.startswith("UNIMODEL_")}
    env["PYTHONPATH"] = str(src)
    return env


def unimodel_cli(variant: Variant, *argv: str) -> str:
    """`python -m unimodel ARGV --config CFG` with the variant's source and environment; its stdout."""
    cmd = [variant.python, "-m", "unimodel", *argv, "--config", str(variant.config)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=variant.env, cwd=REPO, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StartError(f"`unimodel {' '.join(argv)}` timed out") from exc
    if done.returncode != 0:
        raise StartError(f"`unimodel {' '.join(argv)}` failed (rc {done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def check_import(variant: Variant) -> str:
    """Where the variant's interpreter and environment import `unimodel` from; StartError if not its tree."""
    done = subprocess.run(
        [variant.python, "-c", "import unimodel; print(unimodel.__file__); print(unimodel.__version__)"],
        capture_output=True,
        text=True,
        env=variant.env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    lines = done.stdout.split()
    if done.returncode != 0 or not lines:
        raise StartError(f"cannot import unimodel from {variant.src}: {done.stderr.strip()[-500:]}")
    where = Path(lines[0]).resolve()
    if not where.is_relative_to(variant.src.resolve()):
        raise StartError(f"unimodel imports from {where}, not from {variant.src}")
    return str(where.parent)


def mock_chat_count(mock_port: int, path: str | None = None) -> int | None:
    """Chat requests the mock upstream has answered so far (GET /stats), all or on one path; None if unknown."""
    try:
        status, _, data = http_call(mock_port, "GET", "/stats")
        stats = json.loads(data)
        if status != 200:
            return None
        return int(stats["chat_completions"] if path is None else stats["by_path"].get(path, 0))
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError, AttributeError):
        return None


def prepare_variant(
    args: argparse.Namespace, setup: Setup, mock_port: int, run: TargetRun, stack: contextlib.ExitStack
) -> Variant:
    """Source tree, config, store (PostgreSQL started when needed) and gateway key of a platform target."""
    name = run.name
    base = name == "unimodel-base"
    src = source_tree(args.base_rev if base else args.platform_rev, setup.out)
    store = "none" if base else "postgres" if name.endswith("postgres") else "sqlite"
    workdir = setup.out / name
    workdir.mkdir(parents=True, exist_ok=True)
    python = str(Path(args.unimodel_bin).parent / "python")
    variant = Variant(name, src, python, store, keys="-keys-" in name, workdir=workdir, env=variant_env(src))
    variant.upstream_path = f"/{name}/v1/chat/completions"
    where = check_import(variant)
    lines = [f'[providers.openai]\nbase_url = "http://{LOOPBACK}:{mock_port}/{name}/v1"\napi_key = "sk-bench"\n']
    if store != "none":
        lines.append(f'[store]\ndata_dir = "{workdir / "data"}"\n')
    if store == "postgres":
        try:
            pg = Postgres(free_port(), bin_dir=Path(args.pg_bin), cpu=setup.client_cpu if setup.pin else None)
            stack.callback(pg.stop)
            pg.start()
        except PostgresError as exc:
            raise StartError(f"PostgreSQL: {exc}") from exc
        variant.pg = pg
        lines[-1] += f'url = "{pg.url}"\n'
        if pg.pid is not None:
            setup.own_pids.append(pg.pid)
            stack.callback(setup.own_pids.remove, pg.pid)
        run.notes.append(
            f"store: {pg.version()} on {LOOPBACK}:{pg.port} (started by the bench in {pg.root}, trust auth, "
            f"server defaults otherwise{f', pinned to CPU {setup.client_cpu}' if setup.pin else ''})"
        )
    elif store == "sqlite":
        run.notes.append(f"store: SQLite file in {workdir / 'data'} (WAL)")
    if variant.keys:
        lines.append('[auth]\nmode = "keys"\n')
    variant.config = workdir / "unimodel.toml"
    variant.config.write_text("\n".join(lines))
    if variant.keys:
        created = json.loads(
            unimodel_cli(variant, "keys", "create", "--name", "bench", "--rps", f"{args.key_rps:g}", "--json")
        )
        variant.key_id, variant.secret = created["id"], created["key"]
        run.notes.append(f"gateway key {variant.key_id} (`keys create --rps {args.key_rps:g}`), sent as Bearer")
    run.notes.append(f"imports unimodel from {where} (PYTHONPATH={src}); config {variant.config}")
    return variant


def start_variant(
    args: argparse.Namespace, setup: Setup, children: Children, mock_port: int, run: TargetRun, variant: Variant
) -> tuple[Proc, str]:
    port = free_port()
    argv = [variant.python, "-m", "unimodel", "serve", "--config", str(variant.config), "--host", LOOPBACK]
    argv += ["--port", str(port)]
    variant.upstream_before = mock_chat_count(mock_port, variant.upstream_path)
    proc = children.start(run.name, setup.pinned(argv, setup.gateway_cpu), setup.out / f"{run.name}.log", variant.env)
    run.url = f"http://{LOOPBACK}:{port}{args.unimodel_path}"
    run.model = "openai/gpt-4o-mini"
    version = version_of(variant.python, "unimodel")
    if run.name == "unimodel-base":
        run.version = f"unimodel src @ {args.base_rev} (git archive)"
    elif args.platform_rev:
        run.version = f"unimodel src @ {args.platform_rev} (git archive)"
    else:
        run.version = f"unimodel {version} ({git_describe()})"
    api_key = variant.secret or args.unimodel_api_key
    run.startup_s = wait_ready(proc, port, args.unimodel_path, run.model, api_key, args.startup_timeout, run)
    check_variant(variant, port, args.unimodel_path, run)
    return proc, api_key


def check_variant(variant: Variant, port: int, path: str, run: TargetRun) -> None:
    """That the running gateway is what the target says: the platform off (base) or on, keys required or not,
    the rate limiter counting.  Raises StartError."""
    try:
        status, headers, data = http_call(port, "GET", "/readyz")
        ready = json.loads(data) if status in (200, 503) else {}
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise StartError(f"GET /readyz failed: {exc}") from exc
    has_platform = isinstance(ready, dict) and "usage_ledger" in ready.get("checks", {})
    if has_platform != (variant.store != "none"):
        raise StartError(f"/readyz says the platform is {'on' if has_platform else 'off'}: {data[:300]!r}")
    if variant.store == "none" and "x-request-id" in headers:
        raise StartError("the base gateway answers with x-request-id: it runs the platform code")
    if variant.store == "none":
        return
    body = chat_body(run.model, False)
    json_only = {"Content-Type": "application/json"}
    try:
        anon_status, _, _ = http_call(port, "POST", path, body, json_only)
        if anon_status == 200:  # open mode: a model call, so a ledger record; a 401 is neither
            run.sent_min, run.sent_max = run.sent_min + 1, run.sent_max + 1
        keyed_status, keyed_headers, _ = http_call(
            port, "POST", path, body, {**json_only, "Authorization": f"Bearer {variant.secret or 'sk-bench'}"}
        )
        run.sent_min, run.sent_max = run.sent_min + 1, run.sent_max + 1
    except (OSError, http.client.HTTPException) as exc:
        raise StartError(f"checking the auth mode failed: {exc}") from exc
    if variant.keys:
        if anon_status != 401:
            raise StartError(f"keys mode: a request without a key got HTTP {anon_status}, not 401")
        if keyed_status != 200 or "ratelimit-limit" not in keyed_headers:
            raise StartError(f"keys mode: the key's request got HTTP {keyed_status} without ratelimit headers")
        run.notes.append(
            f"checked: no key → 401; the key → 200 with ratelimit-limit {keyed_headers['ratelimit-limit']}"
        )
    else:
        if anon_status != 200:
            raise StartError(f"open mode: a request without a key got HTTP {anon_status}")
        run.notes.append("checked: open mode (a request without a key → 200)")


def read_readiness(port: int) -> dict[str, Any] | None:
    try:
        _, _, data = http_call(port, "GET", "/readyz")
        ready: dict[str, Any] = json.loads(data)
        return ready
    except (OSError, http.client.HTTPException, ValueError):
        return None


def check_ledger(variant: Variant, mock_port: int, run: TargetRun) -> None:
    """After the gateway stopped (its ledger flushed on the way out): the usage records of the bench's key (or of
    anonymous calls), read back with `unimodel usage`, against the requests sent and the upstream calls made."""
    upstream_after = mock_chat_count(mock_port, variant.upstream_path)
    upstream = (
        upstream_after - variant.upstream_before
        if upstream_after is not None and variant.upstream_before is not None
        else None
    )
    key = variant.key_id or "anonymous"
    result: dict[str, Any] = {"key": key, "sent_min": run.sent_min, "sent_max": run.sent_max, "upstream": upstream}
    ledger = ((variant.readiness or {}).get("checks") or {}).get("usage_ledger") or {}
    result["dropped"] = ledger.get("dropped")
    try:
        out = unimodel_cli(variant, "usage", "--format", "json", "--key", key, "--limit", "1")
        totals = json.loads(out)["totals"]
        result["rows"], result["error_rows"] = int(totals["requests"]), int(totals["errors"])
    except (StartError, ValueError, KeyError, TypeError) as exc:
        result["rows"] = None
        result["problem"] = f"could not read the ledger: {exc}"
    rows = result["rows"]
    if rows is None:
        result["verdict"] = "UNKNOWN"
    else:
        low = max(run.sent_min, upstream or 0)
        result["verdict"] = "OK" if low <= rows <= run.sent_max and not result["dropped"] else "MISMATCH"
    run.ledger = result
    print(f"[{run.name}] ledger: {_ledger_line(result)}", flush=True)


def _ledger_line(res: dict[str, Any]) -> str:
    sent = f"{res['sent_min']}" if res["sent_min"] == res["sent_max"] else f"{res['sent_min']}–{res['sent_max']}"
    line = (
        f"{res.get('rows')} rows for key {res['key']} ({res.get('error_rows')} not 200); clients sent {sent}, "
        f"upstream answered {res.get('upstream')}; dropped {res.get('dropped')}: {res.get('verdict')}"
    )
    if res.get("problem"):
        line += f" ({res['problem']})"
    return line


# ------------------------------------------------------------------------------------- measuring


def _disturbance(cell: Cell) -> float:
    return (cell.other_cpu or 0.0) + (cell.steal or 0.0)


def wait_quiet(setup: Setup, gateway_pid: int | None, mock_pid: int) -> float | None:
    """Wait (at most ``setup.quiet_wait`` s) for a 1 s window in which processes this run did not start
    used under OTHER_CPU_WARN of a CPU.  None when quiet, else the last window's foreign CPU share."""
    deadline = time.monotonic() + setup.quiet_wait
    while True:
        probe_cell = Cell("", "", 0, "")
        watch = CpuWatch(setup, gateway_pid, mock_pid)
        time.sleep(1.0 if setup.quiet_wait > 0 else 0.3)
        watch.finish(probe_cell)
        if _disturbance(probe_cell) <= OTHER_CPU_WARN:
            return None
        if time.monotonic() >= deadline:
            return _disturbance(probe_cell)


def measure_quietly(
    setup: Setup, run: TargetRun, api_key: str, mode: str, conc: int, gateway_pid: int | None, mock_pid: int
) -> Cell:
    """One cell, started when the machine is quiet, rerun (up to ``setup.retries`` times) when
    something else used the CPUs during it; the least disturbed attempt is kept."""
    best: Cell | None = None
    for attempt in range(setup.retries + 1):
        busy = wait_quiet(setup, gateway_pid, mock_pid)
        if busy is not None:
            print(f"[{run.name}] machine still busy ({busy:.0%} of a CPU) after {setup.quiet_wait:g}s", flush=True)
        watch = CpuWatch(setup, gateway_pid, mock_pid)
        cell = measure(setup, run, api_key, mode, conc, setup.duration)
        if cell.failed:
            return cell
        watch.finish(cell)
        if best is None or _disturbance(cell) < _disturbance(best):
            best = cell
        if _disturbance(cell) <= OTHER_CPU_WARN:
            break
        if attempt < setup.retries:
            print(f"[{run.name}] {mode} c={conc} disturbed ({_cell_line(cell)}); measuring again", flush=True)
    assert best is not None
    return best


def bench_target(
    args: argparse.Namespace, setup: Setup, children: Children, mock: Proc, mock_port: int, run: TargetRun
) -> None:
    proc: Proc | None = None
    variant: Variant | None = None
    with contextlib.ExitStack() as stack:  # a platform target's PostgreSQL, stopped last
        try:
            if run.name == "direct":
                run.url, run.model, run.version = f"http://{LOOPBACK}:{mock_port}{CHAT_PATH}", "gpt-4o-mini", "mock"
                api_key, mem_pid = "sk-bench", None
            elif run.name == "unimodel" or run.name in API_TARGETS:
                proc, api_key = start_unimodel(args, setup, children, mock_port, run)
                mem_pid = proc.pid
            elif run.name in PLATFORM_TARGETS:
                variant = prepare_variant(args, setup, mock_port, run, stack)
                proc, api_key = start_variant(args, setup, children, mock_port, run, variant)
                mem_pid = proc.pid
            else:
                proc, api_key = start_litellm(args, setup, children, mock_port, run)
                mem_pid = proc.pid
            port = int(run.url.split(":")[2].split("/")[0])
            path = "/" + run.url.split("/", 3)[3]
            stream_problem = probe(port, path, run.model, api_key, True, run) if "stream" in setup.modes else None
            if stream_problem:
                run.notes.append(f"streaming probe failed: {stream_problem}")
            if mem_pid is not None:
                run.idle_rss_mib = tree_memory_mib(mem_pid)[0]
            status = f"up in {run.startup_s:.1f}s" if run.startup_s is not None else "up"
            print(f"[{run.name}] {status}, {run.url}; warming up {setup.warmup:g}s per mode", flush=True)
            if setup.warmup > 0:
                for mode in setup.modes:
                    if mode == "stream" and stream_problem:
                        continue
                    measure(setup, run, api_key, mode, 16, setup.warmup)
            for mode in setup.modes:
                for conc in setup.concurrency:
                    if mode == "stream" and stream_problem:
                        cell = Cell(
                            run.name, mode, conc, "loadgen.py", failed=f"streaming probe failed: {stream_problem}"
                        )
                    else:
                        cell = measure_quietly(setup, run, api_key, mode, conc, mem_pid, mock.pid)
                    if mem_pid is not None:
                        cell.rss_mib = tree_memory_mib(mem_pid)[0]
                    run.cells.append(cell)
                    print(f"[{run.name}] {mode:10s} c={conc:<3d} {_cell_line(cell)}", flush=True)
                    if not mock.alive():
                        raise StartError("the mock upstream died", mock)
                    if proc is not None and not proc.alive():
                        raise StartError(f"{run.name} exited during the run (code {proc.popen.returncode})", proc)
            if mem_pid is not None:
                run.peak_rss_mib = tree_memory_mib(mem_pid)[1]
            if variant is not None:
                variant.readiness = read_readiness(port)
            run.status = "ok"
        except StartError as exc:
            _failed(run, exc, proc)
        finally:
            if proc is not None:
                children.stop(proc)  # a platform gateway writes what its ledger still holds on the way out
        if variant is not None and variant.store != "none" and run.status == "ok":
            check_ledger(variant, mock_port, run)


@dataclass
class Started:
    """A platform target's gateway, up, in an interleaved run."""

    run: TargetRun
    variant: Variant
    proc: Proc
    api_key: str
    stream_problem: str | None = None


def bench_platform_interleaved(
    args: argparse.Namespace, setup: Setup, children: Children, mock: Proc, mock_port: int, runs: list[TargetRun]
) -> None:
    """The platform targets side by side: all their gateways up at once (idle ones wait on the gateway CPU), each
    cell measured for every target back to back, the order rotated from cell to cell, so that a machine whose speed
    drifts (a shared VM) shifts all targets alike.  Then every gateway is stopped and its ledger checked."""
    started: list[Started] = []
    with contextlib.ExitStack() as stack:  # PostgreSQL, stopped last
        try:
            for run in runs:
                proc: Proc | None = None
                try:
                    variant = prepare_variant(args, setup, mock_port, run, stack)
                    proc, api_key = start_variant(args, setup, children, mock_port, run, variant)
                except StartError as exc:
                    _failed(run, exc, proc)
                    if (proc or exc.proc) is not None:
                        children.stop(proc or exc.proc)  # type: ignore[arg-type]
                    continue
                one = Started(run, variant, proc, api_key)
                port = int(run.url.split(":")[2].split("/")[0])
                if "stream" in setup.modes:
                    one.stream_problem = probe(port, args.unimodel_path, run.model, api_key, True, run)
                    if one.stream_problem:
                        run.notes.append(f"streaming probe failed: {one.stream_problem}")
                run.idle_rss_mib = tree_memory_mib(proc.pid)[0]
                started.append(one)
                setup.sibling_pids.append(proc.pid)
                print(f"[{run.name}] up in {run.startup_s:.1f}s, {run.url}", flush=True)
            for one in started:
                print(f"[{one.run.name}] warming up {setup.warmup:g}s per mode", flush=True)
                for mode in setup.modes:
                    if setup.warmup > 0 and not (mode == "stream" and one.stream_problem):
                        measure(setup, one.run, one.api_key, mode, 16, setup.warmup)
            turn = 0
            rounds: dict[tuple[str, str, int], list[Cell]] = {}
            for rnd in range(setup.rounds):
                for mode in setup.modes:
                    for conc in setup.concurrency:
                        live = [one for one in started if one.run.status == "pending"]
                        turn += 1
                        for one in live[turn % len(live) :] + live[: turn % len(live)] if live else []:
                            cell = _measure_started(setup, mock, one, mode, conc, rnd)
                            rounds.setdefault((one.run.name, mode, conc), []).append(cell)
            for one in started:
                for mode in setup.modes:
                    for conc in setup.concurrency:
                        if (one.run.name, mode, conc) in rounds:
                            one.run.cells.append(_median_cell(rounds[(one.run.name, mode, conc)]))
            for one in started:
                if one.run.status == "pending":
                    one.run.peak_rss_mib = tree_memory_mib(one.proc.pid)[1]
                    one.variant.readiness = read_readiness(int(one.run.url.split(":")[2].split("/")[0]))
                    one.run.status = "ok"
        finally:
            setup.sibling_pids.clear()
            for one in started:
                children.stop(one.proc)  # a platform gateway writes what its ledger still holds on the way out
        for one in started:
            if one.variant.store != "none" and one.run.status == "ok":
                check_ledger(one.variant, mock_port, one.run)


def _measure_started(setup: Setup, mock: Proc, one: Started, mode: str, conc: int, rnd: int) -> Cell:
    run = one.run
    if mode == "stream" and one.stream_problem:
        cell = Cell(run.name, mode, conc, "loadgen.py", failed=f"streaming probe failed: {one.stream_problem}")
    else:
        cell = measure_quietly(setup, run, one.api_key, mode, conc, one.proc.pid, mock.pid)
    cell.rss_mib = tree_memory_mib(one.proc.pid)[0]
    label = f" round {rnd + 1}/{setup.rounds}" if setup.rounds > 1 else ""
    print(f"[{run.name}] {mode:10s} c={conc:<3d}{label} {_cell_line(cell)}", flush=True)
    if not mock.alive():
        raise SystemExit(f"the mock upstream died:\n{mock.log_tail()}")
    if not one.proc.alive():
        _failed(run, StartError(f"{run.name} exited during the run (code {one.proc.popen.returncode})"), one.proc)
    return cell


def _median_cell(cells: list[Cell]) -> Cell:
    """The round whose p50 is the median (the lower one of an even count), carrying every round's p50."""
    measured = sorted((c for c in cells if not c.failed and c.p50_ms is not None), key=lambda c: c.p50_ms or 0.0)
    pick = measured[(len(measured) - 1) // 2] if measured else cells[-1]
    pick.rounds_p50 = [c.p50_ms if not c.failed else None for c in cells]
    return pick


def _failed(run: TargetRun, exc: StartError, proc: Proc | None) -> None:
    run.status, run.reason = "failed", str(exc).strip()
    failed_proc = proc or exc.proc
    if failed_proc is not None and failed_proc.log_tail():
        run.notes.append(f"log tail ({failed_proc.log}):\n{failed_proc.log_tail()}")
    print(f"[{run.name}] FAILED: {run.reason}", flush=True)


def _cell_line(cell: Cell) -> str:
    if cell.failed:
        return f"FAILED: {cell.failed}"
    line = f"rps={cell.rps:9.1f} p50={_ms(cell.p50_ms)} p99={_ms(cell.p99_ms)}"
    if cell.ttfb_p50_ms is not None:
        line += f" ttfb_p50={_ms(cell.ttfb_p50_ms)}"
    if cell.cpu_util is not None:
        line += f" gateway_cpu={cell.cpu_util:.0%}"
    if cell.other_cpu is not None and cell.other_cpu > OTHER_CPU_WARN:
        line += f" WARNING: other processes used {cell.other_cpu:.0%} of a CPU"
    if cell.steal is not None and cell.steal > OTHER_CPU_WARN:
        line += f" WARNING: steal {cell.steal:.0%}"
    if cell.errors:
        line += f" errors={cell.errors} ({cell.first_error})"
    return line


# ------------------------------------------------------------------------------------------ report


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def _added(value: float | None, base: float | None) -> str:
    if value is None or base is None:
        return "–"
    return ("+" if value - base >= 0 else "") + _ms(value - base)


def _cells(runs: list[TargetRun]) -> dict[tuple[str, str, int], Cell]:
    return {(c.target, c.mode, c.concurrency): c for r in runs for c in r.cells if not c.failed}


def render(runs: list[TargetRun], setup: Setup, meta: dict[str, str]) -> str:
    cells = _cells(runs)
    out = ["# Gateway overhead", ""]
    out += [f"- {k}: {v}" for k, v in meta.items()]
    out += [
        "",
        "Latencies in ms. Streaming: p50/p99 are to the end of the stream, TTFB to its first body bytes. "
        "`added` = the target's percentile minus the direct path's at the same mode and concurrency. "
        "RSS = the gateway's VmRSS (process tree) after the cell; CPU ms/req = the gateway's user + system CPU time "
        "during the cell divided by the requests it completed (≈1000/rps when its one core is saturated).",
        "",
        "| target | mode | conc | rps | p50 | p99 | added p50 | added p99 | TTFB p50 | TTFB p99 "
        "| added TTFB p50 | added TTFB p99 | errors | RSS MiB | CPU ms/req |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        if run.status != "ok" and not run.cells:
            out.append(f"| {run.name} | **{run.status}**: {_one_line(run.reason)} |" + " |" * 13)
            continue
        for cell in run.cells:
            if cell.failed:
                out.append(f"| {run.name} | {cell.mode} | {cell.concurrency} | **failed**: {_one_line(cell.failed)} |")
                continue
            base = cells.get(("direct", cell.mode, cell.concurrency)) if run.name != "direct" else None
            stream = cell.mode == "stream"
            out.append(
                "| "
                + " | ".join(
                    [
                        run.name,
                        cell.mode,
                        str(cell.concurrency),
                        f"{cell.rps:.0f}",
                        _ms(cell.p50_ms),
                        _ms(cell.p99_ms),
                        _added(cell.p50_ms, base.p50_ms) if base else "–",
                        _added(cell.p99_ms, base.p99_ms) if base else "–",
                        _ms(cell.ttfb_p50_ms) if stream else "–",
                        _ms(cell.ttfb_p99_ms) if stream else "–",
                        _added(cell.ttfb_p50_ms, base.ttfb_p50_ms) if base and stream else "–",
                        _added(cell.ttfb_p99_ms, base.ttfb_p99_ms) if base and stream else "–",
                        str(cell.errors),
                        f"{cell.rss_mib:.0f}" if cell.rss_mib is not None else "–",
                        _ms(cell.cpu_ms_per_req),
                    ]
                )
                + " |"
            )
        if run.status == "failed":
            out.append(f"| {run.name} | **failed**: {_one_line(run.reason)} |" + " |" * 13)
    disturbed = [
        f"- {c.target} {c.mode} c={c.concurrency}: other processes used {c.other_cpu or 0:.0%} of a CPU, "
        f"steal {c.steal or 0:.0%}"
        for r in runs
        for c in r.cells
        if (c.other_cpu or 0) > OTHER_CPU_WARN or (c.steal or 0) > OTHER_CPU_WARN
    ]
    out += ["", "## Disturbance", ""]
    if disturbed:
        out += ["Cells during which something else used the CPUs (their numbers are suspect; rerun):", ""]
        out += disturbed
    else:
        out.append(f"No cell saw more than {OTHER_CPU_WARN:.0%} of a CPU used by other processes or stolen.")
    out += ["", "## Targets", ""]
    for run in runs:
        bits = [run.version or "", f"status {run.status}"]
        if run.startup_s is not None:
            bits.append(f"ready {run.startup_s:.1f}s after start")
        if run.idle_rss_mib is not None:
            bits.append(f"RSS idle {run.idle_rss_mib:.0f} MiB")
        if run.peak_rss_mib is not None:
            bits.append(f"peak (VmHWM) {run.peak_rss_mib:.0f} MiB")
        out.append(f"- **{run.name}**: " + ", ".join(b for b in bits if b))
        if run.reason:
            out.append(f"  - reason: {_one_line(run.reason)}")
        for note in run.notes:
            if "\n" in note:
                out.append("  - " + note.splitlines()[0])
                out += ["", "    ```", *("    " + ln for ln in note.splitlines()[1:]), "    ```", ""]
            else:
                out.append(f"  - {note}")
    names = {run.name for run in runs}
    if names & {"unimodel", "litellm"} or not names & set(PLATFORM_TARGETS):
        out += _ratio_and_checks(cells, setup)
    if names & set(PLATFORM_TARGETS):
        out += _platform_section(runs, cells, setup)
    if names & set(API_TARGETS):
        out += _api_section(runs, cells, setup)
    return "\n".join(out) + "\n"


def _api_section(runs: list[TargetRun], cells: dict[tuple[str, str, int], Cell], setup: Setup) -> list[str]:
    """unimodel's other APIs against the same budget as chat completions: added p50 (streaming: added TTFB p50) at
    the lowest concurrency, over the direct chat completion; beside it, what they add over unimodel's own chat."""
    lo = min(setup.concurrency)
    out = [
        "",
        f"## Other APIs through unimodel (added p50 at c={lo} ≤ {TARGET_ADDED_P50_MS:g} ms)",
        "",
        "| target | path | mode | p50 | added p50 | over unimodel chat | TTFB p50 | added TTFB p50 | result |",
        "|---|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for run in runs:
        if run.name not in API_TARGETS:
            continue
        for mode in setup.modes:
            cell, base = cells.get((run.name, mode, lo)), cells.get(("direct", mode, lo))
            chat = cells.get(("unimodel", mode, lo))
            if cell is None or base is None or cell.p50_ms is None or base.p50_ms is None:
                out.append(f"| {run.name} | {API_TARGETS[run.name][0]} | {mode} | not measured |" + " |" * 5)
                continue
            stream = mode == "stream"
            added = (cell.ttfb_p50_ms or 0) - (base.ttfb_p50_ms or 0) if stream else cell.p50_ms - base.p50_ms
            ok = added <= TARGET_ADDED_P50_MS
            row = [
                run.name,
                API_TARGETS[run.name][0],
                mode,
                _ms(cell.p50_ms),
                _added(cell.p50_ms, base.p50_ms),
                _added(cell.p50_ms, chat.p50_ms) if chat and chat.p50_ms else "–",
                _ms(cell.ttfb_p50_ms) if stream else "–",
                _added(cell.ttfb_p50_ms, base.ttfb_p50_ms) if stream else "–",
                "PASS" if ok else "FAIL",
            ]
            out.append("| " + " | ".join(row) + " |")
    return out


def _delta_pct(value: float, base: float) -> str:
    return f"{(value - base) / base:+.1%}" if base else "–"


@dataclass
class Verdict:
    """One platform cell against unimodel-base's."""

    target: str
    mode: str
    conc: int
    base: Cell
    cell: Cell
    added_p50: float  # the median of the paired per-round differences when there were rounds, else the difference
    per_round: list[float]  # target minus base, round by round (empty with one round)
    ok: bool


def platform_verdicts(cells: dict[tuple[str, str, int], Cell], setup: Setup) -> list[Verdict]:
    """Every platform cell that has a unimodel-base cell to compare with."""
    found = []
    for name in PLATFORM_TARGETS[1:]:
        for mode in setup.modes:
            for conc in setup.concurrency:
                base, cell = cells.get(("unimodel-base", mode, conc)), cells.get((name, mode, conc))
                if not base or not cell or base.p50_ms is None or cell.p50_ms is None:
                    continue
                per_round = [
                    t - b
                    for t, b in zip(cell.rounds_p50 or [], base.rounds_p50 or [], strict=False)
                    if t is not None and b is not None
                ]
                if len(per_round) > 1:
                    ordered = sorted(per_round)
                    mid = len(ordered) // 2
                    added = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
                else:
                    added, per_round = cell.p50_ms - base.p50_ms, []
                found.append(Verdict(name, mode, conc, base, cell, added, per_round, added <= PLATFORM_BUDGET_MS))
    return found


def _platform_section(runs: list[TargetRun], cells: dict[tuple[str, str, int], Cell], setup: Setup) -> list[str]:
    out = ["", f"## The platform vs unimodel-base (issue 5: added p50 ≤ {PLATFORM_BUDGET_MS:g} ms)", ""]
    verdicts = platform_verdicts(cells, setup)
    rounds = any(v.per_round for v in verdicts)
    if not verdicts:
        out.append("Nothing to compare: unimodel-base and a platform target were not both measured.")
    else:
        out += [
            "`added` = the target's value minus unimodel-base's at the same mode and concurrency (streaming p50/p99: "
            "to the end of the stream). rps and CPU ms/req: unimodel-base → the target. The budget is checked on "
            "p50 in every cell; at c=16 and c=64 the gateway's core is saturated, so p50 there is mostly queueing "
            "(≈ conc / rps) and its difference measures throughput more than per-request latency."
            + (
                f" With {setup.rounds} rounds: every cell was measured {setup.rounds} times for every target, back to "
                "back; the row shows the median round of each, `added p50` is the median of the paired per-round "
                "differences (listed under `per round`), and the budget is checked on it."
                if rounds
                else ""
            ),
            "",
            "| target | mode | conc | p50 base → target | added p50 |"
            + (" per round |" if rounds else "")
            + " added p99 | added TTFB p50 | rps | CPU ms/req | p50 budget |",
            "|---|---|--:|--:|--:|" + ("--:|" if rounds else "") + "--:|--:|--:|--:|---|",
        ]
        for v in verdicts:
            base, cell = v.base, v.cell
            stream = v.mode == "stream"
            cpu = "–"
            if base.cpu_ms_per_req is not None and cell.cpu_ms_per_req is not None:
                cpu = (
                    f"{base.cpu_ms_per_req:.3f} → {cell.cpu_ms_per_req:.3f} "
                    f"({1000 * (cell.cpu_ms_per_req - base.cpu_ms_per_req):+.0f} µs)"
                )
            row = [
                v.target,
                v.mode,
                str(v.conc),
                f"{_ms(base.p50_ms)} → {_ms(cell.p50_ms)}",
                ("+" if v.added_p50 >= 0 else "") + _ms(v.added_p50),
            ]
            if rounds:
                row.append(" / ".join(("+" if d >= 0 else "") + _ms(d) for d in v.per_round) or "–")
            row += [
                _added(cell.p99_ms, base.p99_ms),
                _added(cell.ttfb_p50_ms, base.ttfb_p50_ms) if stream else "–",
                f"{base.rps:.0f} → {cell.rps:.0f} ({_delta_pct(cell.rps, base.rps)})",
                cpu,
                "PASS" if v.ok else "FAIL",
            ]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        lo = min(setup.concurrency)
        for name in PLATFORM_TARGETS[1:]:
            mine = [v for v in verdicts if v.target == name]
            if not mine:
                continue
            at_lo = [v for v in mine if v.conc == lo]
            added = ", ".join(f"{v.mode} {('+' if v.added_p50 >= 0 else '') + _ms(v.added_p50)} ms" for v in at_lo)
            out.append(
                f"- {name}: c={lo} {'PASS' if all(v.ok for v in at_lo) else 'FAIL'} ({added}); "
                f"all concurrencies: {sum(v.ok for v in mine)} of {len(mine)} cells within budget"
            )
    ledgers = [run for run in runs if run.ledger is not None]
    out += ["", "## Usage ledger", ""]
    if not ledgers:
        out.append("No ledger was checked (no platform target with the ledger on completed).")
        return out
    out += [
        "Read back after each gateway stopped (it writes what it still holds on the way out) with "
        "`unimodel usage --format json --key <key> --config <cfg>`. Clients sent: every chat request of the target's "
        "warm-ups, cells, reruns and probes (a range: wrk does not say how many requests were in flight when it "
        "stopped, at most one per connection). Upstream: chat requests the mock answered on the target's path prefix. "
        "OK = upstream ≤ rows, clients' minimum ≤ rows ≤ clients' maximum, nothing dropped.",
        "",
        "| target | key | clients sent | upstream calls | ledger rows | rows not 200 | dropped | verdict |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for run in ledgers:
        res = run.ledger or {}
        sent = f"{res['sent_min']}" if res["sent_min"] == res["sent_max"] else f"{res['sent_min']}–{res['sent_max']}"
        verdict = res.get("verdict", "?") + (f" ({_one_line(res['problem'])})" if res.get("problem") else "")
        if res.get("verdict") == "OK" and res.get("rows") == res.get("upstream"):
            verdict += ": rows = upstream calls"
        out.append(
            f"| {run.name} | {res['key']} | {sent} | {res.get('upstream', '–')} | {res.get('rows', '–')} | "
            f"{res.get('error_rows', '–')} | {res.get('dropped', '–')} | {verdict} |"
        )
    return out


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return (line[:300] + "…" if len(line) > 300 else line).replace("|", "\\|")


def _ratio_and_checks(cells: dict[tuple[str, str, int], Cell], setup: Setup) -> list[str]:
    out = ["", "## unimodel / LiteLLM throughput", ""]
    rows = []
    for mode in setup.modes:
        for conc in setup.concurrency:
            uni, lite = cells.get(("unimodel", mode, conc)), cells.get(("litellm", mode, conc))
            if uni and lite and lite.rps > 0:
                rows.append(f"| {mode} | {conc} | {uni.rps:.0f} | {lite.rps:.0f} | {uni.rps / lite.rps:.1f}× |")
    if rows:
        out += ["| mode | conc | unimodel rps | litellm rps | ratio |", "|---|--:|--:|--:|--:|", *rows]
    else:
        out.append("No ratio: unimodel and LiteLLM were not both measured.")
    out += ["", "## Issue targets (unimodel)", ""]
    checks: list[tuple[str, float | None, float, str]] = []
    lo, hi = min(setup.concurrency), max(setup.concurrency)
    for mode in setup.modes:
        uni, base = cells.get(("unimodel", mode, lo)), cells.get(("direct", mode, lo))
        if mode == "stream":
            val = uni.ttfb_p50_ms - base.ttfb_p50_ms if uni and base and uni.ttfb_p50_ms and base.ttfb_p50_ms else None
            checks.append((f"added TTFB p50 at c={lo}, {mode}", val, TARGET_ADDED_P50_MS, "ms"))
        else:
            val = uni.p50_ms - base.p50_ms if uni and base and uni.p50_ms and base.p50_ms else None
            checks.append((f"added p50 at c={lo}, {mode}", val, TARGET_ADDED_P50_MS, "ms"))
        uni, base = cells.get(("unimodel", mode, hi)), cells.get(("direct", mode, hi))
        if mode == "stream":
            val = uni.ttfb_p99_ms - base.ttfb_p99_ms if uni and base and uni.ttfb_p99_ms and base.ttfb_p99_ms else None
            checks.append((f"added TTFB p99 at c={hi}, {mode}", val, TARGET_ADDED_P99_MS, "ms"))
        else:
            val = uni.p99_ms - base.p99_ms if uni and base and uni.p99_ms and base.p99_ms else None
            checks.append((f"added p99 at c={hi}, {mode}", val, TARGET_ADDED_P99_MS, "ms"))
        uni, lite = cells.get(("unimodel", mode, hi)), cells.get(("litellm", mode, hi))
        ratio = uni.rps / lite.rps if uni and lite and lite.rps > 0 else None
        checks.append((f"rps unimodel / LiteLLM at c={hi}, {mode}", ratio, TARGET_RPS_RATIO, "×"))
    out += ["| check | value | target | result |", "|---|--:|--:|---|"]
    for name, value, limit, unit in checks:
        if value is None:
            out.append(f"| {name} | – | {'≥' if unit == '×' else '≤'} {limit:g} {unit} | not measured |")
            continue
        ok = value >= limit if unit == "×" else value <= limit
        shown = f"{value:.1f} ×" if unit == "×" else f"{value:+.3f} ms"
        out.append(
            f"| {name} | {shown} | {'≥' if unit == '×' else '≤'} {limit:g} {unit} | {'PASS' if ok else 'FAIL'} |"
        )
    return out


def machine_meta(setup: Setup, args: argparse.Namespace) -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = "absent"
    if shutil.which("wrk"):
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        wrk = (done.stdout + done.stderr).splitlines()[0] if (done.stdout + done.stderr).strip() else "present"
    pinning = (
        f"gateway on CPU {setup.gateway_cpu}; mock upstream, load generator and harness on CPU {setup.client_cpu}"
        if setup.pin
        else "none"
    )
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        "pinning (taskset)": pinning,
        "per cell": f"{setup.duration:g}s after a {setup.warmup:g}s warm-up per mode at c=16 (closed loop, keep-alive)",
        "load generators": f"non-streaming: {'wrk (' + wrk + ')' if setup.loadgen == 'wrk' else 'loadgen.py'}; "
        "streaming: loadgen.py (asyncio + uvloop + httptools)",
        "request": 'POST /v1/chat/completions {"model": …, "messages": [{"role": "user", "content": "Hello"}]}'
        ' (+ "stream": true); mock answers a canned chat.completion / 10-event SSE stream',
        "command": " ".join(["bench/gateway_overhead/run.py", *sys.argv[1:]]),
    }
    if any(name in PLATFORM_TARGETS for name in args.targets.split(",")):
        current = f"src @ {args.platform_rev}" if args.platform_rev else f"working tree src/ ({git_describe()})"
        meta["platform targets"] = (
            f"unimodel-base = src @ {args.base_rev}, the others = {current}; all run as "
            f"`{Path(args.unimodel_bin).parent / 'python'} -m unimodel serve` with PYTHONPATH=<that src>; "
            f"keys targets' key: --rps {args.key_rps:g}; "
            + (
                "measured one after the other"
                if args.no_interleave
                else "measured interleaved (all up at once, each cell for every target back to back, order rotated)"
            )
        )
    return meta


# -------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per cell (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per mode and target (default 3)")
    parser.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma list of {','.join(ALL_TARGETS)} (default {','.join(DEFAULT_TARGETS)})",
    )
    parser.add_argument("--concurrency", default="1,16,64", help="comma list (default 1,16,64)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma list of non-stream,stream")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto", help="non-streaming client")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs with taskset")
    parser.add_argument("--gateway-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU for the mock and the load generators")
    parser.add_argument("--startup-timeout", type=float, default=180.0, help="seconds a gateway may take to answer")
    parser.add_argument("--unimodel-bin", default=str(REPO / ".venv" / "bin" / "unimodel"))
    parser.add_argument("--unimodel-path", default=CHAT_PATH, help="e.g. /models/v2/openai/v1/chat/completions")
    parser.add_argument("--unimodel-api-key", default="sk-bench", help="bearer token sent to unimodel")
    parser.add_argument(
        "--unimodel-config", help="TOML to use instead of the generated one; {mock_base_url} is substituted"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait, before each cell, for other processes to leave the CPUs alone (default 120)",
    )
    parser.add_argument(
        "--retries", type=int, default=2, help="times a cell disturbed by other processes is rerun (default 2)"
    )
    parser.add_argument(
        "--base-rev", default=BASE_REV, help=f"commit whose src/ unimodel-base runs (default {BASE_REV})"
    )
    parser.add_argument(
        "--platform-rev",
        help="commit whose src/ the other platform targets run (default: the working tree's src/)",
    )
    parser.add_argument(
        "--key-rps",
        type=float,
        default=1_000_000,
        help="rate limit of the keys targets' key: high enough never to refuse, so the limiter runs on every request",
    )
    parser.add_argument("--pg-bin", default=str(PG_BIN), help=f"PostgreSQL binaries (default {PG_BIN})")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="platform targets (interleaved): measure every cell this many times; the report keeps the median "
        "round and checks the budget on the median of the paired per-round differences (default 1)",
    )
    parser.add_argument(
        "--no-interleave",
        action="store_true",
        help="measure the platform targets one after the other, like the others, instead of cell by cell",
    )
    parser.add_argument("--no-install", action="store_true", help="never create bench/.venv-litellm")
    parser.add_argument("--out-dir", default=str(BENCH / "out"))
    args = parser.parse_args(argv)
    return args


def helper_python() -> str:
    """An interpreter with httptools (mock and loadgen): this one, else the project's .venv."""
    if importlib.util.find_spec("httptools") is not None:
        return sys.executable
    venv = REPO / ".venv" / "bin" / "python"
    if venv.exists():
        return str(venv)
    raise SystemExit("needs httptools: run with the project's .venv/bin/python (make install)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - set(ALL_TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets: {sorted(unknown)}")
    if "direct" not in targets:
        targets.insert(0, "direct")  # the baseline every `added` column needs
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES):
        raise SystemExit(f"unknown modes: {sorted(set(modes) - set(MODES))}")
    cpus = os.sched_getaffinity(0)
    pin = not args.no_pin and shutil.which("taskset") is not None and {args.gateway_cpu, args.client_cpu} <= cpus
    pin = pin and args.gateway_cpu != args.client_cpu
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    elif loadgen == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk not found (apt-get install wrk), or use --loadgen python")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out_dir) / f"gateway_overhead-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    setup = Setup(
        helper_python=helper_python(),
        pin=pin,
        gateway_cpu=args.gateway_cpu,
        client_cpu=args.client_cpu,
        duration=args.duration,
        warmup=args.warmup,
        concurrency=[int(c) for c in args.concurrency.split(",")],
        modes=modes,
        loadgen=loadgen,
        out=out,
        quiet_wait=max(0.0, args.quiet_wait),
        retries=max(0, args.retries),
        rounds=max(1, args.rounds),
    )
    if pin:
        os.sched_setaffinity(0, {setup.client_cpu})  # keep this harness off the gateway's CPU
    print(f"gateway_overhead: output in {out}", flush=True)
    children = Children()
    runs = [TargetRun(name) for name in targets]
    with interrupts_unwind():
        try:
            mock, mock_port = start_mock(setup, children)
            print(f"[mock] up on {LOOPBACK}:{mock_port}", flush=True)
            interleaved = [] if args.no_interleave else [run for run in runs if run.name in PLATFORM_TARGETS]
            for run in runs:
                if run not in interleaved:
                    bench_target(args, setup, children, mock, mock_port, run)
            if interleaved:
                bench_platform_interleaved(args, setup, children, mock, mock_port, interleaved)
        except KeyboardInterrupt:
            print("interrupted; stopping everything started", flush=True)
            for run in runs:
                if run.status == "pending":
                    run.status, run.reason = "skipped", "interrupted"
        finally:
            children.stop_all()
    report = render(runs, setup, machine_meta(setup, args))
    (out / "report.md").write_text(report)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in runs], indent=2))
    (Path(args.out_dir) / "gateway_overhead-latest.md").write_text(report)
    print()
    print(report)
    print(f"written: {out / 'report.md'}, {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
