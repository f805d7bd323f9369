"""`unimodel serve --workers 2`: two gateway processes and one runtime process, as a user starts them.

They share keys and usage through the store and rate limits through a real redis-server; open models run once,
in the runtime process, behind both gateway processes; /metrics aggregates every process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from unimodel.config import StoreConfig
from unimodel.store import Store

from .conftest import OPENAI_KEY, Fake

FAKE_SERVER = Path(__file__).parent / "worker_fake_openai.py"
OPEN_MODEL = "acme/echo"
CHAT = {"messages": [{"role": "user", "content": "hello from many processes"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


class Served:
    def __init__(self, process: subprocess.Popen[bytes], url: str, config: Path, admin_key: str) -> None:
        self.process, self.url, self.config, self.admin_key = process, url, config, admin_key
        self.admin = {"authorization": f"Key {admin_key}"}


@pytest.fixture
def served(tmp_path: Path, clean_redis_url: str, openai_fake: Fake) -> Iterator[Served]:
    port = free_port()
    template = f"{sys.executable} {FAKE_SERVER} --port {{port}} --model {{model}}"
    config = tmp_path / "unimodel.toml"
    config.write_text(
        f"""
[server]
port = {port}
workers = 2
[auth]
mode = "keys"
cache_ttl_s = 0.2
[store]
data_dir = "{tmp_path / "data"}"
flush_interval_s = 0.05
[limits]
redis_url = "{clean_redis_url}"
[providers.openai]
base_url = "{openai_fake.url}/v1"
max_retries = 0
[runtime]
default_models = false
log_dir = "{tmp_path / "logs"}"
tick_s = 0.2
[[models]]
id = "{OPEN_MODEL}"
task = "chat"
engine = "command"
command = "{template}"
max_instances = 1
instance_concurrency = 8
"""
    )
    store = Store.open(StoreConfig(data_dir=str(tmp_path / "data")))  # the file's store (the env names another)
    admin_key = store.create_key("admin", admin=True).secret
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIMODEL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "unimodel", "serve", "--config", str(config)], env=env, cwd=tmp_path
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "serve exited at start"
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "serve --workers 2 did not come up"
        time.sleep(0.1)
    yield Served(process, url, config, admin_key)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_workers_share_keys_limits_usage_and_one_runtime(served: Served) -> None:
    pids_before = descendants(served.process.pid)
    assert len(pids_before) >= 3  # two gateway processes and the runtime process (plus uvicorn's helpers)

    r = httpx.post(served.url + "/models/v2/admin/keys", json={"name": "team", "rps": 0.2}, headers=served.admin)
    assert r.status_code == 201, r.text
    key_id, key = r.json()["output"]["id"], r.json()["output"]["key"]
    headers = {"authorization": f"Bearer {key}", "provider-key": OPENAI_KEY}

    def call(_: int) -> int:
        # a fresh connection each time, so the kernel spreads them over both gateway processes
        return httpx.post(
            served.url + "/v1/chat/completions", json={"model": "openai/gpt-4o", **CHAT}, headers=headers, timeout=30
        ).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(call, range(20)))
    # one request per 5 s for the key across both processes (each process alone would let one through); a burst of 1
    # that refills only after 5 s keeps a slow machine, whose 20 calls spread over a second, from letting a third in
    assert codes.count(200) == 1, codes
    assert codes.count(429) == 19

    time.sleep(5.1)
    r = httpx.post(served.url + f"/models/v2/{OPEN_MODEL}", json={"input": "hi there"}, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    assert "hi there" in r.json()["output"]["content"] and "inference-time" in r.headers

    clusters = httpx.get(served.url + "/models/v2/list/clusters", headers=served.admin).json()["output"]
    assert [c["instances"] for c in clusters if c["modelId"] == OPEN_MODEL] == [1]

    def usage() -> list[dict[str, object]]:
        # (through the admin API: the key itself has used up its one request per 5 s)
        out = httpx.get(served.url + "/models/v2/admin/usage", params={"key": key_id}, headers=served.admin).json()[
            "output"
        ]
        records: list[dict[str, object]] = out["records"]
        return records

    deadline = time.monotonic() + 10
    while len(usage()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    records = usage()
    # the answered closed call and the open call; refused calls never reached a model (they are in /metrics)
    assert len(records) == 2
    assert {r["keyId"] for r in records} == {key_id}
    open_calls = [r for r in records if r["kind"] == "open"]
    assert len(open_calls) == 1 and float(open_calls[0]["inferenceSeconds"]) > 0  # type: ignore[arg-type]

    metrics = httpx.get(served.url + "/metrics", headers=served.admin).text

    def requests_total(*labels: str) -> float:
        return sum(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("unimodel_requests_total{") and all(label in line for label in labels)
        )

    # counted once each, whichever process answered
    assert requests_total('model="openai/gpt-4o"', 'status="200"') == 1
    assert requests_total('status="429"') == 19
    assert 'unimodel_rate_limited_total{limit="rps"} 19.0' in metrics
    # the runtime process copies its controller's figures into the shared gauges every second
    deadline = time.monotonic() + 5
    ready = f'unimodel_open_instances{{model="{OPEN_MODEL}",state="ready"}} 1.0'
    while ready not in httpx.get(served.url + "/metrics", headers=served.admin).text and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready in httpx.get(served.url + "/metrics", headers=served.admin).text

    # revoked through one process, refused by all within the cache period
    assert httpx.delete(served.url + f"/models/v2/admin/keys/{key_id}", headers=served.admin).status_code == 200
    time.sleep(0.5)
    assert {call(i) for i in range(6)} == {401}

    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) in (0, -signal.SIGTERM)
    time.sleep(0.5)
    assert not [
        pid
        for pid in pids_before
        if Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    ]
