"""Soak: a mixed load against a real `unimodel serve` for a set time, with faults on a schedule, and what it left.

The load (`--concurrency` clients, each request's kind drawn by weight):
  closed       an OpenAI-compatible mock upstream (bench/gateway_overhead/mock_upstream.py) through both surfaces,
               streamed and not;
  open         the bundled SmolLM2-135M (llama.cpp), streamed and not, a few tokens each (scales 0 → 2 instances);
  bad key      a key the server never issued (401);
  bad input    a malformed body (400);
  abandoned    a stream the client reads one chunk of and closes.
Faults: every `--kill-instance-every` seconds one open-model instance gets SIGKILL; at `--gateway-kill-at` (a share of
the run) the gateway itself gets SIGKILL and is started again on the same port, store and config.

Report (printed, and JSON in bench/out/soak/): requests by kind and outcome; errors by status or exception; the
gateway's RSS at its start (after warm-up), end and peak, per incarnation; usage records written against calls the
clients saw answered 200 (matched by request id; a SIGKILL loses what was buffered, at most `flush_interval_s` of
records); instance processes left behind after the gateway's SIGKILL and after the final stop.

    .venv/bin/python bench/soak/run.py --duration 600        # 10 minutes
    .venv/bin/python bench/soak/run.py --duration 60 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import REPO, Children, Proc, child_env, free_port, interrupts_unwind

OUT = REPO / "bench" / "out" / "soak"
PYTHON = str(REPO / ".venv" / "bin" / "python")
OPEN = "HuggingFaceTB/SmolLM2-135M-Instruct"
CLOSED = "openai/gpt-4o-mini"
WORKER_MARK = "unimodel.runtime.worker"

KINDS = {  # kind → weight
    "closed": 30,
    "closed_stream": 20,
    "open": 8,
    "open_stream": 8,
    "bad_key": 10,
    "bad_input": 8,
    "abandoned": 8,
}


@dataclass
class Tally:
    by_kind: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    answered_ok: dict[str, float] = field(default_factory=dict)  # model calls answered 200: request id → when
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    gateway_down: int = 0

    def add(self, kind: str, outcome: str) -> None:
        self.by_kind[(kind, outcome)] += 1


class Gateway:
    """`unimodel serve` on a fixed port; restartable."""

    def __init__(self, children: Children, config: Path, port: int, log: Path) -> None:
        self.children, self.config, self.port, self.log = children, config, port, log
        self.proc: Proc | None = None
        self.down = True  # from a SIGKILL until the new process answers: refusals then are expected
        self.incarnations: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in child_env().items() if not k.startswith("UNIMODEL_")}
        self.proc = self.children.start(
            "gateway", [PYTHON, "-m", "unimodel", "serve", "--config", str(self.config)], self.log, env
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise SystemExit(f"the gateway exited at start:\n{self.proc.log_tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    self.incarnations.append({"pid": self.proc.pid, "rss_mb": []})
                    self.down = False
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit("the gateway did not answer within 120 s")

    def rss_mb(self) -> float | None:
        if self.proc is None or not self.proc.alive():
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def kill(self) -> int:
        assert self.proc is not None
        pid = self.proc.pid
        self.down = True
        os.kill(pid, signal.SIGKILL)
        self.proc.popen.wait()
        self.children.procs.remove(self.proc)
        self.proc.logfile.close()
        self.proc = None
        return pid


def worker_pids() -> list[int]:
    """Every unimodel instance worker on this machine (their command line names the worker module)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if WORKER_MARK in cmdline:
            pids.append(int(entry.name))
    return pids


def write_config(path: Path, port: int, mock_port: int, data: Path, logs: Path) -> None:
    from unimodel.runtime.bundled import smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("SmolLM2 is not installed (make install)")
    path.write_text(
        f"""[server]
port = {port}
log_level = "warning"
[auth]
mode = "keys"
[store]
data_dir = "{data}"
[runtime]
default_models = false
log_dir = "{logs}"
[providers.openai]
base_url = "http://127.0.0.1:{mock_port}/v1"
max_retries = 0
[[models]]
id = "{OPEN}"
task = "chat"
engine = "llama.cpp"
path = "{gguf}"
max_instances = 2
instance_concurrency = 2
idle_timeout_s = 30
engine_args = {{ n_ctx = 512, n_threads = 1 }}
"""
    )


def create_key(config: Path, name: str, admin: bool = False) -> str:
    argv = [PYTHON, "-m", "unimodel", "keys", "create", "--name", name, "--json", "--config", str(config)]
    if admin:
        argv.append("--admin")
    env = {k: v for k, v in child_env().items() if not k.startswith("UNIMODEL_")}
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    key: str = json.loads(out.stdout)["key"]
    return key


async def one_request(client: httpx.AsyncClient, gw: Gateway, key: str, kind: str, n: int, tally: Tally) -> None:
    rid = f"soak-{n}"
    headers = {"authorization": f"Bearer {key}", "provider-key": "sk-soak", "x-request-id": rid}
    messages = [{"role": "user", "content": f"Say something short #{n}"}]
    url = gw.url
    try:
        if kind in ("closed", "open"):
            model = CLOSED if kind == "closed" else OPEN
            if n % 2:
                body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": 8}
                r = await client.post(url + "/v1/chat/completions", json=body, headers=headers)
            else:
                r = await client.post(
                    url + f"/models/v2/{model}",
                    json={"input": messages, "params": {"max_new_tokens": 8}},
                    headers=headers,
                )
            tally.add(kind, str(r.status_code))
            if r.status_code == 200:
                tally.answered_ok[rid] = time.monotonic()
            else:
                tally.errors[f"{kind} {r.status_code} {_code(r)}"] += 1
        elif kind in ("closed_stream", "open_stream", "abandoned"):
            model = CLOSED if kind == "closed_stream" or (kind == "abandoned" and n % 2) else OPEN
            body = {"model": model, "messages": messages, "max_tokens": 8, "stream": True}
            async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
                if kind == "abandoned":
                    async for _ in r.aiter_bytes():
                        break  # and leave
                    tally.add(kind, str(r.status_code))
                    return
                text = b"".join([chunk async for chunk in r.aiter_bytes()])
            ended = b"data: [DONE]" in text
            broke = b'"error"' in text
            outcome = str(r.status_code) if r.status_code != 200 else ("ok" if ended and not broke else "broken")
            tally.add(kind, outcome)
            if r.status_code == 200:
                tally.answered_ok[rid] = time.monotonic()
                if outcome == "broken":
                    tally.errors[f"{kind} stream ended with an error event"] += 1
            else:
                tally.errors[f"{kind} {r.status_code}"] += 1
        elif kind == "bad_key":
            r = await client.post(
                url + "/v1/chat/completions",
                json={"model": CLOSED, "messages": messages},
                headers={**headers, "authorization": "Bearer um_not-a-key-of-this-server"},
            )
            tally.add(kind, str(r.status_code))
            if r.status_code != 401:
                tally.errors[f"bad_key answered {r.status_code}"] += 1
        elif kind == "bad_input":
            r = await client.post(
                url + "/v1/chat/completions", content=b'{"model": "x", "messages": [', headers=headers
            )
            tally.add(kind, str(r.status_code))
            if r.status_code != 400:
                tally.errors[f"bad_input answered {r.status_code}"] += 1
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        down = gw.down
        tally.add(kind, "gateway_down" if down else type(exc).__name__)
        if down:
            tally.gateway_down += 1
        else:
            tally.errors[f"{kind} {type(exc).__name__}"] += 1
    except httpx.TimeoutException as exc:
        tally.add(kind, "timeout")
        tally.errors[f"{kind} {type(exc).__name__}"] += 1


def _code(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return "-"
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("code"))
    return str(body.get("code", "-")) if isinstance(body, dict) else "-"


async def load(gw: Gateway, key: str, concurrency: int, deadline: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0), limits=limits, trust_env=False) as client:

        async def client_loop() -> None:
            while time.monotonic() < deadline:
                kind = rng.choices(kinds, weights)[0]
                await one_request(client, gw, key, kind, next(counter), tally)
                if gw.down:
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))


def faults(gw: Gateway, args: argparse.Namespace, started: float, stop: asyncio.Event, report: dict[str, Any]) -> Any:
    async def run() -> None:
        next_kill = started + args.kill_instance_every
        gateway_kill = started + args.duration * args.gateway_kill_at
        killed_gateway = False
        next_sample = started
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_sample:
                rss = gw.rss_mb()
                if rss is not None and gw.incarnations:
                    gw.incarnations[-1]["rss_mb"].append(round(rss, 1))
                next_sample = now + 5
            if now >= next_kill:
                next_kill = now + args.kill_instance_every
                pids = worker_pids()
                if pids:
                    victim = random.choice(pids)
                    try:
                        os.kill(victim, signal.SIGKILL)
                        report["instances_killed"] += 1
                    except ProcessLookupError:
                        pass
            if not killed_gateway and now >= gateway_kill:
                killed_gateway = True
                before = worker_pids()
                pid = await asyncio.to_thread(gw.kill)
                report["gateway_killed_at_s"] = round(now - started, 1)
                await asyncio.sleep(10)  # the instances' lifelines have this long to notice
                left = sorted(set(before) & set(await asyncio.to_thread(worker_pids)))
                report["orphans_10s_after_gateway_sigkill"] = {"killed_gateway_pid": pid, "workers": left}
                await asyncio.to_thread(gw.start)
                report["gateway_restarted_at_s"] = round(time.monotonic() - started, 1)
            await asyncio.sleep(0.5)

    return run()


def read_ledger(data: Path) -> list[dict[str, Any]]:
    from unimodel.config import StoreConfig
    from unimodel.store import ANY_KEY, Store

    store = Store.open(StoreConfig(data_dir=str(data)), migrate=False)
    try:
        return [
            {"request_id": r.request_id, "status": r.status, "model": r.model}
            for r in store.query_usage(key_id=ANY_KEY, limit=10_000_000)
        ]
    finally:
        store.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = OUT / stamp
    out.mkdir(parents=True, exist_ok=True)
    children = Children()
    report: dict[str, Any] = {
        "started": stamp,
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "instances_killed": 0,
    }
    try:
        mock = children.start(
            "mock",
            [PYTHON, str(REPO / "bench/gateway_overhead/mock_upstream.py"), "--port", str(mock_port := free_port())],
            out / "mock.log",
            child_env(),
        )
        config = out / "unimodel.toml"
        write_config(config, port := free_port(), mock_port, out / "data", out / "instances")
        key = create_key(config, "soak")
        gw = Gateway(children, config, port, out / "gateway.log")
        await asyncio.to_thread(gw.start)
        del mock
        tally = Tally()
        stop = asyncio.Event()
        started = time.monotonic()
        fault_task = asyncio.create_task(faults(gw, args, started, stop, report))
        await load(gw, key, args.concurrency, started + args.duration, tally, args.seed)
        stop.set()
        await fault_task
        rss_end = gw.rss_mb()
        assert gw.proc is not None
        pid = gw.proc.pid
        os.kill(pid, signal.SIGTERM)  # graceful: the ledger writes what it holds
        code = await asyncio.to_thread(gw.proc.popen.wait, 120)
        children.procs.remove(gw.proc)
        await asyncio.sleep(2)
        report["final_stop"] = {"exit_code": code, "workers_left": worker_pids()}
        ledger = read_ledger(out / "data")
        recorded_ok = {r["request_id"] for r in ledger if r["status"] == 200}
        missing = sorted(set(tally.answered_ok) - recorded_ok)
        killed_at = started + report.get("gateway_killed_at_s", float("inf"))
        report["requests"] = {f"{k} {o}": n for (k, o), n in sorted(tally.by_kind.items())}
        report["requests_total"] = sum(tally.by_kind.values())
        report["errors"] = dict(tally.errors.most_common())
        report["refused_while_gateway_down"] = tally.gateway_down
        report["gateway"] = [
            {
                "pid": inc["pid"],
                "rss_start_mb": inc["rss_mb"][0] if inc["rss_mb"] else None,
                "rss_end_mb": inc["rss_mb"][-1] if inc["rss_mb"] else None,
                "rss_peak_mb": max(inc["rss_mb"]) if inc["rss_mb"] else None,
                "rss_every_5s_mb": inc["rss_mb"],
            }
            for inc in gw.incarnations
        ]
        report["gateway"][-1]["rss_at_stop_mb"] = None if rss_end is None else round(rss_end, 1)
        report["usage"] = {
            "answered_200_by_client": len(tally.answered_ok),
            "ledger_records": len(ledger),
            "ledger_records_200": len(recorded_ok),
            "answered_200_without_record": len(missing),
            # a SIGKILL loses the records still buffered (up to [store] flush_interval_s): when were these answered?
            "missing_answered_s_before_gateway_sigkill": sorted(
                round(killed_at - tally.answered_ok[rid], 2) for rid in missing
            )[:50],
        }
        (out / "report.json").write_text(json.dumps(report, indent=2))
        report["out"] = str(out)
        return report
    finally:
        children.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--concurrency", type=int, default=8, help="clients at once (default 8)")
    parser.add_argument("--kill-instance-every", type=float, default=60, help="SIGKILL an instance this often (s)")
    parser.add_argument("--gateway-kill-at", type=float, default=0.5, help="SIGKILL the gateway at this share")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with interrupts_unwind():
        report = asyncio.run(main_async(args))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
