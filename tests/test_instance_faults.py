"""Instances failing the way processes fail: one that hangs (SIGSTOP), one killed while it has a request, one that
died before a request reached it, instances outliving a killed gateway, and the gateway's secrets within reach.

Real processes throughout: the fake worker (tests/fakes/fake_worker.py) behind a real gateway on loopback, and
`python -m unimodel serve` as a user starts it, with the real worker running an external server (the command
engine) so that killing the server is seen to take the whole instance with it. Time limits are generous: the
machine may be small and busy; the times measured are printed (`-s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from unimodel.config import OpenModelConfig, RuntimeConfig, Settings
from unimodel.gateway import create_app
from unimodel.runtime.backend import Backend, Instance, LocalBackend, worker_command
from unimodel.runtime.leftovers import process_start_time
from unimodel.runtime.service import Metered, OpenModels

from .fakes.server import LiveServer

FAKE_WORKER = Path(__file__).parent / "fakes" / "fake_worker.py"
FAKE_SERVER = Path(__file__).parent / "worker_fake_openai.py"
CHAT = "acme/faulty"
# Much stricter than the defaults (every 5 s, 5 s, 3 in a row), so a hang is found in a few seconds; the fake
# worker answers /health in a millisecond, so 1 s twice in a row is still generous on a busy machine.
QUICK_HEALTH = {"health_interval_s": 0.2, "health_timeout_s": 1.0, "health_failures": 2}

pytestmark = pytest.mark.timeout(180)

fake_command = functools.partial(worker_command, program=(sys.executable, str(FAKE_WORKER)))


def start_gateway(tmp_path: Path, runtime: dict[str, Any], **model: Any) -> LiveServer:
    spec = {"id": CHAT, "task": "chat", "idle_timeout_s": 60, "engine_args": {"load_s": 0.2}, **model}
    settings = Settings(
        models=[spec], runtime={"default_models": False, "log_dir": str(tmp_path), "tick_s": 0.2, **runtime}
    )
    return LiveServer(create_app(settings, backend=LocalBackend(settings.runtime, command_for=fake_command))).start()


def chat(live: LiveServer, text: str, timeout: float = 60) -> httpx.Response:
    body = {"model": CHAT, "messages": [{"role": "user", "content": text}]}
    return httpx.post(live.url + "/v1/chat/completions", json=body, timeout=timeout)


def wait_for(check: Callable[[], bool], within_s: float = 30.0, what: str = "condition") -> float:
    """Poll `check` until it holds; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within_s:
            raise AssertionError(f"{what} did not happen within {within_s} s")
        time.sleep(0.02)
    return time.monotonic() - started


def gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie waiting for a parent that is gone too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def stats(address: str) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(address + "/stats", timeout=5).json()
    return result


# ── a hung instance ─────────────────────────────────────────────────────────


def test_a_stopped_instance_is_found_by_its_health_checks_killed_and_replaced(tmp_path: Path) -> None:
    live = start_gateway(tmp_path, {**QUICK_HEALTH, "read_timeout_s": 120}, instance_concurrency=2)
    pid = 0
    try:
        deployment = live.app.state.gateway.open.deployment(CHAT)
        began = threading.Event()

        def stream() -> list[str]:
            words = " ".join(f"w{i}" for i in range(40))  # the first word comes after 60/42 s
            body = {
                "model": CHAT,
                "stream": True,
                "messages": [{"role": "user", "content": f"[fake_delay_s=60] {words}"}],
            }
            with httpx.stream("POST", live.url + "/v1/chat/completions", json=body, timeout=90) as r:
                assert r.status_code == 200
                lines = []
                for line in r.iter_lines():
                    lines.append(line)
                    began.set()
                return lines

        with ThreadPoolExecutor(2) as pool:
            plain = pool.submit(chat, live, "[fake_delay_s=60] plain", 90)
            streamed = pool.submit(stream)
            wait_for(began.is_set, what="the stream's first event")
            (replica,) = deployment.replicas()
            assert replica.instance is not None and replica.instance.pid is not None
            pid = replica.instance.pid
            wait_for(lambda: stats(replica.instance.address)["in_flight"] == 2, what="both requests on the instance")
            os.kill(pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            answer = plain.result(timeout=60)
            to_502 = time.monotonic() - stopped_at
            lines = streamed.result(timeout=60)
            to_stream_end = time.monotonic() - stopped_at

        assert answer.status_code == 502, answer.text
        error = answer.json()["error"]
        assert error["code"] == "instance_failed"
        assert "stopped answering its health checks" in error["message"]
        assert to_502 < 30  # found by health checks, not the 120 s read timeout
        assert any('"error"' in line for line in lines) and not any("[DONE]" in line for line in lines)
        metrics = deployment.metrics()
        assert metrics["unresponsive"] == 1 and metrics["crashes"] == 0
        killed_s = wait_for(lambda: gone(pid), within_s=10, what="the stopped process being killed")
        print(
            f"\nSIGSTOP → 502: {to_502:.2f} s; → stream ended: {to_stream_end:.2f} s; process gone after {killed_s:.2f} s more"
        )

        after = chat(live, "after")
        assert after.status_code == 200, after.text
        assert after.json()["choices"][0]["message"]["content"] == "echo: after"
        (new,) = deployment.replicas()
        assert new.id != replica.id and new.instance is not None and new.instance.pid != pid
    finally:
        if pid and not gone(pid):
            os.kill(pid, signal.SIGKILL)
        live.stop(timeout_s=20)


def test_a_busy_instance_that_answers_its_health_checks_is_left_alone(tmp_path: Path) -> None:
    live = start_gateway(tmp_path, {**QUICK_HEALTH, "health_failures": 3})
    try:
        deployment = live.app.state.gateway.open.deployment(CHAT)
        answer = chat(live, "[fake_delay_s=3] busy")
        assert answer.status_code == 200, answer.text
        (replica,) = deployment.replicas()
        assert replica.instance is not None
        assert stats(replica.instance.address)["health_checks"] >= 5  # checked all along, every 0.2 s
        metrics = deployment.metrics()
        assert metrics["unresponsive"] == 0 and metrics["instances_started"] == 1
    finally:
        live.stop(timeout_s=20)


# ── a request and the instance that dies under it ───────────────────────────


def test_a_request_the_instance_had_received_is_a_502_when_it_dies_and_is_not_run_again(tmp_path: Path) -> None:
    live = start_gateway(tmp_path, {})
    try:
        deployment = live.app.state.gateway.open.deployment(CHAT)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(chat, live, "[fake_delay_s=30] once", 90)
            wait_for(lambda: len(deployment.replicas()) == 1 and deployment.in_flight == 1, what="the request leased")
            (replica,) = deployment.replicas()
            assert replica.instance is not None and replica.instance.pid is not None
            wait_for(lambda: stats(replica.instance.address)["in_flight"] == 1, what="the instance having the request")
            os.kill(replica.instance.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            answer = slow.result(timeout=60)
        assert answer.status_code == 502, answer.text
        error = answer.json()["error"]
        assert error["code"] == "instance_failed" and "exit code -9" in error["message"]
        assert time.monotonic() - killed_at < 20  # not re-run on a new instance (that would answer 200 after 30 s)
    finally:
        live.stop(timeout_s=20)


class LateNoticeBackend(Backend):
    """LocalBackend's instances, whose exit the controller learns of only once `notice` is set: a request can be
    routed to an instance that has died, as in the moment between a process's death and its reaping."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.notice = asyncio.Event()
        self.real: dict[str, Instance] = {}
        self._forwards: set[asyncio.Task[None]] = set()

    async def start(self, spec: OpenModelConfig, instance_id: str) -> Instance:
        real = await self.inner.start(spec, instance_id)
        seen = Instance(id=real.id, model_id=real.model_id, address=real.address, pid=real.pid, log_path=real.log_path)
        seen.announced = real.announced
        self.real[instance_id] = real

        async def forward() -> None:
            await real.exited.wait()
            await self.notice.wait()
            seen.returncode = real.returncode
            seen.exited.set()

        task = asyncio.create_task(forward())
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)
        return seen

    async def stop(self, instance: Instance, grace_s: float = 10.0) -> None:
        self.notice.set()
        await self.inner.stop(self.real[instance.id], grace_s)
        await instance.exited.wait()

    def log_tail(self, instance: Instance, lines: int = 20) -> str:
        return self.inner.log_tail(self.real[instance.id], lines)

    async def aclose(self) -> None:
        self.notice.set()
        await self.inner.aclose()


async def test_a_request_that_never_reached_a_dead_instance_runs_on_another(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        models=[{"id": CHAT, "task": "chat", "engine_args": {"load_s": 0.2}}],
        runtime={"default_models": False, "log_dir": str(tmp_path), "tick_s": 0.2},
    )
    backend = LateNoticeBackend(LocalBackend(settings.runtime, command_for=fake_command))
    models = OpenModels(settings, backend)
    await models.start()
    try:
        first = json.loads(await models.openai_passthrough(CHAT, "/v1/completions", {"prompt": "one"}, Metered()))
        (replica,) = models.deployment(CHAT).replicas()
        assert replica.instance is not None and replica.instance.pid is not None
        os.kill(replica.instance.pid, signal.SIGKILL)
        real = backend.real[replica.id]
        await asyncio.wait_for(real.exited.wait(), 30)  # dead and reaped; the controller does not know yet
        caplog.set_level(logging.WARNING, logger="unimodel.runtime")

        second = asyncio.create_task(models.openai_passthrough(CHAT, "/v1/completions", {"prompt": "two"}, Metered()))
        deadline = time.monotonic() + 30
        while not any("before the request reached it" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline and not second.done(), "the request was not refused by the dead instance"
            await asyncio.sleep(0.01)
        backend.notice.set()  # the exit is noticed now, while the request waits to learn whether the instance is gone
        answer = json.loads(await asyncio.wait_for(second, 30))

        assert answer["choices"][0]["text"] == "echo: two"
        assert answer["instance"] != first["instance"]  # run on the replacement
        assert models.deployment(CHAT).metrics()["crashes"] == 1
    finally:
        await models.aclose()


# ── what an instance inherits ───────────────────────────────────────────────


async def test_an_instance_gets_none_of_the_gateways_secrets_but_pass_env_and_its_model_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "UNIMODEL_SECRET_KEY": "gateway-secret-key-0001",
        "UNIMODEL_PROVIDERS__OPENAI__API_KEY": "sk-server-held-0002",
        "HF_TOKEN": "hf_token_0003",
        "AWS_SECRET_ACCESS_KEY": "aws-0004",
        "UNIMODEL_INTERNAL_TOKEN": "internal-0005",
    }
    for name, value in {
        **secrets,
        "HF_HOME": "/srv/hf-home",
        "OMP_NUM_THREADS": "1",
        "LC_ALL": "C.UTF-8",
        "ENGINE_LICENSE_FILE": "/etc/engine.lic",
    }.items():
        monkeypatch.setenv(name, value)
    runtime = RuntimeConfig(log_dir=str(tmp_path), pass_env=["ENGINE_LICENSE_FILE", "UNIMODEL_SECRET_KEY", "UNSET_ONE"])
    spec = OpenModelConfig(
        id=CHAT, task="chat", env={"ENGINE_MODE": "fast", "UNIMODEL_PROVIDERS__X__API_KEY": "from-model-env"}
    )
    backend = LocalBackend(runtime, command_for=fake_command)
    try:
        instance = await backend.start(spec, "env-1")
        assert instance.pid is not None
        raw = await asyncio.to_thread(Path(f"/proc/{instance.pid}/environ").read_bytes)
    finally:
        await backend.aclose()

    environ = dict(entry.split("=", 1) for entry in raw.decode().split("\0") if entry)
    for value in [*secrets.values(), "from-model-env"]:
        assert value not in raw.decode()
    assert sorted(name for name in environ if name.startswith("UNIMODEL_")) == [
        "UNIMODEL_LIFELINE_FD",
        "UNIMODEL_READY_FD",
    ]  # the worker protocol's, and nothing else of the gateway's
    assert "HF_TOKEN" not in environ and "AWS_SECRET_ACCESS_KEY" not in environ and "UNSET_ONE" not in environ
    assert environ["HF_HOME"] == "/srv/hf-home" and environ["OMP_NUM_THREADS"] == "1"
    assert environ["LC_ALL"] == "C.UTF-8" and environ["PATH"] == os.environ["PATH"]
    assert environ["ENGINE_LICENSE_FILE"] == "/etc/engine.lic"  # pass_env
    assert environ["ENGINE_MODE"] == "fast"  # the model's env
    assert environ["PYTHONUNBUFFERED"] == "1"


# ── instances outliving their gateway ───────────────────────────────────────


def record(folder: Path, name: str, pid: int, owner_pid: int, owner_started: int, started: int | None = None) -> Path:
    path = folder / f"{owner_pid}-{name}.json"
    fields = {
        "instance": name,
        "model": CHAT,
        "pid": pid,
        "pgid": pid,
        "started": process_start_time(pid) if started is None else started,
        "owner_pid": owner_pid,
        "owner_started": owner_started,
    }
    path.write_text(json.dumps(fields))
    return path


def test_start_up_stops_what_a_dead_gateway_left_and_leaves_a_live_gateways_instances_alone(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "instances"
    folder.mkdir()
    sleep = ["sleep", "300"]
    dead_owner = subprocess.Popen(sleep)
    dead_owner_started = process_start_time(dead_owner.pid)
    assert dead_owner_started is not None
    dead_owner.kill()
    dead_owner.wait()
    # Each stands for an instance: its own process group, as the local backend starts them.
    left = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)  # with a child in its group
    others = subprocess.Popen(sleep, start_new_session=True)
    reused = subprocess.Popen(sleep, start_new_session=True)
    own_started = process_start_time(os.getpid())
    assert own_started is not None
    try:
        (child_of_left,) = wait_for_children(left.pid)
        left_record = record(folder, "left-1", left.pid, dead_owner.pid, dead_owner_started)
        others_record = record(folder, "others-1", others.pid, os.getpid(), own_started)
        # a record whose pid the system has since given to another process: a different start time
        reused_record = record(folder, "reused-1", reused.pid, dead_owner.pid, dead_owner_started, started=1)

        asyncio.run(LocalBackend(RuntimeConfig(log_dir=str(tmp_path)), state_dir=folder).stop_leftovers())

        assert left.wait(10) == -signal.SIGKILL
        wait_for(lambda: gone(child_of_left), within_s=10, what="the leftover's child dying with its group")
        assert others.poll() is None and reused.poll() is None
        assert not left_record.exists() and not reused_record.exists()
        assert others_record.exists()  # its gateway still runs
    finally:
        for proc in (left, others, reused):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for_children(pid: int) -> set[int]:
    wait_for(lambda: bool(descendants(pid)), within_s=10, what=f"process {pid} starting a child")
    return descendants(pid)


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            for child in map(int, children.read_text().split()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def port_of(argv: list[str]) -> int:
    return int(argv[argv.index("--port") + 1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process, self.url = process, url


class Servers:
    """Starts `python -m unimodel serve` with one command-engine model (the real worker running
    tests/worker_fake_openai.py); `family` collects every process seen under a server, all killed at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []
        self.family: set[int] = set()

    def start(self, *, workers: int = 1, extra: str = "") -> Served:
        port = free_port()
        template = f"{sys.executable} {FAKE_SERVER} --port {{port}} --model {{model}}"
        config = self.tmp_path / "unimodel.toml"
        config.write_text(
            f"""
[server]
port = {port}
workers = {workers}
[store]
data_dir = "{self.tmp_path / "data"}"
[runtime]
default_models = false
log_dir = "{self.tmp_path / "logs"}"
tick_s = 0.2
[[models]]
id = "{CHAT}"
task = "chat"
engine = "command"
command = "{template}"
idle_timeout_s = 600
{extra}
"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNIMODEL_")}
        process = subprocess.Popen([sys.executable, "-m", "unimodel", "serve", "--config", str(config)], env=env)
        self.started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "serve exited at start"
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return Served(process, url)
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)

    def close(self) -> None:
        for process in self.started:
            self.family.update(descendants(process.pid))
            if process.poll() is None:
                process.kill()
            process.wait()
        for pid in self.family:  # whatever is still running (e.g. uvicorn's gateway processes)
            if not gone(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    made = Servers(tmp_path)
    yield made
    made.close()


def instance_processes(server_pid: int) -> tuple[int, int, int, int]:
    """(worker pid, worker port, external server pid, its port) of the one instance under `server_pid`."""
    below = descendants(server_pid)
    (worker,) = [pid for pid in below if "unimodel.runtime.worker" in cmdline(pid)]
    (external,) = [pid for pid in below if str(FAKE_SERVER) in cmdline(pid)]
    return worker, port_of(cmdline(worker)), external, port_of(cmdline(external))


def kill_and_watch(servers: Servers, served: Served) -> float:
    """Start an instance, SIGKILL the server, and wait until the instance's processes and ports are gone; the
    seconds that took."""
    r = httpx.post(served.url + f"/models/v2/{CHAT}", json={"input": "hello"}, timeout=90)
    assert r.status_code == 200, r.text
    worker, worker_port, external, external_port = instance_processes(served.process.pid)
    assert not port_free(worker_port) and not port_free(external_port)
    family = descendants(served.process.pid)
    servers.family.update(family)
    served.process.kill()
    killed_at = time.monotonic()
    served.process.wait()
    wait_for(
        lambda: gone(worker) and gone(external) and port_free(worker_port) and port_free(external_port),
        within_s=30,
        what="the instance dying with its gateway",
    )
    took = time.monotonic() - killed_at
    for pid in family:
        if "runtime-process" in cmdline(pid):
            wait_for(functools.partial(gone, pid), within_s=30, what="the runtime process exiting")
        elif "spawn_main" in " ".join(cmdline(pid)):  # one of uvicorn's gateway processes
            wait_for(functools.partial(gone, pid), within_s=30, what="a gateway process exiting")
    return took


def test_a_killed_server_takes_its_instances_with_it(servers: Servers) -> None:
    took = kill_and_watch(servers, servers.start())
    print(f"\nserve SIGKILLed → worker, its external server and their ports gone in {took:.2f} s")
    assert took < 10


def test_a_killed_multi_process_server_takes_its_runtime_process_and_instances_with_it(
    servers: Servers, clean_redis_url: str
) -> None:
    served = servers.start(workers=2, extra=f'[limits]\nredis_url = "{clean_redis_url}"')
    assert [pid for pid in descendants(served.process.pid) if "runtime-process" in cmdline(pid)]
    took = kill_and_watch(servers, served)
    print(f"\nserve --workers 2 SIGKILLed → runtime process, worker, external server gone in {took:.2f} s")
    assert took < 20
