"""The open-model controller: cold start, queueing, routing, failures, autoscaling and draining.

Most tests run real worker processes on loopback — `tests/fakes/fake_worker.py`, which speaks the worker's
command line and HTTP contract without a model — launched by the real `LocalBackend`. The queue and router tests
use an in-memory backend. The policy is injected (`simple_policy`, `ManualPolicy`), so these tests do not depend
on the real autoscaling policy. Bounds are generous: the machine may be small and busy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from unimodel.config import ConfigError, OpenModelConfig, RuntimeConfig, Settings, load_settings
from unimodel.gateway.routes_clusters import cluster_status, configure_cluster
from unimodel.protocol.errors import InvalidRequest
from unimodel.runtime import backends
from unimodel.runtime.backend import Backend, Instance, LocalBackend, worker_command
from unimodel.runtime.backends import Backends
from unimodel.runtime.controller import (
    Controller,
    Deployment,
    InstanceStartFailed,
    ModelOff,
    QueueFull,
    QueueTimeout,
)
from unimodel.runtime.policy import Decision, Observation, PolicyConfig, PolicyState, decide
from unimodel.runtime.router import LeastLoadedRouter

FAKE_WORKER = Path(__file__).parent / "fakes" / "fake_worker.py"

pytestmark = pytest.mark.timeout(120)


def fake_command(spec: OpenModelConfig, port: int) -> list[str]:
    return worker_command(spec, port, program=(sys.executable, str(FAKE_WORKER)))


def model(model_id: str = "fake/chat", **overrides: Any) -> OpenModelConfig:
    engine_args = {"load_s": 0.3, **overrides.pop("engine_args", {})}
    fields: dict[str, Any] = {
        "id": model_id,
        "task": "chat",
        "engine": "transformers",
        "max_instances": 1,
        "start_timeout_s": 30,
        "queue_timeout_s": 60,
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
    """The test says how many instances there should be."""

    def __init__(self, desired: int = 0) -> None:
        self.desired = desired

    def __call__(self, config: PolicyConfig, obs: Observation, state: PolicyState) -> Decision:
        return Decision(self.desired, PolicyState(desired=self.desired))


async def eventually(check: Callable[[], bool], within_s: float = 20.0, what: str = "condition") -> float:
    """Poll `check` until it holds; the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within_s:
            raise AssertionError(f"{what} did not happen within {within_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


ControllerFactory = Callable[..., Controller]


@pytest.fixture
async def controllers(tmp_path: Path) -> AsyncIterator[ControllerFactory]:
    """Controllers over the real LocalBackend launching the fake worker; all closed at the end."""
    made: list[Controller] = []

    def make(*models: OpenModelConfig, policy: Any = simple_policy, **runtime: Any) -> Controller:
        rt = RuntimeConfig(**{"tick_s": 0.2, "log_dir": str(tmp_path / "logs"), "drain_timeout_s": 30, **runtime})
        settings = Settings(models=list(models), runtime=rt)
        controller = Controller(settings, LocalBackend(rt, command_for=fake_command), policy=policy, stop_grace_s=3)
        made.append(controller)
        return controller

    yield make
    for controller in made:
        await controller.aclose()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as c:
        yield c


async def chat(deployment: Deployment, client: httpx.AsyncClient, text: str = "hi", **extra: Any) -> dict[str, Any]:
    """One request through a lease, the way the gateway makes it; the answer plus which instance served it."""
    async with deployment.lease() as lease:
        response = await client.post(
            lease.address + "/v1/chat/completions", json={"messages": [{"role": "user", "content": text}], **extra}
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        body["instance_id"] = lease.instance_id
        body["queued_s"] = lease.queued_s
        return body


# ── real processes ──────────────────────────────────────────────────────────


async def test_first_request_starts_an_instance_at_once_and_waits_until_it_is_ready(
    controllers: ControllerFactory, client: httpx.AsyncClient
) -> None:
    controller = controllers(model(engine_args={"load_s": 0.5}))  # no tick loop: only the request can start it
    deployment = controller.deployments["fake/chat"]
    assert cluster_status(deployment)["status"] == "idle"
    assert cluster_status(deployment)["instances"] == 0

    answer = await chat(deployment, client, "hello")

    assert answer["choices"][0]["message"]["content"] == "echo: hello"
    assert answer["queued_s"] >= 0.4  # it waited for the load, and was not refused while loading
    status = cluster_status(deployment)
    assert status["status"] == "running"
    assert status["instancesByState"] == {"starting": 0, "ready": 1, "draining": 0}
    assert status["inferences"] == 1
    assert status["lastInference"] is not None
    assert status["instanceSeconds"] > 0
    metrics = controller.metrics()["fake/chat"]
    assert metrics["cold_starts"] == 1
    assert metrics["last_start_s"] >= 0.4


async def test_an_instance_never_gets_more_than_instance_concurrency_requests(
    controllers: ControllerFactory, client: httpx.AsyncClient
) -> None:
    controller = controllers(model(instance_concurrency=2, engine_args={"delay_s": 0.3}))
    deployment = controller.deployments["fake/chat"]
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, deployment.in_flight)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    answers = await asyncio.gather(*(chat(deployment, client, f"r{i}") for i in range(6)))
    sampler.cancel()

    assert sorted(a["choices"][0]["message"]["content"] for a in answers) == [f"echo: r{i}" for i in range(6)]
    assert peak == 2
    address = deployment.replicas()[0].instance.address  # type: ignore[union-attr]
    stats = (await client.get(address + "/stats")).json()
    assert stats["served"] == 6
    assert stats["max_in_flight"] == 2  # what the worker itself saw


async def test_a_model_whose_instance_cannot_load_answers_503_with_the_reason_and_others_keep_serving(
    controllers: ControllerFactory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    broken = model("fake/broken", path="/models/missing.gguf", engine_args={"fail_load": True, "load_s": 0.2})
    controller = controllers(broken, model("fake/good"))
    caplog.set_level(logging.INFO, logger="unimodel.runtime")

    results = await asyncio.gather(
        *(chat(controller.deployments["fake/broken"], client) for _ in range(3)), return_exceptions=True
    )

    for result in results:
        assert isinstance(result, InstanceStartFailed), result
        assert result.status == 503
        assert result.retry_after is not None and result.retry_after >= 1
        assert "instance failed to start: error: model file not found: /models/missing.gguf" in result.message
    assert "error: model file not found: /models/missing.gguf" in caplog.text  # the log tail, in the server log
    status = cluster_status(controller.deployments["fake/broken"])
    assert status["status"] == "failed"
    assert status["instances"] == 0
    assert controller.metrics()["fake/broken"]["start_failures"] == 1
    # Right after the failure a new request is refused at once rather than starting another doomed instance.
    started = time.monotonic()
    with pytest.raises(InstanceStartFailed, match="model file not found"):
        await chat(controller.deployments["fake/broken"], client)
    assert time.monotonic() - started < 0.5
    # The server is fine: the other model serves.
    answer = await chat(controller.deployments["fake/good"], client, "still here")
    assert answer["choices"][0]["message"]["content"] == "echo: still here"


async def test_an_instance_that_never_becomes_ready_times_out_with_a_clear_error(
    controllers: ControllerFactory, client: httpx.AsyncClient
) -> None:
    controller = controllers(model(start_timeout_s=1.0, engine_args={"never_ready": True}))
    deployment = controller.deployments["fake/chat"]

    started = time.monotonic()
    with pytest.raises(InstanceStartFailed) as caught:
        await chat(deployment, client)

    assert 0.9 <= time.monotonic() - started < 10
    assert "instance did not become ready within 1 s (start_timeout_s)" in caught.value.message
    assert caught.value.status == 503
    backend = controller.backend
    assert isinstance(backend, LocalBackend)
    await eventually(lambda: not backend.running(), what="the stuck instance being stopped")


async def test_an_instance_killed_mid_stream_is_noticed_within_a_second_and_the_next_request_succeeds(
    controllers: ControllerFactory, client: httpx.AsyncClient
) -> None:
    controller = controllers(model(engine_args={"load_s": 0.2}))
    deployment = controller.deployments["fake/chat"]
    waiting: asyncio.Task[dict[str, Any]] | None = None

    async with deployment.lease() as lease:
        body = {"messages": [{"role": "user", "content": "one two three four five six"}], "stream": True}
        async with client.stream("POST", lease.address + "/v1/chat/completions", json={**body, "fake_delay_s": 6}) as r:
            lines = r.aiter_lines()
            assert (await anext(lines)).startswith("data: ")
            # A request waiting for the (only) slot while the instance dies must not be hurt.
            waiting = asyncio.create_task(chat(deployment, client, "after"))
            await eventually(lambda: deployment.queue_depth == 1, what="the second request queueing")
            pid = deployment.replicas()[0].instance.pid  # type: ignore[union-attr]
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            noticed_s = await eventually(lambda: deployment.metrics()["crashes"] == 1, what="the crash being noticed")
            with pytest.raises(httpx.HTTPError):
                async for _ in lines:
                    pass
        assert await lease.instance_gone()
        assert lease.failed
        error = lease.failure()
        assert error.status == 502
        assert error.code == "instance_failed"
        assert "exit code -9" in error.message

    assert noticed_s < 1.0
    after = await asyncio.wait_for(waiting, 30)
    assert after["choices"][0]["message"]["content"] == "echo: after"
    assert after["instance_id"] != lease.instance_id  # served by the replacement
    again = await chat(deployment, client, "again")
    assert again["choices"][0]["message"]["content"] == "echo: again"


async def test_an_instance_that_exits_between_requests_is_replaced_by_the_next_request(
    controllers: ControllerFactory, client: httpx.AsyncClient
) -> None:
    controller = controllers(model(engine_args={"exit_after": 2}))
    deployment = controller.deployments["fake/chat"]
    first = [await chat(deployment, client, f"r{i}") for i in range(2)]
    assert first[0]["instance_id"] == first[1]["instance_id"]
    await eventually(lambda: deployment.metrics()["crashes"] == 1, what="the exit being noticed")
    assert cluster_status(deployment)["instances"] == 0

    third = await chat(deployment, client, "r2")

    assert third["choices"][0]["message"]["content"] == "echo: r2"
    assert third["instance_id"] != first[0]["instance_id"]
    assert deployment.metrics()["instances_started"] == 2


async def test_from_zero_8_concurrent_requests_scale_out_then_back_to_zero_when_idle(
    controllers: ControllerFactory, client: httpx.AsyncClient
) -> None:
    """The integration case of the issue: max_instances 3, instance_concurrency 1, idle timeout 2 s, tick 0.2 s."""
    spec = model(max_instances=3, instance_concurrency=1, idle_timeout_s=2, engine_args={"delay_s": 0.5})
    controller = controllers(spec, tick_s=0.2)
    deployment = controller.deployments["fake/chat"]
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
    assert most >= 2
    assert most <= 3
    assert cluster_status(deployment)["inferences"] == 8
    await eventually(lambda: cluster_status(deployment)["instances"] == 0, within_s=30, what="scale to zero")
    sampler.cancel()
    status = cluster_status(deployment)
    assert status["status"] == "idle"
    assert status["capacity"] == {"min": 0, "desired": 0, "max": 3}
    backend = controller.backend
    assert isinstance(backend, LocalBackend)
    await eventually(lambda: not backend.running(), what="every instance process exiting")


async def test_idle_time_counts_from_when_the_last_request_finished_not_from_its_arrival(
    controllers: ControllerFactory, client: httpx.AsyncClient
) -> None:
    """A request longer than the idle timeout: the model keeps its instance for the idle timeout after it ends."""
    controller = controllers(model(idle_timeout_s=2, engine_args={"load_s": 0.2}), policy=decide, tick_s=0.1)
    deployment = controller.deployments["fake/chat"]
    await controller.start()

    await chat(deployment, client, "long", fake_delay_s=3)  # runs 3 s, past the 2 s idle timeout
    finished = time.monotonic()

    await asyncio.sleep(1)  # several ticks: the bug drained it at the first one
    assert deployment.instances_by_state()["ready"] == 1
    await eventually(lambda: cluster_status(deployment)["instances"] == 0, within_s=20, what="scale to zero")
    assert time.monotonic() - finished >= 1.9


async def test_scale_down_drains_an_instance_without_losing_its_request(
    controllers: ControllerFactory, client: httpx.AsyncClient
) -> None:
    policy = ManualPolicy(2)
    controller = controllers(model(max_instances=2), policy=policy)
    deployment = controller.deployments["fake/chat"]
    await deployment.tick()
    await eventually(lambda: deployment.instances_by_state()["ready"] == 2, what="two ready instances")

    slow = [asyncio.create_task(chat(deployment, client, f"slow{i}", fake_delay_s=1.5)) for i in range(2)]
    await eventually(lambda: deployment.in_flight == 2, what="both instances busy")
    policy.desired = 1
    await deployment.tick()

    assert deployment.instances_by_state() == {"starting": 0, "ready": 1, "draining": 1}
    draining = next(r for r in deployment.replicas() if r.state == "draining")
    assert draining.instance is not None
    # A new request never goes to the draining instance.
    late = asyncio.create_task(chat(deployment, client, "late"))
    answers = await asyncio.gather(*slow, late)

    assert [a["choices"][0]["message"]["content"] for a in answers] == ["echo: slow0", "echo: slow1", "echo: late"]
    assert answers[2]["instance_id"] != draining.id
    await asyncio.wait_for(draining.instance.exited.wait(), 10)  # stopped once its request was done
    assert deployment.instances_by_state() == {"starting": 0, "ready": 1, "draining": 0}


async def test_stop_kills_an_instance_that_ignores_sigterm_after_the_grace_period(tmp_path: Path) -> None:
    backend = LocalBackend(RuntimeConfig(log_dir=str(tmp_path)), command_for=fake_command)
    instance = await backend.start(model(engine_args={"ignore_sigterm": True, "load_s": 0}), "stubborn-1")
    await asyncio.sleep(0.5)  # let it install its SIGTERM handler

    started = time.monotonic()
    await backend.stop(instance, grace_s=0.5)

    assert time.monotonic() - started >= 0.45
    assert instance.exited.is_set()
    assert instance.returncode == -signal.SIGKILL
    assert "fake worker for fake/chat" in backend.log_tail(instance)
    assert instance.log_path is not None and instance.log_path.parent == tmp_path
    await backend.aclose()


def test_the_worker_command_line_follows_the_contract() -> None:
    spec = model(
        "org/name",
        engine="llama.cpp",
        path="/m/x.gguf",
        engine_args={"n_ctx": 2048, "flash": True, "load_s": 0.1},
    )
    argv = worker_command(spec, 9001)
    assert argv[:3] == [sys.executable, "-m", "unimodel.runtime.worker"]
    assert argv[3:] == [
        "--engine", "llama.cpp", "--task", "chat", "--model-id", "org/name", "--path", "/m/x.gguf", "--port", "9001",
        "--engine-arg", "load_s=0.1", "--engine-arg", "n_ctx=2048", "--engine-arg", "flash=true",
    ]  # fmt: skip
    assert "--command" not in argv
    external = OpenModelConfig(
        id="ext", engine="command", command="llama-server --port {port}", health_path="/v1/models", start_timeout_s=90
    )
    assert worker_command(external, 7)[-6:] == [
        "--command", "llama-server --port {port}", "--health-path", "/v1/models", "--start-timeout", "90",
    ]  # fmt: skip


def test_a_models_old_runtime_key_still_names_its_engine_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="unimodel.config")
    spec = OpenModelConfig.model_validate({"id": "org/old", "runtime": "llama.cpp", "path": "/m/x.gguf"})
    assert (spec.engine, spec.runtime) == ("llama.cpp", "llama.cpp")
    assert "engine" in spec.model_fields_set  # a Hub table's own choice is still seen as the table's
    assert 'model \'org/old\': `runtime = "llama.cpp"` is deprecated; call it `engine = "llama.cpp"`' in caplog.text
    with pytest.raises(ValidationError, match="give only `engine`"):
        OpenModelConfig.model_validate({"id": "org/old", "runtime": "llama.cpp", "engine": "llama.cpp"})


def test_the_backend_is_chosen_by_name_and_an_unknown_name_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "unimodel.toml"
    path.write_text('[runtime]\nbackend = "container"\n[[models]]\nid = "acme/here"\npath = "/m"\nbackend = "local"\n')
    settings = load_settings(path)
    assert settings.runtime.backend == "container" and settings.models[0].backend == "local"
    path.write_text('[runtime]\nbackend = "ray"\n')
    assert load_settings(path).runtime.backend == "ray"
    path.write_text('[runtime]\nbackend = "kubernetes"\n')
    with pytest.raises(ConfigError, match=r"runtime.backend: Input should be 'local', 'container' or 'ray'"):
        load_settings(path)
    assert RuntimeConfig().backend == "local"


# ── in memory: queue, router, scaling decisions ─────────────────────────────


class MemoryBackend(Backend):
    """Instances that exist only as records; `/health` answers 200 for those in `healthy`."""

    def __init__(self, *, ready_at_once: bool = True) -> None:
        self.ready_at_once = ready_at_once
        self.healthy: set[str] = set()
        self.started: list[Instance] = []
        self.stopped: list[str] = []

    async def start(self, spec: OpenModelConfig, instance_id: str) -> Instance:
        instance = Instance(id=instance_id, model_id=spec.id, address=f"http://{instance_id}.test")
        self.started.append(instance)
        if self.ready_at_once:
            self.healthy.add(instance_id)
        return instance

    async def stop(self, instance: Instance, grace_s: float = 10.0) -> None:
        self.stopped.append(instance.id)
        self.healthy.discard(instance.id)
        instance.returncode = -signal.SIGTERM
        instance.exited.set()

    def log_tail(self, instance: Instance, lines: int = 20) -> str:
        return ""

    def transport(self) -> httpx.MockTransport:
        def health(request: httpx.Request) -> httpx.Response:
            instance_id = request.url.host.removesuffix(".test")
            return httpx.Response(200 if instance_id in self.healthy else 503)

        return httpx.MockTransport(health)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


MemoryFactory = Callable[..., Awaitable[tuple[Deployment, MemoryBackend]]]


@pytest.fixture
async def memory() -> AsyncIterator[MemoryFactory]:
    """Deployments over a MemoryBackend, health checks answered in memory; all shut down at the end."""
    made: list[tuple[Deployment, httpx.AsyncClient]] = []

    async def make(
        spec: OpenModelConfig | None = None,
        *,
        policy: Any = None,
        clock: Callable[[], float] = time.monotonic,
        **runtime: Any,
    ) -> tuple[Deployment, MemoryBackend]:
        backend = MemoryBackend()
        http = httpx.AsyncClient(transport=backend.transport())
        deployment = Deployment(
            spec or model("m"),
            RuntimeConfig(**runtime),
            backend,
            policy=policy or ManualPolicy(0),
            clock=clock,
            http=http,
        )
        made.append((deployment, http))
        return deployment, backend

    yield make
    for deployment, http in made:
        await deployment.shutdown()
        await http.aclose()


async def test_each_model_runs_on_its_own_backend_else_the_runtime_one(monkeypatch: pytest.MonkeyPatch) -> None:
    local, boxes = MemoryBackend(), MemoryBackend()
    monkeypatch.setitem(backends.FACTORIES, "local", lambda settings: local)
    monkeypatch.setitem(backends.FACTORIES, "container", lambda settings: boxes)  # as if wired in
    always_healthy = httpx.MockTransport(lambda request: httpx.Response(200))
    rounds = {"local": (["acme/plain"], ["acme/boxed"]), "container": ([], ["acme/plain", "acme/boxed"])}

    for default, (on_local, in_boxes) in rounds.items():
        local.started.clear()
        boxes.started.clear()
        settings = Settings(
            models=[model("acme/plain"), model("acme/boxed", backend="container")], runtime={"backend": default}
        )
        async with httpx.AsyncClient(transport=always_healthy) as http:
            controller = Controller(settings, Backends.from_settings(settings), policy=ManualPolicy(0), http=http)
            for model_id in ("acme/plain", "acme/boxed"):
                (await controller.deployments[model_id].acquire()).release()
            await controller.aclose()

        assert controller.backend is (local if default == "local" else boxes)
        assert [i.model_id for i in local.started] == on_local
        assert [i.model_id for i in boxes.started] == in_boxes


class Node:
    def __init__(self, name: str, in_flight: int = 0, served: int = 0, routable: bool = True) -> None:
        self.name, self.in_flight, self.served, self.routable = name, in_flight, served, routable


def test_router_picks_the_least_loaded_ready_instance_below_the_limit() -> None:
    router = LeastLoadedRouter()
    nodes = [Node("busy", 2), Node("light", 1), Node("draining", 0, routable=False)]
    assert router.pick(nodes, limit=3) is nodes[1]
    assert router.pick([Node("full", 3), Node("draining", 0, routable=False)], limit=3) is None
    assert router.pick([Node("old", 0, served=9), Node("new", 0, served=1)], limit=1).name == "new"  # type: ignore[union-attr]
    tied = [Node("a"), Node("b")]
    assert {router.pick(tied, limit=1).name for _ in range(4)} == {"a", "b"}  # type: ignore[union-attr]


async def test_requests_go_to_the_least_loaded_instance(memory: MemoryFactory) -> None:
    deployment, _ = await memory(model("m", instance_concurrency=2, max_instances=2), policy=ManualPolicy(2))
    await deployment.tick()
    await eventually(lambda: deployment.instances_by_state()["ready"] == 2, what="two ready instances")

    a = await deployment.acquire()
    b = await deployment.acquire()
    assert a.instance_id != b.instance_id  # 0 in flight beats 1
    c = await deployment.acquire()  # a tie: either
    d = await deployment.acquire()  # 1 in flight beats c's 2
    assert d.instance_id != c.instance_id
    assert sorted(r.in_flight for r in deployment.replicas()) == [2, 2]
    for lease in (a, b, c, d):
        lease.release()


async def test_waiting_requests_are_served_in_arrival_order(memory: MemoryFactory) -> None:
    deployment, _ = await memory(model("m", instance_concurrency=1), policy=ManualPolicy(1))
    holder = await deployment.acquire()
    order: list[int] = []

    async def request(n: int) -> None:
        async with deployment.lease():
            order.append(n)
            await asyncio.sleep(0.01)

    tasks = []
    for n in range(6):
        tasks.append(asyncio.create_task(request(n)))
        await eventually(lambda n=n: deployment.queue_depth == n + 1, what=f"request {n} queueing")  # type: ignore[misc]
    holder.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4, 5]


async def test_a_full_queue_answers_503_at_once_with_retry_after(memory: MemoryFactory) -> None:
    deployment, _ = await memory(model("m", queue_size=2), policy=ManualPolicy(1))
    holder = await deployment.acquire()
    waiters = [asyncio.create_task(deployment.acquire()) for _ in range(2)]
    await eventually(lambda: deployment.queue_depth == 2, what="two requests queueing")

    started = time.monotonic()
    with pytest.raises(QueueFull) as caught:
        await deployment.acquire()
    assert time.monotonic() - started < 0.5
    assert caught.value.status == 503
    assert caught.value.code == "queue_full"
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert deployment.metrics()["queue_full"] == 1
    holder.release()
    for waiter in waiters:  # the queued ones are served, one slot at a time
        (await asyncio.wait_for(waiter, 5)).release()


async def test_a_request_that_waits_past_queue_timeout_gets_503_and_leaves_the_queue(memory: MemoryFactory) -> None:
    deployment, _ = await memory(model("m", queue_timeout_s=0.3), policy=ManualPolicy(1))
    holder = await deployment.acquire()

    with pytest.raises(QueueTimeout) as caught:
        await deployment.acquire()

    assert caught.value.status == 503
    assert caught.value.retry_after is not None
    assert "all 1 ready instances are busy" in caught.value.message
    assert deployment.queue_depth == 0
    holder.release()
    assert deployment.in_flight == 0  # the slot was not handed to the request that gave up
    (await deployment.acquire()).release()


async def test_a_cancelled_waiter_gives_its_slot_to_the_next_one(memory: MemoryFactory) -> None:
    deployment, _ = await memory(model("m"), policy=ManualPolicy(1))
    holder = await deployment.acquire()
    gone = asyncio.create_task(deployment.acquire())
    stays = asyncio.create_task(deployment.acquire())
    await eventually(lambda: deployment.queue_depth == 2, what="two requests queueing")
    gone.cancel()
    holder.release()
    lease = await asyncio.wait_for(stays, 5)
    assert deployment.in_flight == 1
    lease.release()


async def test_a_retried_request_goes_to_the_head_of_the_queue(memory: MemoryFactory) -> None:
    deployment, _ = await memory(model("m", queue_size=1), policy=ManualPolicy(1))
    holder = await deployment.acquire()
    queued = asyncio.create_task(deployment.acquire())
    await eventually(lambda: deployment.queue_depth == 1, what="a request queueing")
    retried = asyncio.create_task(deployment.acquire(retry=True))  # not refused although the queue is full
    await eventually(lambda: deployment.queue_depth == 2, what="the retry queueing")
    holder.release()
    first = await asyncio.wait_for(retried, 5)
    assert not queued.done()
    first.release()
    (await asyncio.wait_for(queued, 5)).release()


async def test_scale_down_stops_starting_then_idle_instances_first(memory: MemoryFactory) -> None:
    policy = ManualPolicy(3)
    deployment, backend = await memory(model("m", max_instances=4), policy=policy)
    await deployment.tick()
    await eventually(lambda: deployment.instances_by_state()["ready"] == 3, what="three ready instances")
    busy = await deployment.acquire()
    backend.ready_at_once = False
    policy.desired = 5  # clamped to max_instances: one more, which stays starting
    await deployment.tick()
    assert deployment.instances_by_state() == {"starting": 1, "ready": 3, "draining": 0}
    starting = next(r for r in deployment.replicas() if r.state == "starting")

    policy.desired = 1
    await deployment.tick()

    assert [r.id for r in deployment.replicas()] == [busy.instance_id]
    await eventually(lambda: len(backend.stopped) == 3, what="three instances stopping")
    assert starting.id in backend.stopped
    assert busy.instance_id not in backend.stopped
    busy.release()


async def test_a_draining_instance_is_stopped_after_drain_timeout(memory: MemoryFactory) -> None:
    clock = FakeClock()
    policy = ManualPolicy(1)
    deployment, backend = await memory(model("m"), policy=policy, clock=clock, drain_timeout_s=5)
    await deployment.tick()
    await eventually(lambda: deployment.instances_by_state()["ready"] == 1, what="a ready instance")
    lease = await deployment.acquire()
    policy.desired = 0
    await deployment.tick()
    assert deployment.instances_by_state()["draining"] == 1
    clock.now += 4
    await deployment.tick()
    assert backend.stopped == []
    clock.now += 2
    await deployment.tick()
    await eventually(lambda: backend.stopped == [lease.instance_id], what="the draining instance stopping")
    assert lease.failed
    lease.release()
    assert cluster_status(deployment)["inferences"] == 1


async def test_a_starting_instance_past_start_timeout_fails_on_the_tick(memory: MemoryFactory) -> None:
    clock = FakeClock()
    deployment, backend = await memory(model("m", start_timeout_s=10), policy=ManualPolicy(1), clock=clock)
    backend.ready_at_once = False
    waiter = asyncio.create_task(deployment.acquire())
    await eventually(lambda: len(backend.started) == 1, what="an instance launching")
    clock.now += 11
    await deployment.tick()
    with pytest.raises(InstanceStartFailed, match="did not become ready within 10 s"):
        await asyncio.wait_for(waiter, 5)
    assert backend.stopped == [backend.started[0].id]
    assert cluster_status(deployment)["status"] == "failed"
    # The policy still wants one, but not before the back-off has passed.
    await deployment.tick()
    assert len(backend.started) == 1
    clock.now += 1.5
    await deployment.tick()
    await eventually(lambda: len(backend.started) == 2, what="a new start after the back-off")


async def test_scale_to_zero_counts_idle_time_from_the_end_of_the_last_request(memory: MemoryFactory) -> None:
    """The issue's case: idle_timeout_s = 8, the last request ran 12 s; it must not drop to zero 1 s after."""
    clock = FakeClock()
    deployment, _ = await memory(model("m", idle_timeout_s=8), policy=decide, clock=clock)
    lease = await deployment.acquire()  # a cold start
    clock.now += 12
    await deployment.tick()
    lease.release()

    clock.now += 1
    await deployment.tick()
    assert deployment.instances_by_state()["ready"] == 1 and deployment.desired == 1
    clock.now += 6.5
    await deployment.tick()
    assert deployment.instances_by_state()["ready"] == 1
    clock.now += 0.5  # 8 s since it finished
    await deployment.tick()
    assert deployment.desired == 0 and deployment.instances_by_state()["ready"] == 0


async def test_instance_seconds_count_time_from_lease_to_release(memory: MemoryFactory) -> None:
    clock = FakeClock()
    deployment, _ = await memory(model("m"), policy=ManualPolicy(1), clock=clock)
    lease = await deployment.acquire()
    clock.now += 2.5
    assert lease.elapsed_s == 2.5
    lease.release()
    lease.release()  # idempotent
    status = cluster_status(deployment)
    assert status["instanceSeconds"] == 2.5
    assert status["inferences"] == 1


async def test_status_configure_and_turning_off(memory: MemoryFactory) -> None:
    deployment, backend = await memory(
        model("org/m", min_instances=0, max_instances=2, idle_timeout_s=120), policy=ManualPolicy(0)
    )
    status = cluster_status(deployment)
    assert status["modelId"] == "org/m"
    assert status["status"] == "idle"
    assert status["timeout"] == 2
    assert status["capacity"] == {"min": 0, "desired": 0, "max": 2}
    assert set(status) >= {"created", "modified", "instances", "inferences", "lastInference", "instanceSeconds"}

    configure_cluster(deployment, min=1, desired=2, max=3, idle_timeout_s=60)
    await eventually(lambda: deployment.instances_by_state()["ready"] == 2, what="two ready instances")
    assert cluster_status(deployment)["capacity"] == {"min": 1, "desired": 2, "max": 3}
    assert cluster_status(deployment)["timeout"] == 1
    assert deployment.policy_config().min_instances == 1
    with pytest.raises(InvalidRequest, match=r"capacity.min \(4\) is greater than capacity.max \(3\)"):
        configure_cluster(deployment, min=4)

    deployment.turn_off()
    assert cluster_status(deployment)["status"] == "off"
    await eventually(lambda: len(backend.stopped) == 2, what="the instances stopping")
    with pytest.raises(ModelOff) as caught:
        await deployment.acquire()
    assert caught.value.status == 503
    deployment.turn_on()
    (await deployment.acquire()).release()


async def test_a_failing_policy_keeps_the_instances_as_they_are(
    memory: MemoryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(config: PolicyConfig, obs: Observation, state: PolicyState) -> Decision:
        raise RuntimeError("policy bug")

    deployment, _ = await memory(model("m"), policy=broken)
    (await deployment.acquire()).release()
    await deployment.tick()
    assert deployment.instances_by_state()["ready"] == 1
    assert "the autoscaling policy failed" in caplog.text


async def test_an_instance_failing_its_health_checks_is_killed_and_its_queue_goes_to_a_replacement(
    memory: MemoryFactory,
) -> None:
    deployment, backend = await memory(
        model("m", instance_concurrency=1), health_interval_s=0.05, health_timeout_s=5, health_failures=3
    )
    held = await deployment.acquire()
    waiting = asyncio.create_task(deployment.acquire())
    await eventually(lambda: deployment.queue_depth == 1, what="the second request queueing")
    await asyncio.sleep(0.3)  # several passed checks: a busy instance that answers them is left alone
    assert deployment.metrics()["unresponsive"] == 0 and not held.failed

    backend.healthy.discard(held.instance_id)  # its /health stops answering 200
    await eventually(lambda: deployment.metrics()["unresponsive"] == 1, what="the instance being found unresponsive")

    assert backend.stopped == [held.instance_id]  # killed at once, its request still held
    assert held.failed
    error = held.failure()
    assert (error.status, error.code) == (502, "instance_failed")
    assert "stopped answering its health checks" in error.message
    replacement = await asyncio.wait_for(waiting, 10)
    assert replacement.instance_id != held.instance_id
    assert deployment.metrics()["crashes"] == 0 and deployment.metrics()["instances_started"] == 2
    held.release()
    replacement.release()
