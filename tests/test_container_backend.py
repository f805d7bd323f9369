"""The container backend under the controller and the gateway, against real Podman: the same integration cases as
the local backend's (tests/test_controller.py) — cold start, scale out and back to zero, a kill mid-stream, draining
— plus what a container is given: its published port, labels, mounts, environment, log.

Instances are containers of the fake worker's image (tests/fixtures_podman.py), started by the real
ContainerBackend through Podman's Docker-compatible service. Bounds are generous: the machine may be small and busy.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from unimodel.config import OpenModelConfig, RuntimeConfig, Settings
from unimodel.gateway import create_app
from unimodel.gateway.routes_clusters import cluster_status
from unimodel.runtime.backends.container import (
    LABEL_INSTANCE,
    LABEL_MODEL,
    LABEL_OWNER,
    LABEL_SERVER,
    ContainerBackend,
    ContainerInstance,
)
from unimodel.runtime.controller import Controller, Deployment
from unimodel.runtime.policy import Decision, Observation, PolicyConfig, PolicyState

from .fakes.server import LiveServer
from .fixtures_podman import Backends, Podman

pytestmark = pytest.mark.timeout(240)

CHAT = "fake/chat"
FAKE_SERVER = Path(__file__).parent / "worker_fake_openai.py"


def model(model_id: str = CHAT, **overrides: Any) -> OpenModelConfig:
    engine_args = {"load_s": 0.2, **overrides.pop("engine_args", {})}
    fields: dict[str, Any] = {
        "id": model_id,
        "task": "chat",
        "engine": "transformers",
        "max_instances": 1,
        "start_timeout_s": 60,
        "queue_timeout_s": 90,
        "engine_args": engine_args,
        **overrides,
    }
    return OpenModelConfig(**fields)


def simple_policy(config: PolicyConfig, obs: Observation, state: PolicyState) -> Decision:
    """Enough instances for the load now; never fewer until the model has been idle for `idle_timeout_s`."""
    want = math.ceil(obs.concurrency / config.target_concurrency)
    idle = obs.last_request_at is None or obs.now - obs.last_request_at >= config.idle_timeout_s
    if not (obs.concurrency == 0 and idle):
        want = max(want, state.desired)
    desired = min(max(want, config.min_instances), config.max_instances)
    return Decision(desired, PolicyState(desired=desired))


class ManualPolicy:
    def __init__(self, desired: int = 0) -> None:
        self.desired = desired

    def __call__(self, config: PolicyConfig, obs: Observation, state: PolicyState) -> Decision:
        return Decision(self.desired, PolicyState(desired=self.desired))


async def eventually(check: Callable[[], bool], within_s: float = 30.0, what: str = "condition") -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within_s:
            raise AssertionError(f"{what} did not happen within {within_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


ControllerFactory = Callable[..., tuple[Controller, ContainerBackend]]


@pytest.fixture
async def controllers(
    container_backends: Backends, fake_image: str, tmp_path: Path
) -> AsyncIterator[ControllerFactory]:
    made: list[Controller] = []

    def make(
        *models: OpenModelConfig, policy: Any = simple_policy, **runtime: Any
    ) -> tuple[Controller, ContainerBackend]:
        rt = RuntimeConfig(**{"tick_s": 0.2, "log_dir": str(tmp_path / "logs"), "drain_timeout_s": 30, **runtime})
        backend = container_backends({m.id: {"image": fake_image} for m in models}, runtime=rt)
        controller = Controller(Settings(models=list(models), runtime=rt), backend, policy=policy, stop_grace_s=3)
        made.append(controller)
        return controller, backend

    yield make
    for controller in made:
        await controller.aclose()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=60) as c:
        yield c


async def chat(deployment: Deployment, client: httpx.AsyncClient, text: str = "hi", **extra: Any) -> dict[str, Any]:
    async with deployment.lease() as lease:
        response = await client.post(
            lease.address + "/v1/chat/completions", json={"messages": [{"role": "user", "content": text}], **extra}
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        body["instance_id"] = lease.instance_id
        body["address"] = lease.address
        return body


def containers_of(podman: Podman, backend: ContainerBackend) -> list[Any]:
    with podman.client() as engine:
        return engine.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={backend.owner_token}"})


# ── what a container is given ───────────────────────────────────────────────


async def test_a_first_request_starts_a_container_on_a_loopback_port_labelled_mounted_and_logged(
    controllers: ControllerFactory, client: httpx.AsyncClient, podman: Podman, tmp_path: Path, fake_image: str
) -> None:
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"GGUF fake")
    controller, backend = controllers(model(path=str(weights)))
    deployment = controller.deployments[CHAT]

    answer = await chat(deployment, client, "hello")

    assert answer["choices"][0]["message"]["content"] == "echo: hello"
    assert answer["address"].startswith("http://127.0.0.1:")
    instance = deployment.replicas()[0].instance
    assert isinstance(instance, ContainerInstance)
    [container] = containers_of(podman, backend)
    assert container.id == instance.container_id
    assert container.labels[LABEL_SERVER] == backend.server_id
    assert container.labels[LABEL_INSTANCE] == instance.container_name
    assert container.labels[LABEL_MODEL] == CHAT
    assert container.attrs["Config"]["Image"].endswith(fake_image.split("/")[-1])
    bindings = container.attrs["NetworkSettings"]["Ports"]["8000/tcp"]
    assert [(b["HostIp"], f"http://127.0.0.1:{b['HostPort']}") for b in bindings] == [("127.0.0.1", instance.address)]
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert mounts[str(weights)]["Source"] == str(weights)
    assert mounts[str(weights)]["RW"] is False
    # The worker's command line, listening on every address of the container, on its port.
    args = container.attrs["Config"]["Cmd"]
    assert args[args.index("--path") + 1] == str(weights)
    assert args[args.index("--port") + 1] == "8000"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    # Its output is in the instance's log file, as a local instance's is.
    assert instance.log_path is not None and instance.log_path.parent == tmp_path / "logs"
    tail = backend.log_tail(instance)
    assert f"unimodel: container {instance.container_name}" in tail
    assert "fake worker for fake/chat on port 8000" in tail
    assert {"pull", "create", "start"} <= instance.timings.keys()


async def test_the_hugging_face_cache_is_mounted_read_only_at_its_path_and_named_to_the_container(
    container_backends: Backends, fake_image: str, podman: Podman, tmp_path: Path
) -> None:
    cache = tmp_path / "hf-cache"
    snapshot = cache / "models--acme--tiny" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "model.gguf").write_bytes(b"GGUF")
    backend = container_backends({CHAT: {"image": fake_image}}, hf_cache=cache)

    instance = await backend.start(model(path=str(snapshot / "model.gguf")), "cache-1")
    with podman.client() as engine:
        attrs = engine.containers.get(instance.container_id).attrs
    await backend.stop(instance, grace_s=2)

    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in attrs["Mounts"]}
    assert mounts == {str(cache): (str(cache), False)}  # the model's path is inside it: no mount of its own
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert env["HF_HUB_CACHE"] == str(cache)
    assert env["HF_HUB_OFFLINE"] == "1"


async def test_a_container_gets_none_of_the_gateways_secrets_nor_this_machines_paths(
    container_backends: Backends, fake_image: str, podman: Podman, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "UNIMODEL_SECRET_KEY": "gateway-secret-key-0001",
        "UNIMODEL_PROVIDERS__OPENAI__API_KEY": "sk-server-held-0002",
        "HF_TOKEN": "hf_token_0003",
        "AWS_SECRET_ACCESS_KEY": "aws-0004",
    }
    for name, value in {**secrets, "OMP_NUM_THREADS": "1", "ENGINE_LICENSE_FILE": "/etc/engine.lic"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VIRTUAL_ENV", "/host/venv")
    runtime = RuntimeConfig(log_dir=str(tmp_path), pass_env=["ENGINE_LICENSE_FILE", "UNIMODEL_SECRET_KEY"])
    backend = container_backends({CHAT: {"image": fake_image}}, runtime=runtime)
    spec = model(env={"ENGINE_MODE": "fast", "UNIMODEL_PROVIDERS__X__API_KEY": "from-model-env"})

    instance = await backend.start(spec, "env-1")
    with podman.client() as engine:
        attrs = engine.containers.get(instance.container_id).attrs
    await backend.stop(instance, grace_s=2)

    raw = "\n".join(attrs["Config"]["Env"])
    for value in [*secrets.values(), "from-model-env"]:
        assert value not in raw
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert not [name for name in env if name.startswith("UNIMODEL_")]
    assert env["OMP_NUM_THREADS"] == "1" and env["ENGINE_LICENSE_FILE"] == "/etc/engine.lic"
    assert env["ENGINE_MODE"] == "fast"
    assert "VIRTUAL_ENV" not in env  # the host's, meaningless in the image
    assert env["PATH"] != __import__("os").environ["PATH"]  # the image's own PATH, not the host's
    assert env["PYTHONPATH"] == "/opt/fake"  # the image's ENV survives


# ── the controller's cases, on containers ───────────────────────────────────


async def test_from_zero_8_concurrent_requests_scale_to_at_least_2_containers_and_back_to_0(
    controllers: ControllerFactory, client: httpx.AsyncClient, podman: Podman
) -> None:
    spec = model(max_instances=3, idle_timeout_s=2, engine_args={"delay_s": 0.5})
    controller, backend = controllers(spec)
    deployment = controller.deployments[CHAT]
    await controller.start()
    most = 0

    async def sample() -> None:
        nonlocal most
        while True:
            most = max(most, cluster_status(deployment)["instances"])
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    answers = await asyncio.gather(*(chat(deployment, client, f"q{i}") for i in range(8)))

    assert sorted(a["choices"][0]["message"]["content"] for a in answers) == sorted(f"echo: q{i}" for i in range(8))
    assert len({a["instance_id"] for a in answers}) >= 2
    assert 2 <= most <= 3
    assert cluster_status(deployment)["inferences"] == 8
    await eventually(lambda: cluster_status(deployment)["instances"] == 0, within_s=60, what="scale to zero")
    sampler.cancel()
    assert cluster_status(deployment)["status"] == "idle"
    await eventually(lambda: not backend.running(), what="every container stopping")
    await eventually(lambda: not containers_of(podman, backend), what="every container being removed")


async def test_scale_down_drains_a_container_without_losing_its_request(
    controllers: ControllerFactory, client: httpx.AsyncClient
) -> None:
    policy = ManualPolicy(2)
    controller, _backend = controllers(model(max_instances=2), policy=policy)
    deployment = controller.deployments[CHAT]
    await deployment.tick()
    await eventually(lambda: deployment.instances_by_state()["ready"] == 2, what="two ready containers")

    slow = [asyncio.create_task(chat(deployment, client, f"slow{i}", fake_delay_s=2)) for i in range(2)]
    await eventually(lambda: deployment.in_flight == 2, what="both containers busy")
    policy.desired = 1
    await deployment.tick()

    assert deployment.instances_by_state() == {"starting": 0, "ready": 1, "draining": 1}
    draining = next(r for r in deployment.replicas() if r.state == "draining")
    assert draining.instance is not None
    late = asyncio.create_task(chat(deployment, client, "late"))
    answers = await asyncio.gather(*slow, late)

    assert [a["choices"][0]["message"]["content"] for a in answers] == ["echo: slow0", "echo: slow1", "echo: late"]
    assert answers[2]["instance_id"] != draining.id
    await asyncio.wait_for(draining.instance.exited.wait(), 20)  # stopped once its request was done
    assert draining.instance.returncode is not None
    assert deployment.instances_by_state() == {"starting": 0, "ready": 1, "draining": 0}


async def test_stop_kills_a_container_that_ignores_sigterm_after_the_grace_period(
    container_backends: Backends, fake_image: str
) -> None:
    backend = container_backends({CHAT: {"image": fake_image}})
    instance = await backend.start(model(engine_args={"ignore_sigterm": True, "load_s": 0}), "stubborn-1")
    await asyncio.sleep(1.0)  # let it install its SIGTERM handler

    started = time.monotonic()
    await backend.stop(instance, grace_s=1)

    assert time.monotonic() - started >= 0.9
    assert instance.exited.is_set()
    assert instance.returncode == 137  # SIGKILLed, as engines report it
    assert not backend.running()


def test_a_container_killed_mid_stream_ends_the_stream_with_an_error_event_and_is_replaced(
    podman: Podman, fake_image: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        models=[{"id": CHAT, "task": "chat", "idle_timeout_s": 60, "engine_args": {"load_s": 0.2}}],
        runtime={"default_models": False, "log_dir": str(tmp_path), "tick_s": 0.2},
    )
    from unimodel.container_settings import ContainerConfig, ModelContainerConfig

    backend = ContainerBackend(
        ContainerConfig(url=podman.url, labels=podman.labels),
        settings.runtime,
        data_dir=tmp_path / "data",
        model_settings=lambda spec: ModelContainerConfig(image=fake_image),
    )
    body = {"model": CHAT, "messages": [{"role": "user", "content": "one two three four [fake_delay_s=20]"}]}
    with LiveServer(create_app(settings, backend=backend)) as live:
        lines: list[str] = []
        killed = False
        with httpx.stream("POST", live.url + "/v1/chat/completions", json={**body, "stream": True}, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line:
                    continue
                lines.append(line)
                if "echo:" in line and not killed:  # the first words are here: the container dies mid-stream
                    killed = True
                    with podman.client() as engine:
                        [container] = engine.containers.list(filters={"label": f"{LABEL_OWNER}={backend.owner_token}"})
                        container.kill()
        after = httpx.post(
            live.url + "/v1/chat/completions",
            json={**body, "messages": [{"role": "user", "content": "again"}]},
            timeout=60,
        )

    assert killed, lines
    assert any('"echo:' in line for line in lines[:-1]), lines
    assert lines[-1].startswith("data: ") and '"error"' in lines[-1]
    assert "[DONE]" not in "".join(lines)
    assert after.status_code == 200
    assert after.json()["choices"][0]["message"]["content"] == "echo: again"
    assert sorted(p.name for p in tmp_path.glob("*.log")) == ["fake_chat-1.log", "fake_chat-2.log"]  # replaced
    assert "exited unexpectedly (exit code 137)" in caplog.text


async def test_a_container_killed_from_outside_is_seen_to_exit_within_a_second_and_is_removed(
    container_backends: Backends, fake_image: str, podman: Podman
) -> None:
    backend = container_backends({CHAT: {"image": fake_image}})
    instance = await backend.start(model(engine_args={"load_s": 0}), "victim-1")
    await asyncio.sleep(0.5)

    with podman.client() as engine:
        await asyncio.to_thread(engine.containers.get(instance.container_id).kill)
    killed = time.monotonic()
    await asyncio.wait_for(instance.exited.wait(), 10)
    noticed_s = time.monotonic() - killed
    print(f"container killed → exited seen: {noticed_s:.3f} s")

    assert noticed_s < 1.0
    assert instance.returncode == 137
    assert not instance.oom_killed and instance.exit_reason is None
    await eventually(lambda: not containers_of(podman, backend), what="the dead container being removed")


def test_the_config_alone_runs_a_model_in_containers_beside_a_local_one(
    podman: Podman, fake_image: str, tmp_path: Path
) -> None:
    """`unimodel serve` as a user runs it: `[runtime] backend = "container"` and `[runtime.container]` in the TOML,
    one model in containers, one (its own `backend = "local"`) as a process; both answer."""
    from .served import serve

    config = f"""
[hub]
offline = true            # the fake image's model has no files to pull
[runtime.container]
url = "{podman.url}"
image = "{fake_image}"
labels = {{ {", ".join(f'"{k}" = "{v}"' for k, v in podman.labels.items())} }}
[[models]]
id = "{CHAT}"
task = "chat"
engine_args = {{ load_s = 0.2 }}
[models.container]
memory = "256m"
[[models]]
id = "acme/local"
backend = "local"
engine = "command"
command = "{sys.executable} {FAKE_SERVER} --port {{port}} --model {{model}}"
"""
    with serve(tmp_path, config, runtime='backend = "container"\ntick_s = 0.2') as served:
        body = {"model": CHAT, "messages": [{"role": "user", "content": "from a container"}]}
        r = httpx.post(served.url + "/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "echo: from a container"
        with podman.client() as engine:
            mine = engine.containers.list(filters={"label": f"{LABEL_MODEL}={CHAT}"})
            assert len(mine) == 1 and mine[0].attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
        local = httpx.post(
            served.url + "/v1/chat/completions",
            json={"model": "acme/local", "messages": [{"role": "user", "content": "hi"}]},
            timeout=120,
        )
        assert local.status_code == 200, local.text
    with podman.client() as engine:  # a graceful stop removes the server's containers
        assert engine.containers.list(all=True, filters={"label": f"{LABEL_MODEL}={CHAT}"}) == []
