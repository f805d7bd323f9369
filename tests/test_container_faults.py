"""The container backend when things go wrong, against real Podman: an image that is not there (pull = "never") or
cannot be pulled, a container that exits before it is healthy, one OOM-killed while it has a request, an engine
that cannot be reached, and containers left behind by a server killed with SIGKILL.

Each case goes through a real gateway on loopback (what a client sees) or the backend itself (what the engine has).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from unimodel.config import RuntimeConfig, Settings
from unimodel.container_settings import ContainerConfig, ModelContainerConfig
from unimodel.gateway import create_app
from unimodel.runtime import backends
from unimodel.runtime.backends import LocalBackend
from unimodel.runtime.backends.container import (
    LABEL_OWNER,
    LABEL_SERVER,
    ContainerBackend,
    ContainerEngineUnavailable,
    ContainerImageMissing,
    ContainerImagePullFailed,
)
from unimodel.runtime.backends.local import worker_command

from .fakes.server import LiveServer
from .fixtures_podman import SESSION_LABEL, Backends, Podman

pytestmark = pytest.mark.timeout(240)

CHAT = "acme/contained"
FAKE_WORKER = Path(__file__).parent / "fakes" / "fake_worker.py"
fake_command = functools.partial(worker_command, program=(sys.executable, str(FAKE_WORKER)))


def gateway(tmp_path: Path, backend: ContainerBackend, **model: Any) -> LiveServer:
    spec = {"id": CHAT, "task": "chat", "idle_timeout_s": 60, "start_timeout_s": 60, "engine_args": {"load_s": 0.2}}
    settings = Settings(
        models=[{**spec, **model}], runtime={"default_models": False, "log_dir": str(tmp_path / "logs"), "tick_s": 0.2}
    )
    return LiveServer(create_app(settings, backend=backend))


def container_backend(podman: Podman, tmp_path: Path, **table: Any) -> ContainerBackend:
    return ContainerBackend(
        ContainerConfig(url=podman.url, labels=podman.labels),
        RuntimeConfig(log_dir=str(tmp_path / "logs")),
        data_dir=tmp_path / "data",
        model_settings=lambda spec: ModelContainerConfig(**table),
    )


def chat(live: LiveServer, text: str, model: str = CHAT, timeout: float = 90) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return httpx.post(live.url + "/v1/chat/completions", json=body, timeout=timeout)


# ── images ──────────────────────────────────────────────────────────────────


async def test_a_missing_image_with_pull_never_is_a_503_naming_the_image(
    container_backends: Backends, base_image: str
) -> None:
    backend = container_backends({CHAT: {"image": "localhost/unimodel-no-such-image:1", "pull": "never"}})
    from unimodel.config import OpenModelConfig

    with pytest.raises(ContainerImageMissing) as caught:
        await backend.start(OpenModelConfig(id=CHAT), "missing-1")

    error = caught.value
    assert (error.status, error.code) == (503, "container_image_missing")
    assert "image 'localhost/unimodel-no-such-image:1' of model 'acme/contained' is not in the container engine" in str(
        error
    )
    assert 'pull = "never"' in str(error) and 'set pull = "if-missing"' in str(error)
    assert not backend.running()


def test_a_client_asking_a_model_whose_image_is_missing_gets_a_503_naming_the_image(
    podman: Podman, tmp_path: Path
) -> None:
    backend = container_backend(podman, tmp_path, image="localhost/unimodel-no-such-image:1", pull="never")
    with gateway(tmp_path, backend) as live:
        response = chat(live, "hi")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "instance_start_failed"
    assert "localhost/unimodel-no-such-image:1" in error["message"]
    assert 'pull = "never"' in error["message"]


async def test_an_image_that_cannot_be_pulled_is_a_503_naming_the_image_and_why(container_backends: Backends) -> None:
    from unimodel.config import OpenModelConfig

    image = "127.0.0.1:9/unimodel/nothing-here:1"  # a registry address where nothing listens: fails at once
    backend = container_backends({CHAT: {"image": image, "pull": "if-missing"}})

    started = time.monotonic()
    with pytest.raises(ContainerImagePullFailed) as caught:
        await backend.start(OpenModelConfig(id=CHAT), "unpullable-1")

    assert time.monotonic() - started < 60
    error = caught.value
    assert (error.status, error.code) == (503, "container_image_pull_failed")
    assert f"image '{image}' of model 'acme/contained' could not be pulled" in str(error)
    assert "127.0.0.1:9" in str(error)  # the engine's own reason, naming the registry


# ── containers that die ─────────────────────────────────────────────────────


def test_a_container_that_exits_before_it_is_healthy_is_a_503_with_its_log_tail_in_the_server_log(
    podman: Podman, fake_image: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="unimodel.runtime")
    backend = container_backend(podman, tmp_path, image=fake_image)
    engine_args = {"fail_load": True, "load_s": 0.3}
    tail_logged = re.compile(r"--- last lines of instance acme_contained-\d+'s log ---")
    with gateway(tmp_path, backend, path="/models/missing.gguf", engine_args=engine_args) as live:
        response = chat(live, "hi")
        running = backend.running()
        # the server logs the tail as it marks the start failed; the gateway is not stopped before that is seen
        deadline = time.monotonic() + 10
        while not tail_logged.search(caplog.text) and time.monotonic() < deadline:
            time.sleep(0.05)

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "instance_start_failed"
    assert "instance failed to start: error: model file not found: /models/missing.gguf" in error["message"]
    assert tail_logged.search(caplog.text), caplog.text
    assert "loading acme/contained\nerror: model file not found: /models/missing.gguf" in caplog.text
    assert running == []  # the container is gone (exited, seen, removed)


def test_a_container_oom_killed_mid_request_is_a_502_reported_as_such_and_replaced(
    podman: Podman, fake_image: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = container_backend(podman, tmp_path, image=fake_image, memory="96m")
    with gateway(tmp_path, backend) as live:
        assert chat(live, "warm up").status_code == 200
        failed = chat(live, "eat [hog_mb=400]")
        oom_kills = backend.metrics()
        status = httpx.get(live.url + f"/models/v2/{CHAT}").json()["output"]
        after = chat(live, "after")
        time.sleep(1.5)  # the gateway copies the controller's figures into its metrics every second
        metrics = httpx.get(live.url + "/metrics").text

    assert failed.status_code == 502
    error = failed.json()["error"]
    assert error["code"] == "instance_failed"
    assert "exit code 137" in error["message"] and "running out of memory" in error["message"], error["message"]
    assert status["oomKills"] == 1 and status["crashes"] == 1
    assert f'unimodel_open_instance_crashes_total{{cause="oom_killed",model="{CHAT}"}} 1.0' in metrics
    assert oom_kills == {CHAT: {"oom_kills": 1}}
    log_text = (tmp_path / "logs" / "acme_contained-1.log").read_text()
    assert "fake worker: allocating 400 MiB" in log_text
    assert "was killed for running out of memory (OOMKilled, exit code 137)" in log_text
    assert "raise its memory limit of 96 MiB" in log_text
    assert "killed for running out of memory (OOMKilled; memory limit of 96 MiB)" in caplog.text
    assert after.status_code == 200  # a new container serves
    assert after.json()["choices"][0]["message"]["content"] == "echo: after"
    assert (tmp_path / "logs" / "acme_contained-2.log").exists()


# ── the engine away ─────────────────────────────────────────────────────────


def test_an_unreachable_engine_leaves_the_server_up_container_models_503_naming_the_socket_local_models_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    socket = f"unix://{tmp_path}/no-engine/podman.sock"
    # The container backend as the config makes it; the local one launches the fake worker.
    monkeypatch.setitem(backends.FACTORIES, "local", lambda s: LocalBackend(s.runtime, command_for=fake_command))
    settings = Settings(
        models=[
            {"id": CHAT, "task": "chat", "backend": "container"},
            {"id": "acme/local", "task": "chat", "engine_args": {"load_s": 0.1}},
        ],
        runtime={"default_models": False, "log_dir": str(tmp_path / "logs"), "container": {"url": socket}},
        store={"data_dir": str(tmp_path / "data")},
    )
    with LiveServer(create_app(settings)) as live:
        contained = chat(live, "hi")
        local = chat(live, "still here", model="acme/local")

    assert contained.status_code == 503
    error = contained.json()["error"]
    assert error["code"] == "instance_start_failed"
    assert f"the container engine at {socket} cannot be reached (no socket there)" in error["message"]
    assert "podman system service" in error["message"]
    assert local.status_code == 200
    assert local.json()["choices"][0]["message"]["content"] == "echo: still here"
    assert "containers left by a previous run will be removed once the engine answers" in caplog.text


async def test_an_unreachable_engine_is_an_error_with_status_code_and_the_socket(tmp_path: Path) -> None:
    from unimodel.config import OpenModelConfig

    url = f"unix://{tmp_path}/podman.sock"
    backend = ContainerBackend(ContainerConfig(url=url), RuntimeConfig(), data_dir=tmp_path)
    try:
        with pytest.raises(ContainerEngineUnavailable) as caught:
            await backend.start(OpenModelConfig(id=CHAT), "x-1")
    finally:
        await backend.aclose()
    assert (caught.value.status, caught.value.code) == (503, "container_engine_unavailable")
    assert str(caught.value).startswith(f"the container engine at {url} cannot be reached (no socket there)")


# ── leftovers ───────────────────────────────────────────────────────────────

SERVER = """
import asyncio, sys
from pathlib import Path
from unimodel.config import OpenModelConfig, RuntimeConfig
from unimodel.runtime.backends.container import ContainerBackend
from unimodel.container_settings import ContainerConfig, ModelContainerConfig

url, image, data_dir, logs, label = sys.argv[1:6]

async def main():
    backend = ContainerBackend(
        ContainerConfig(url=url, labels={"test.unimodel.session": label}),
        RuntimeConfig(log_dir=logs),
        data_dir=Path(data_dir),
        model_settings=lambda spec: ModelContainerConfig(image=image),
    )
    instance = await backend.start(OpenModelConfig(id="acme/left", engine_args={"load_s": 0}), "left-1")
    print(instance.container_id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def start_server(podman: Podman, image: str, data_dir: Path, logs: Path) -> tuple[subprocess.Popen[str], str]:
    """A process that starts one container with the backend and then runs until killed; its container's id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, podman.url, image, str(data_dir), str(logs), podman.session],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    container_id = proc.stdout.readline().strip()
    assert len(container_id) == 64, f"the server printed {container_id!r}"
    return proc, container_id


def ids(podman: Podman) -> set[str]:
    with podman.client() as engine:
        found = engine.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={podman.session}"})
        return {c.id for c in found if c.id is not None}


async def test_containers_of_a_sigkilled_server_are_removed_at_its_next_start_and_live_servers_are_left_alone(
    podman: Podman, fake_image: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"  # this server's data folder
    other = tmp_path / "other-data"  # another server's, on the same engine
    logs = tmp_path / "logs"
    killed, left = await asyncio.to_thread(start_server, podman, fake_image, data, logs)
    sharing, shared = await asyncio.to_thread(start_server, podman, fake_image, data, logs)  # same folder, alive
    stranger, strangers = await asyncio.to_thread(start_server, podman, fake_image, other, logs)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=10)
        assert {left, shared, strangers} <= ids(podman)  # SIGKILL leaves the container running

        backend = ContainerBackend(
            ContainerConfig(url=podman.url, labels=podman.labels), RuntimeConfig(log_dir=str(logs)), data_dir=data
        )
        try:
            await backend.stop_leftovers()
            remaining = ids(podman)
            assert backend.running() == []  # removed, not adopted: nothing counts twice
        finally:
            await backend.aclose()
    finally:
        for proc in (sharing, stranger):
            proc.kill()
            proc.wait(timeout=10)

    assert left not in remaining
    assert shared in remaining and strangers in remaining
    assert "left by a run of this server that is gone" in caplog.text
    # The next start after those two die too removes the one of this folder; the other server's is not ours.
    again = ContainerBackend(ContainerConfig(url=podman.url), RuntimeConfig(log_dir=str(logs)), data_dir=data)
    try:
        await again.stop_leftovers()
    finally:
        await again.aclose()
    assert shared not in ids(podman)
    assert strangers in ids(podman)
    with podman.client() as engine:
        container = engine.containers.get(strangers)
        assert container.labels[LABEL_SERVER] != again.server_id
        assert container.labels[LABEL_OWNER] != again.owner_token
        container.remove(force=True)


async def test_closing_the_backend_removes_every_container_of_its_run(
    container_backends: Backends, fake_image: str, podman: Podman
) -> None:
    from unimodel.config import OpenModelConfig

    backend = container_backends({"acme/a": {"image": fake_image}, "acme/b": {"image": fake_image}})
    started = await asyncio.gather(
        backend.start(OpenModelConfig(id="acme/a"), "a-1"), backend.start(OpenModelConfig(id="acme/b"), "b-1")
    )
    mine = {i.container_id for i in started}
    assert mine <= ids(podman)

    await backend.aclose()

    assert all(i.exited.is_set() for i in started)
    assert not (mine & ids(podman))
