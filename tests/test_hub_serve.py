"""Hub models as a real server has them: `serve --workers 2` pulling a model once for first calls that arrive
through both gateway processes; a client that gives up does not cancel a download; a `[[models]]` table pinning a
Hub revision and file."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from unimodel.config import Settings
from unimodel.gateway import create_app
from unimodel.runtime.bundled import smollm2_gguf
from unimodel.store import Store

from .fakes.hf_hub import FakeHub
from .fakes.server import LiveServer

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="the llama.cpp engine is not installed (make test does)"
)

GGUF_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PINNED_REPO = "acme/SmolLM2-pinned-GGUF"
DECOY_FILE = "SmolLM2-135M-Instruct.Q4_K_M.gguf"  # [hub] gguf_preference's first choice, if `file` were ignored
CHAT = [{"role": "user", "content": "Say hi"}]


def gguf_size() -> int:
    return Path(smollm2_gguf() or "").stat().st_size


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[FakeHub, str]]:
    gguf = smollm2_gguf()
    assert gguf is not None, "the bundled SmolLM2 is not installed (make install)"
    fake = FakeHub()
    fake.add_repo(GGUF_REPO, {GGUF_FILE: gguf, "README.md": "# SmolLM2"})
    repo = fake.add_repo(PINNED_REPO, {GGUF_FILE: gguf, DECOY_FILE: b"not a GGUF: only a name the preference picks"})
    repo.refs["v1"] = repo.sha  # a tag on its one commit
    with LiveServer(fake.app) as server:
        yield fake, server.url


@pytest.fixture(autouse=True)
def healed(hub: tuple[FakeHub, str]) -> Iterator[None]:
    yield
    hub[0].heal()
    hub[0].throttle_bps = None


def wait_for(check: Callable[[], bool], within_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not met within {within_s} s"
        time.sleep(0.05)


def chat_body(max_tokens: int = 4) -> str:
    return json.dumps({"model": GGUF_REPO, "messages": CHAT, "max_tokens": max_tokens})


# --- serve --workers 2 ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


class Workers:
    """`unimodel serve --workers 2` as a subprocess, and which of its gateway processes holds a connection."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, cache: Path) -> None:
        self.process, self.port, self.cache = process, port, cache
        self.url = f"http://127.0.0.1:{port}"

    def owner(self, conn: http.client.HTTPConnection, within_s: float = 20.0) -> int:
        """The pid of the process that accepted `conn` (connected, not yet necessarily accepted): the one holding
        the server side of it (/proc/net/tcp names the socket, /proc/PID/fd who has it)."""
        assert conn.sock is not None
        client_port = conn.sock.getsockname()[1]
        deadline = time.monotonic() + within_s
        while True:
            inode = self._server_side(client_port)
            if inode is not None:
                for pid in descendants(self.process.pid):
                    if _holds(pid, inode):
                        return pid
            assert time.monotonic() < deadline, "no gateway process accepted the connection"
            time.sleep(0.01)

    def _server_side(self, client_port: int) -> int | None:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                ours = int(local.rsplit(":", 1)[1], 16) == self.port
                if state == "01" and ours and int(remote.rsplit(":", 1)[1], 16) == client_port:  # 01: established
                    return int(fields[9])
        return None

    def connect(self) -> tuple[http.client.HTTPConnection, int]:
        """A fresh connection, and the gateway process that accepted it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=240)
        conn.connect()
        return conn, self.owner(conn)

    def spread(self, per_process: int, tries: int = 200) -> dict[int, list[http.client.HTTPConnection]]:
        """`per_process` fresh connections accepted by each of the two gateway processes (the kernel decides who
        accepts: connections are opened until both have enough)."""
        held: dict[int, list[http.client.HTTPConnection]] = {}
        for _ in range(tries):
            if len(held) == 2 and all(len(conns) >= per_process for conns in held.values()):
                return held
            conn, pid = self.connect()
            if len(held.setdefault(pid, [])) < per_process:
                held[pid].append(conn)
            else:
                conn.close()
        raise AssertionError(f"connections landed on {len(held)} gateway process(es) in {tries} tries, not 2")

    def through(self, pid: int, tries: int = 200) -> http.client.HTTPConnection:
        """A fresh connection accepted by gateway process `pid`."""
        for _ in range(tries):
            conn, owner = self.connect()
            if owner == pid:
                return conn
            conn.close()
        raise AssertionError(f"no connection reached gateway process {pid} in {tries} tries")


def _holds(pid: int, inode: int) -> bool:
    wanted = f"socket:[{inode}]"
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == wanted:
                return True
        except OSError:
            continue
    return False


def request(conn: http.client.HTTPConnection, method: str, path: str, body: str | None = None) -> tuple[int, Any]:
    conn.request(method, path, body=body, headers={"content-type": "application/json"} if body else {})
    response = conn.getresponse()
    raw = response.read()
    return response.status, json.loads(raw) if raw else None


@contextmanager
def serve_workers(tmp_path: Path, hub_url: str, redis_url: str) -> Iterator[Workers]:
    port = free_port()
    cache = tmp_path / "hf-cache"
    config = tmp_path / "unimodel.toml"
    config.write_text(
        f"""
[server]
port = {port}
workers = 2
header_timeout_s = 120  # connections wait while the test finds out which process accepted them
[store]
data_dir = "{tmp_path / "data"}"
flush_interval_s = 0.05
[limits]
redis_url = "{redis_url}"
[runtime]
default_models = false
log_dir = "{tmp_path / "logs"}"
tick_s = 0.2
[hub]
endpoint = "{hub_url}"
offline = false
"""
    )
    # no UNIMODEL_* (conftest's offline switch and store folder are for in-process gateways); the cache by the
    # standard variable, as a user would point it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNIMODEL_", "HF_"))}
    env["HF_HUB_CACHE"] = str(cache)
    process = subprocess.Popen([sys.executable, "-m", "unimodel", "serve", "--config", str(config)], env=env)
    workers = Workers(process, port, cache)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"serve exited at start with {process.returncode}"
            try:
                if httpx.get(workers.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve --workers 2 did not come up"
            time.sleep(0.1)
        yield workers
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_concurrent_first_calls_through_both_gateway_processes_share_one_download(
    hub: tuple[FakeHub, str], tmp_path: Path, clean_redis_url: str
) -> None:
    fake, hub_url = hub
    size = gguf_size()
    served_before = fake.served(GGUF_REPO, GGUF_FILE)
    bodies_before = fake.body_starts[f"{GGUF_REPO}/{GGUF_FILE}"]
    fake.throttle_bps = size / 5  # about 5 s of download: the calls and the status checks happen during it
    with serve_workers(tmp_path, hub_url, clean_redis_url) as server:
        held = server.spread(per_process=4)  # 3 first calls and 1 status reader through each process
        gateways = sorted(held)
        calls = [conn for pid in gateways for conn in held[pid][:3]]
        readers = {pid: held[pid][3] for pid in gateways}
        with ThreadPoolExecutor(len(calls)) as pool:
            answers = [pool.submit(request, conn, "POST", "/v1/chat/completions", chat_body()) for conn in calls]
            # while they wait: the cluster status through each process shows the download
            showed: dict[int, dict[str, Any]] = {}
            while len(showed) < 2 and not all(a.done() for a in answers):
                for pid, reader in readers.items():
                    status, doc = request(reader, "GET", f"/models/v2/{GGUF_REPO}")
                    if status == 200 and doc["output"]["status"] == "downloading":
                        showed.setdefault(pid, doc["output"])
                time.sleep(0.1)
            results = [a.result() for a in answers]
        for conn in [*calls, *readers.values()]:
            conn.close()

        assert [status for status, _ in results] == [200] * len(calls), results
        assert all(doc["choices"][0]["message"]["content"] for _, doc in results)
        assert fake.served(GGUF_REPO, GGUF_FILE) - served_before == size  # once, for both processes
        assert fake.body_starts[f"{GGUF_REPO}/{GGUF_FILE}"] - bodies_before == 1
        assert sorted(showed) == gateways, "the status through each gateway process showed the download"
        for shown in showed.values():
            assert shown["download"]["bytesTotal"] == size and shown["download"]["filesTotal"] == 1
        snapshots = list((server.cache / "models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF" / "snapshots").iterdir())
        assert [p.name for p in snapshots[0].iterdir()] == [GGUF_FILE]  # into HF_HUB_CACHE

        # the model runs, once, behind both processes; a second call through each reuses it
        for pid in gateways:
            conn = server.through(pid)
            status, doc = request(conn, "POST", "/v1/chat/completions", chat_body())
            conn.close()
            assert status == 200, doc
        for pid in gateways:
            conn = server.through(pid)
            status, doc = request(conn, "GET", f"/models/v2/{GGUF_REPO}")
            conn.close()
            assert status == 200, doc
            assert doc["output"]["status"] == "running" and doc["output"]["instances"] == 1
            assert doc["output"]["inferences"] == len(calls) + 2
            assert "download" not in doc["output"]
        assert fake.served(GGUF_REPO, GGUF_FILE) - served_before == size


# --- one process (in-process gateways) -----------------------------------------------------------------------


Start = Callable[..., LiveServer]


@pytest.fixture
def start(hub: tuple[FakeHub, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """A gateway on the fake Hub with a cache of this test's own; keyword arguments are config tables (`models`
    a list of `[[models]]` tables)."""
    monkeypatch.delenv("UNIMODEL_HUB__OFFLINE", raising=False)  # conftest keeps other tests off any Hub
    started: list[LiveServer] = []

    def make(models: list[dict[str, Any]] | None = None, **tables: Any) -> LiveServer:
        config: dict[str, Any] = {
            "hub": {"endpoint": hub[1], "cache_dir": str(tmp_path / "cache"), "offline": False},
            "runtime": {"default_models": False, "log_dir": str(tmp_path / "logs"), "tick_s": 0.2},
            "store": {"data_dir": str(tmp_path / "data"), "flush_interval_s": 0.05},
            "models": models or [],
        }
        for name, values in tables.items():
            config[name] = {**config.get(name, {}), **values}
        settings = Settings(**config)
        live = LiveServer(create_app(settings, store=Store.open(settings.store))).start()
        started.append(live)
        return live

    yield make
    for live in started:
        live.stop(timeout_s=20)


def test_a_client_that_gives_up_does_not_cancel_the_download_another_call_then_waits_for(
    start: Start, hub: tuple[FakeHub, str]
) -> None:
    fake, _ = hub
    gateway = start()
    size = gguf_size()
    served_before = fake.served(GGUF_REPO, GGUF_FILE)
    bodies_before = fake.body_starts[f"{GGUF_REPO}/{GGUF_FILE}"]
    fake.throttle_bps = size / 5  # about 5 s of download

    def served() -> int:
        return fake.served(GGUF_REPO, GGUF_FILE) - served_before

    port = int(gateway.url.rsplit(":", 1)[1])
    a = http.client.HTTPConnection("127.0.0.1", port, timeout=240)
    a.request("POST", "/v1/chat/completions", body=chat_body(), headers={"content-type": "application/json"})
    wait_for(lambda: served() > 0, what="the download starting")
    assert a.sock is not None
    a.sock.settimeout(0.5)  # client A's patience runs out mid-download
    with pytest.raises(TimeoutError):
        a.getresponse()
    a.close()
    left_at = served()
    assert 0 < left_at < size

    wait_for(lambda: served() > left_at, within_s=30, what="the download going on with nobody waiting")
    assert served() < size  # B comes while it is still under way
    r = httpx.post(
        gateway.url + "/v1/chat/completions", json={"model": GGUF_REPO, "messages": CHAT, "max_tokens": 4}, timeout=240
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    assert served() == size
    assert fake.body_starts[f"{GGUF_REPO}/{GGUF_FILE}"] - bodies_before == 1  # one body: not restarted


def test_a_configured_hub_model_pinned_to_a_revision_and_file_pulls_them_on_first_call(
    start: Start, hub: tuple[FakeHub, str], tmp_path: Path
) -> None:
    fake, _ = hub
    seen_before = len(fake.requests)
    served_before = fake.served(PINNED_REPO, GGUF_FILE)
    gateway = start(models=[{"id": PINNED_REPO, "revision": "v1", "file": GGUF_FILE}])
    listed = httpx.get(gateway.url + "/models/v2/list/models").json()["output"]
    assert PINNED_REPO in [m["modelId"] for m in listed]
    assert not [r for r in fake.requests[seen_before:] if PINNED_REPO.lower() in r.path.lower()]  # start: no Hub

    r = httpx.post(
        gateway.url + f"/models/v2/{PINNED_REPO}", json={"input": CHAT, "params": {"max_new_tokens": 4}}, timeout=240
    )
    assert r.status_code == 200, r.text
    assert r.json()["output"]["content"].strip()
    asked = [r.path for r in fake.requests[seen_before:] if r.path.startswith("/api/models/")]
    assert asked == [f"/api/models/{PINNED_REPO}/revision/v1"]
    assert fake.served(PINNED_REPO, GGUF_FILE) - served_before == gguf_size()
    assert fake.served(PINNED_REPO, DECOY_FILE) == 0  # the pinned file, not the preferred quantisation
    manifest = json.loads((tmp_path / "cache" / "models--acme--SmolLM2-pinned-GGUF" / "unimodel.json").read_text())
    assert manifest["revision"] == "v1" and manifest["commit"] == fake.repos[PINNED_REPO.lower()].sha
    status = httpx.get(gateway.url + f"/models/v2/{PINNED_REPO}").json()["output"]
    assert status["status"] == "running" and status["instances"] == 1


def test_a_configured_revision_the_hub_does_not_have_is_the_hubs_404_naming_it(
    start: Start, hub: tuple[FakeHub, str]
) -> None:
    fake, hub_url = hub
    seen_before = len(fake.requests)
    served_before = fake.served(PINNED_REPO, GGUF_FILE)
    gateway = start(models=[{"id": PINNED_REPO, "revision": "v9-missing", "file": GGUF_FILE}])
    assert not fake.requests[seen_before:]  # the table is taken at start without asking the Hub
    r = httpx.post(gateway.url + f"/models/v2/{PINNED_REPO}", json={"input": CHAT}, timeout=120)
    assert r.status_code == 404, r.text  # a configuration error: retrying will not help, so no Retry-After
    assert r.json()["code"] == "revision_not_found" and "retry-after" not in r.headers
    message = r.json()["error"]
    assert f"'{PINNED_REPO}' has no revision 'v9-missing' on the Hub at {hub_url}" in message
    assert [q.path for q in fake.requests[seen_before:]] == [f"/api/models/{PINNED_REPO}/revision/v9-missing"]
    assert fake.served(PINNED_REPO, GGUF_FILE) == served_before
    r = httpx.post(gateway.url + "/v1/chat/completions", json={"model": PINNED_REPO, "messages": CHAT}, timeout=120)
    assert r.status_code == 404 and "has no revision 'v9-missing'" in r.json()["error"]["message"]
