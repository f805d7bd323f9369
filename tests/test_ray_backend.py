"""The Ray backend under the controller and the gateway, on a real two-node Ray cluster on loopback
(tests/fixtures_ray.py): the local backend's integration cases — a cold start, scale 0 → ≥ 2 → 0, a kill
mid-stream — with instances pinned to the second node by its custom resource; what an instance is given (its node's
address, its resources, its environment, its log); a model no node can place; weights pulled on the node.

Instances run the fake worker. Bounds are generous: the machine may be small and busy.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from unimodel.config import OpenModelConfig, RuntimeConfig, Settings
from unimodel.gateway import create_app
from unimodel.gateway.routes_clusters import cluster_status
from unimodel.runtime.backends.ray import RayBackend, RayInstance
from unimodel.runtime.controller import Controller, Deployment
from unimodel.runtime.policy import Decision, Observation, PolicyConfig, PolicyState

from .fakes.server import LiveServer
from .fixtures_ray import SECOND_IP, BackendFactory, RayTestCluster

pytestmark = pytest.mark.timeout(240)

PINNED = "acme/pinned"  # its instances need the second node's `second` resource
ON_SECOND = {"num_cpus": 1, "resources": {"second": 1}}


def model(model_id: str = PINNED, **overrides: Any) -> OpenModelConfig:
    fields: dict[str, Any] = {
        "id": model_id,
        "task": "chat",
        "max_instances": 1,
        "start_timeout_s": 60,
        "queue_timeout_s": 90,
        "engine_args": {"load_s": 0.2, **overrides.pop("engine_args", {})},
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


async def eventually(check: Callable[[], bool], within_s: float = 30.0, what: str = "condition") -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within_s:
            raise AssertionError(f"{what} did not happen within {within_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


ControllerFactory = Callable[..., tuple[Controller, RayBackend]]


@pytest.fixture
async def controllers(ray_backends: BackendFactory, tmp_path: Path) -> AsyncIterator[ControllerFactory]:
    made: list[Controller] = []

    def make(*models: OpenModelConfig, tables: dict[str, dict[str, Any]] | None = None, **runtime: Any) -> Any:
        rt = RuntimeConfig(**{"tick_s": 0.2, "log_dir": str(tmp_path / "logs"), "drain_timeout_s": 30, **runtime})
        backend = ray_backends(tables or {m.id: ON_SECOND for m in models}, runtime=rt)
        controller = Controller(
            Settings(models=list(models), runtime=rt), backend, policy=simple_policy, stop_grace_s=3
        )
        made.append(controller)
        return controller, backend

    yield make
    for controller in made:
        await controller.aclose()


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


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


async def test_an_instance_runs_on_the_node_its_resources_pin_it_to_at_that_nodes_address_without_the_gateways_secrets(
    controllers: ControllerFactory, ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "UNIMODEL_SECRET_KEY": "gateway-secret-0001",
        "OPENAI_API_KEY": "sk-provider-0002",
        "HF_TOKEN": "hf_gateway_0003",
        "ENGINE_LICENSE": "licensed-0004",
    }.items():
        monkeypatch.setenv(name, value)
    spec = model(env={"MODEL_FLAG": "on"})
    controller, backend = controllers(spec, pass_env=["ENGINE_LICENSE"])
    deployment = controller.deployments[PINNED]

    async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
        answer = await chat(deployment, client, "hello")

    assert answer["choices"][0]["message"]["content"] == "echo: hello"
    assert answer["address"].startswith(f"http://{SECOND_IP}:")
    instance = deployment.replicas()[0].instance
    assert isinstance(instance, RayInstance)
    assert (instance.node_ip, instance.node_id) == (SECOND_IP, ray_cluster.second_node_id)
    assert instance.placement() == {
        "node": SECOND_IP,
        "nodeId": ray_cluster.second_node_id,
        "resources": {"num_cpus": "1", "second": "1"},
        "actor": instance.actor_name,
    }
    assert instance.actor_name.startswith(backend.prefix)
    assert backend.placements() == {instance.id: instance.placement()}
    # The cluster status says where it runs.
    status = cluster_status(deployment)
    assert status["placements"] == [{"instance": instance.id, "state": "ready", **instance.placement()}]
    assert "pending" not in status
    # The worker's output reaches the instance's log file on the gateway's machine.
    await eventually(lambda: "fake worker for acme/pinned" in backend.log_tail(instance), what="the log mirrored")
    assert f"unimodel: Ray actor {instance.actor_name} on node {SECOND_IP}" in backend.log_tail(instance)
    # Its environment: the allow-list, pass_env and the model's env; none of the gateway's secrets.
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        stats = (await client.get(instance.address + "/stats")).json()
    env = environ_of(stats["pid"])
    assert env["MODEL_FLAG"] == "on" and env["ENGINE_LICENSE"] == "licensed-0004"
    assert not {"UNIMODEL_SECRET_KEY", "OPENAI_API_KEY", "HF_TOKEN"} & env.keys()
    assert not any("0001" in v or "0002" in v or "0003" in v for v in env.values())
    # The second node's own cache, not the gateway's: what describes the gateway's machine is the node's.
    assert env["HF_HUB_CACHE"] == str(ray_cluster.second_hf_cache)


async def test_from_zero_8_concurrent_requests_scale_to_at_least_2_instances_on_the_second_node_and_back_to_0(
    controllers: ControllerFactory, ray_cluster: RayTestCluster
) -> None:
    spec = model(max_instances=3, idle_timeout_s=2, engine_args={"delay_s": 0.5})
    controller, backend = controllers(spec)
    deployment = controller.deployments[PINNED]
    await controller.start()
    most = 0

    async def sample() -> None:
        nonlocal most
        while True:
            most = max(most, cluster_status(deployment)["instances"])
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
        answers = await asyncio.gather(*(chat(deployment, client, f"q{i}") for i in range(8)))

    assert sorted(a["choices"][0]["message"]["content"] for a in answers) == sorted(f"echo: q{i}" for i in range(8))
    assert len({a["instance_id"] for a in answers}) >= 2
    assert {a["address"].split(":")[1] for a in answers} == {f"//{SECOND_IP}"}
    assert 2 <= most <= 3
    await eventually(lambda: cluster_status(deployment)["instances"] == 0, within_s=60, what="scale to zero")
    sampler.cancel()
    await eventually(lambda: not backend.running(), what="every instance ending")
    # Their actors are gone too: nothing holds the second node's resources any more.
    await eventually(lambda: not backend.cluster.names(backend.prefix), what="every actor ending")


def test_a_worker_killed_mid_stream_ends_the_stream_with_an_error_event_and_is_replaced(
    ray_cluster: RayTestCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from .fixtures_ray import FAKE_PROGRAM, HEAD_IP

    settings = Settings(
        models=[{"id": PINNED, "task": "chat", "idle_timeout_s": 60, "engine_args": {"load_s": 0.2}, "ray": ON_SECOND}],
        runtime={
            "default_models": False,
            "log_dir": str(tmp_path),
            "tick_s": 0.2,
            "backend": "ray",
            "ray": {"address": ray_cluster.address, "node_ip_address": HEAD_IP},
        },
        store={"data_dir": str(tmp_path / "data")},
    )
    backend = RayBackend(settings.runtime.ray, settings.runtime, data_dir=tmp_path / "data", program=FAKE_PROGRAM)
    body = {"model": PINNED, "messages": [{"role": "user", "content": "one two three four [fake_delay_s=20]"}]}
    with LiveServer(create_app(settings, backend=backend)) as live:
        lines: list[str] = []
        killed = False
        with httpx.stream("POST", live.url + "/v1/chat/completions", json={**body, "stream": True}, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line:
                    continue
                lines.append(line)
                if "echo:" in line and not killed:  # the first words are here: the worker dies mid-stream
                    killed = True
                    [instance_id] = backend.running()
                    address = backend.placements()[instance_id]
                    assert address["node"] == SECOND_IP
                    pid = httpx.get(backend._tracked[instance_id].instance.address + "/stats").json()["pid"]
                    os.kill(pid, 9)
        after = httpx.post(
            live.url + "/v1/chat/completions",
            json={**body, "messages": [{"role": "user", "content": "again"}]},
            timeout=60,
        )

    assert killed, lines
    assert lines[-1].startswith("data: ") and '"error"' in lines[-1]
    assert "[DONE]" not in "".join(lines)
    assert after.status_code == 200
    assert after.json()["choices"][0]["message"]["content"] == "echo: again"
    assert sorted(p.name for p in tmp_path.glob("*.log")) == ["acme_pinned-1.log", "acme_pinned-2.log"]  # replaced
    assert "exited unexpectedly (exit code -9)" in caplog.text


def test_a_model_no_node_can_place_answers_503_pending_naming_the_resource_and_its_status_says_so(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    from .fixtures_ray import FAKE_PROGRAM, HEAD_IP

    settings = Settings(
        models=[
            {"id": "acme/gpu", "task": "chat", "queue_timeout_s": 30, "ray": {"num_cpus": 1, "num_gpus": 1}},
        ],
        runtime={
            "default_models": False,
            "log_dir": str(tmp_path),
            "backend": "ray",
            "ray": {"address": ray_cluster.address, "node_ip_address": HEAD_IP, "pending_timeout_s": 2},
        },
        store={"data_dir": str(tmp_path / "data")},
    )
    backend = RayBackend(settings.runtime.ray, settings.runtime, data_dir=tmp_path / "data", program=FAKE_PROGRAM)
    body = {"model": "acme/gpu", "messages": [{"role": "user", "content": "hi"}]}
    with LiveServer(create_app(settings, backend=backend)) as live, ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        call = pool.submit(httpx.post, live.url + "/v1/chat/completions", json=body, timeout=60)
        waiting: dict[str, Any] = {}
        while not call.done() and "pending" not in waiting:  # while the request waits, the status says why
            waiting = httpx.get(live.url + "/models/v2/acme/gpu", timeout=10).json()["output"]
            time.sleep(0.05)
        answer = call.result()
        waited = time.monotonic() - started
        status = httpx.get(live.url + "/models/v2/acme/gpu", timeout=10).json()["output"]
        leftover = backend.cluster.names(backend.prefix)

    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "instance_start_failed"
    assert "Pending: no node has num_gpus=1" in error["message"]
    assert "([models.ray] of model 'acme/gpu'; the cluster has 2 live nodes: 127.0.0." in error["message"]
    assert "127.0.0.2 (CPU 4, " in error["message"] and ", second 4, slot 1)" in error["message"]
    assert int(answer.headers["retry-after"]) >= 1
    assert waited < 25  # the pending timeout (2 s), not the queue timeout (30 s)
    assert waiting["status"] == "starting" and waiting["pending"] == "Pending: no node has num_gpus=1"
    assert status["status"] == "failed" and "Pending: no node has num_gpus=1" in status["error"]
    assert "pending" not in status
    assert leftover == []  # the waiting actor was ended, not left queued in Ray


async def test_a_hub_models_weights_are_pulled_on_the_node_that_runs_it_into_that_nodes_cache_once(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    from unimodel.config import HubConfig
    from unimodel.ray_settings import ModelRayConfig, RayConfig
    from unimodel.runtime.bundled import smollm2_gguf

    from .fakes.hf_hub import FakeHub
    from .fixtures_ray import FAKE_PROGRAM, HEAD_IP

    gguf = smollm2_gguf()
    assert gguf is not None, "the bundled SmolLM2 GGUF is not installed (make install)"
    size = gguf.stat().st_size
    hub = FakeHub()
    repo = hub.add_repo("acme/tiny-GGUF", {"tiny.Q4_1.gguf": gguf})
    with LiveServer(hub.app) as server:
        backend = RayBackend(
            RayConfig(address=ray_cluster.address, node_ip_address=HEAD_IP),
            RuntimeConfig(log_dir=str(tmp_path / "logs")),
            data_dir=tmp_path / "data",
            hub=HubConfig(endpoint=server.url, offline=False, token="hf_gateway_secret_0005"),
            program=FAKE_PROGRAM,
            model_settings=lambda spec: ModelRayConfig(num_cpus=0, resources={"second": 1}),
        )
        # The path as the gateway's cache has it (a Hub pull there); the second node has its own cache.
        gateway_path = (
            tmp_path / "gateway-cache" / "models--acme--tiny-GGUF" / "snapshots" / repo.sha / "tiny.Q4_1.gguf"
        )
        spec = model("acme/tiny-GGUF", engine="llama.cpp", path=str(gateway_path))
        try:
            first = await backend.start(spec, "tiny-1")
            on_node = (
                ray_cluster.second_hf_cache / "models--acme--tiny-GGUF" / "snapshots" / repo.sha / "tiny.Q4_1.gguf"
            )
            assert on_node.stat().st_size == size
            async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
                for _ in range(300):  # the fake worker does not announce itself: until it listens
                    try:
                        pid = (await client.get(first.address + "/stats")).json()["pid"]
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            argv = command_line(pid)
            assert argv[argv.index("--path") + 1] == str(on_node)  # the worker loads the node's copy
            pulled = hub.served("acme/tiny-GGUF", "tiny.Q4_1.gguf")
            assert pulled >= on_node.stat().st_size
            assert hub.requests and not any(r.authorized for r in hub.requests)  # the gateway's token stays there
            await backend.stop(first, grace_s=2)

            second = await backend.start(spec, "tiny-2")  # the node has the files now: no second download
            assert second.node_ip == SECOND_IP
            assert hub.served("acme/tiny-GGUF", "tiny.Q4_1.gguf") == pulled
            await backend.stop(second, grace_s=2)
        finally:
            await backend.aclose()
