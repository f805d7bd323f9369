"""Several gateway machines in front of one runtime process (server.py, docs/ray.md "Several gateway machines"),
played on loopback by two `unimodel serve` processes as a user starts them: the runtime machine
(`UNIMODEL_RUNTIME_LISTEN` + `UNIMODEL_INTERNAL_TOKEN`) and a gateway machine (`UNIMODEL_RUNTIME_URL` + the same
token). An open model runs once, in the runtime machine's process, whichever machine is called; the runtime's port
refuses what carries no token; a gateway with the wrong token, or a weak one, does not start."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from unimodel.gateway.runtime_link import TOKEN_HEADER
from unimodel.server import StartupRefused, remote_runtime

FAKE_SERVER = Path(__file__).parent / "worker_fake_openai.py"
OPEN_MODEL = "acme/echo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, port: int, data_dir: Path, redis_url: str, logs: Path) -> Path:
    template = f"{sys.executable} {FAKE_SERVER} --port {{port}} --model {{model}}"
    path.write_text(
        f"""
[server]
port = {port}
[store]
data_dir = "{data_dir}"
[limits]
redis_url = "{redis_url}"
[runtime]
default_models = false
log_dir = "{logs}"
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
    return path


def serve(config: Path, cwd: Path, **env: str) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("UNIMODEL_")}
    return subprocess.Popen(
        [sys.executable, "-m", "unimodel", "serve", "--config", str(config)],
        env={**base, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (process.stdout.read() if process.stdout else b"").decode()[-2000:]
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not come up"
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Machines:
    def __init__(self, runtime_url: str, here: str, there: str, token: str, config: Path) -> None:
        self.runtime_url, self.here, self.there, self.token, self.config = runtime_url, here, there, token, config


@pytest.fixture
def machines(tmp_path: Path, clean_redis_url: str) -> Iterator[Machines]:
    token = secrets.token_urlsafe(32)
    runtime_port, port_a, port_b = free_port(), free_port(), free_port()
    runtime_url = f"http://127.0.0.1:{runtime_port}"
    a = write_config(tmp_path / "a.toml", port_a, tmp_path / "data-a", clean_redis_url, tmp_path / "logs-a")
    b = write_config(tmp_path / "b.toml", port_b, tmp_path / "data-b", clean_redis_url, tmp_path / "logs-b")
    runtime_machine = serve(
        a, tmp_path, UNIMODEL_RUNTIME_LISTEN=f"127.0.0.1:{runtime_port}", UNIMODEL_INTERNAL_TOKEN=token
    )
    gateway_machine = None
    try:
        wait_up(runtime_machine, f"http://127.0.0.1:{port_a}")
        gateway_machine = serve(b, tmp_path, UNIMODEL_RUNTIME_URL=runtime_url, UNIMODEL_INTERNAL_TOKEN=token)
        wait_up(gateway_machine, f"http://127.0.0.1:{port_b}")
        yield Machines(runtime_url, f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}", token, b)
    finally:
        if gateway_machine is not None:
            stop(gateway_machine)
        stop(runtime_machine)


def test_two_machines_share_one_runtime_process_and_one_instance(machines: Machines, tmp_path: Path) -> None:
    body = {"model": OPEN_MODEL, "messages": [{"role": "user", "content": "hello from two machines"}]}
    for url in (machines.here, machines.there, machines.there, machines.here):
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        assert "hello from two machines" in r.json()["choices"][0]["message"]["content"]

    # One controller: both machines see the same one instance, with all four inferences.
    for url in (machines.here, machines.there):
        [cluster] = [
            c for c in httpx.get(url + "/models/v2/list/clusters").json()["output"] if c["modelId"] == OPEN_MODEL
        ]
        assert cluster["instances"] == 1 and cluster["inferences"] == 4
    assert not (tmp_path / "logs-b").exists()  # the gateway machine started no instance

    # The runtime's port takes only the shared token.
    refused = httpx.get(machines.runtime_url + "/models/v2/list/clusters", timeout=10)
    assert refused.status_code == 403
    wrong = httpx.get(machines.runtime_url + "/models/v2/list/clusters", headers={TOKEN_HEADER: "x" * 43}, timeout=10)
    assert wrong.status_code == 403
    right = httpx.get(machines.runtime_url + "/models/v2/list/clusters", headers={TOKEN_HEADER: machines.token})
    assert right.status_code == 200

    # A gateway machine given another token stops at start, saying why.
    third = serve(
        machines.config,
        tmp_path,
        UNIMODEL_RUNTIME_URL=machines.runtime_url,
        UNIMODEL_INTERNAL_TOKEN=secrets.token_urlsafe(32),
        UNIMODEL_SERVER__PORT=str(free_port()),
    )
    out, _ = third.communicate(timeout=60)
    assert third.returncode != 0
    assert "refused this gateway's UNIMODEL_INTERNAL_TOKEN" in out.decode()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"UNIMODEL_RUNTIME_URL": "http://10.0.0.5:8090", "UNIMODEL_INTERNAL_TOKEN": "short"}, "at least 32"),
        (
            {"UNIMODEL_RUNTIME_URL": "http://10.0.0.5:8090", "UNIMODEL_RUNTIME_LISTEN": "0.0.0.0:8090"},
            "a machine takes one role",
        ),
        ({"UNIMODEL_RUNTIME_URL": "10.0.0.5:8090", "UNIMODEL_INTERNAL_TOKEN": "t" * 32}, "is not a URL"),
        ({"UNIMODEL_RUNTIME_LISTEN": "8090", "UNIMODEL_INTERNAL_TOKEN": "t" * 32}, "is not host:port"),
    ],
)
def test_a_malformed_role_is_refused_at_start(env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UNIMODEL_RUNTIME_URL", "UNIMODEL_RUNTIME_LISTEN", "UNIMODEL_INTERNAL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StartupRefused, match=says):
        remote_runtime()


def test_roles_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UNIMODEL_RUNTIME_URL", "UNIMODEL_RUNTIME_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UNIMODEL_INTERNAL_TOKEN", "t" * 32)
    assert remote_runtime() == (None, None)
    monkeypatch.setenv("UNIMODEL_RUNTIME_LISTEN", "[::]:8090")
    assert remote_runtime() == (None, ("::", 8090))
    monkeypatch.delenv("UNIMODEL_RUNTIME_LISTEN")
    monkeypatch.setenv("UNIMODEL_RUNTIME_URL", "https://runtime.internal:8090/")
    assert remote_runtime() == ("https://runtime.internal:8090", None)
