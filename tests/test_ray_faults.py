"""The Ray backend when things go wrong, on the session's two-node cluster (tests/fixtures_ray.py): a node lost (its
raylet killed), the cluster unreachable when the server starts, and a gateway killed while its instances run.

Each case goes through a real gateway on loopback (what a client sees) or the backend itself (what Ray has).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from unimodel.config import OpenModelConfig, Settings
from unimodel.gateway import create_app
from unimodel.runtime import backends
from unimodel.runtime.backends import LocalBackend
from unimodel.runtime.backends.local import worker_command
from unimodel.runtime.backends.ray import RayBackend

from .fakes.server import LiveServer
from .fixtures_ray import FAKE_PROGRAM, HEAD_IP, SECOND_IP, BackendFactory, RayTestCluster

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parent.parent
FAKE_WORKER = Path(__file__).parent / "fakes" / "fake_worker.py"


def chat(live: LiveServer, model: str, text: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(live.url + "/v1/chat/completions", json=body, timeout=120)


def test_a_lost_node_is_noticed_in_seconds_its_requests_fail_the_queue_moves_on_and_a_model_pinned_to_it_is_pending(
    ray_cluster: RayTestCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spread = {"num_cpus": 0, "resources": {"slot": 1}}  # one instance per node at most: one on each
    settings = Settings(
        models=[
            {"id": "acme/spread", "task": "chat", "min_instances": 2, "max_instances": 2, "ray": spread},
            {"id": "acme/pinned", "task": "chat", "queue_timeout_s": 60, "ray": {"resources": {"second": 1}}},
        ],
        runtime={
            "default_models": False,
            "log_dir": str(tmp_path / "logs"),
            "tick_s": 0.2,
            "backend": "ray",
            "ray": {"address": ray_cluster.address, "node_ip_address": HEAD_IP, "pending_timeout_s": 10},
        },
        store={"data_dir": str(tmp_path / "data")},
    )
    backend = RayBackend(settings.runtime.ray, settings.runtime, data_dir=tmp_path / "data", program=FAKE_PROGRAM)
    try:
        with LiveServer(create_app(settings, backend=backend)) as live:
            assert chat(live, "acme/pinned", "warm").status_code == 200
            deadline = time.monotonic() + 60
            while sorted(p["node"] for p in backend.placements().values()) != [HEAD_IP, SECOND_IP, SECOND_IP]:
                assert time.monotonic() < deadline, backend.placements()
                time.sleep(0.1)
            time.sleep(0.5)  # both spread instances ready (min_instances), not only placed
            results: dict[str, Any] = {}

            def call(name: str, model: str, text: str) -> None:
                results[name] = chat(live, model, text)

            def stream() -> None:
                body = {
                    "model": "acme/pinned",
                    "stream": True,
                    "messages": [{"role": "user", "content": "a b c [fake_delay_s=30]"}],
                }
                with httpx.stream("POST", live.url + "/v1/chat/completions", json=body, timeout=120) as r:
                    results["stream"] = [line for line in r.iter_lines() if line]

            threads = [
                threading.Thread(target=call, args=("slow-0", "acme/spread", "slow 0 [fake_delay_s=8]")),
                threading.Thread(target=call, args=("slow-1", "acme/spread", "slow 1 [fake_delay_s=8]")),
                threading.Thread(target=stream),
            ]
            for thread in threads:
                thread.start()
            time.sleep(1.5)  # one slow request on each spread instance, the stream under way on the second node
            queued = threading.Thread(target=call, args=("queued", "acme/spread", "queued"))
            queued.start()
            time.sleep(0.3)

            on_second = [i for i, p in backend.placements().items() if p["node"] == SECOND_IP]
            instances = {i: backend._tracked[i].instance for i in on_second}
            ray_cluster.kill_second_node()
            killed = time.monotonic()
            while not all(instance.exited.is_set() for instance in instances.values()):
                assert time.monotonic() - killed < 30, "the lost node's instances were not noticed"
                time.sleep(0.05)
            noticed_s = time.monotonic() - killed
            for thread in [*threads, queued]:
                thread.join(60)
            pending = chat(live, "acme/pinned", "after")
            status = httpx.get(live.url + "/models/v2/acme/pinned", timeout=10).json()["output"]
    finally:
        ray_cluster.restart_second_node()

    print(f"second node's raylet killed → its instances' exit seen: {noticed_s:.2f} s")
    assert noticed_s < 12  # our pings; Ray itself declares a node dead after ~15 s of missed heartbeats
    assert all(f"lost with its Ray node {SECOND_IP}" in (i.exit_reason or "") for i in instances.values())
    # In flight on the lost node: a 502 for the request, an error event ending the stream.
    codes = sorted(results[name].status_code for name in ("slow-0", "slow-1"))
    assert codes == [200, 502], {n: results[n].text for n in ("slow-0", "slow-1")}
    failed = next(results[n] for n in ("slow-0", "slow-1") if results[n].status_code == 502)
    assert failed.json()["error"]["code"] == "instance_failed"
    lines = results["stream"]
    assert lines[-1].startswith("data: ") and '"error"' in lines[-1] and "[DONE]" not in "".join(lines)
    # The queued request went to the surviving instance.
    assert results["queued"].status_code == 200
    assert results["queued"].json()["choices"][0]["message"]["content"] == "echo: queued"
    # The model pinned to the lost node: its replacement has no node to go to.
    assert pending.status_code == 503
    assert "Pending: no node has second=1" in pending.json()["error"]["message"]
    assert status["status"] == "failed" and "Pending: no node has second=1" in status["error"]


def test_an_unreachable_cluster_leaves_the_server_up_ray_models_503_naming_the_address_local_models_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("ray")
    with __import__("socket").socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.2", 0))
        address = f"127.0.0.2:{sock.getsockname()[1]}"
    fake = (sys.executable, str(FAKE_WORKER))
    monkeypatch.setitem(
        backends.FACTORIES,
        "local",
        lambda s: LocalBackend(s.runtime, command_for=lambda m, p: worker_command(m, p, program=fake)),
    )
    settings = Settings(
        models=[
            {"id": "acme/on-ray", "task": "chat", "backend": "ray"},
            {"id": "acme/local", "task": "chat", "engine_args": {"load_s": 0.1}},
        ],
        runtime={"default_models": False, "log_dir": str(tmp_path / "logs"), "ray": {"address": address}},
        store={"data_dir": str(tmp_path / "data")},
    )
    with LiveServer(create_app(settings)) as live:
        on_ray = chat(live, "acme/on-ray", "hi")
        local = chat(live, "acme/local", "still here")

    assert on_ray.status_code == 503
    error = on_ray.json()["error"]
    assert error["code"] == "instance_start_failed"
    assert f"the Ray cluster at {address} cannot be reached (Connection refused)" in error["message"]
    assert "[runtime.ray] address" in error["message"]
    assert local.status_code == 200
    assert local.json()["choices"][0]["message"]["content"] == "echo: still here"
    assert "instances a previous run left on Ray will be looked for once the cluster answers" in caplog.text


DRIVER = """
import asyncio, sys
from pathlib import Path
from unimodel.config import OpenModelConfig, RuntimeConfig
from unimodel.ray_settings import ModelRayConfig, RayConfig
from unimodel.runtime.backends.ray import RayBackend
from tests.fixtures_ray import FAKE_PROGRAM

address, head, data_dir, logs = sys.argv[1:5]

async def main():
    backend = RayBackend(
        RayConfig(address=address, node_ip_address=head),
        RuntimeConfig(log_dir=logs),
        data_dir=Path(data_dir),
        program=FAKE_PROGRAM,
        model_settings=lambda spec: ModelRayConfig(num_cpus=0, resources={"second": 1}),
    )
    for model in ("acme/kept", "acme/dropped"):
        instance = await backend.start(OpenModelConfig(id=model, engine_args={"load_s": 0}), model.replace("/", "_") + "-1")
        print(instance.address, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_restarted_gateway_adopts_the_instances_its_killed_predecessor_left_and_stops_the_rest(
    ray_cluster: RayTestCluster, ray_backends: BackendFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    argv = [sys.executable, "-c", DRIVER, ray_cluster.address, HEAD_IP, str(data_dir), str(tmp_path / "old-logs")]
    proc = await asyncio.to_thread(subprocess.Popen, argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        kept_address = (await asyncio.to_thread(proc.stdout.readline)).strip()
        dropped_address = (await asyncio.to_thread(proc.stdout.readline)).strip()
        assert kept_address.startswith(f"http://{SECOND_IP}:") and dropped_address.startswith(f"http://{SECOND_IP}:")
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            body = {"messages": [{"role": "user", "content": "before"}]}
            assert (await client.post(kept_address + "/v1/chat/completions", json=body)).status_code == 200
            before = (await client.get(kept_address + "/stats")).json()

            timings = {"ping_interval_s": 0.5, "lost_after_s": 1.5, "adopt_window_s": 8}
            # Another run of the same server while the first still runs: its actors are left alone.
            tables = {m: {"resources": {"second": 1}} for m in ("acme/kept", "acme/dropped")}  # as the first run's
            beside = ray_backends(tables, data_dir=data_dir, **timings)
            await beside.stop_leftovers()
            assert beside._sweep is not None
            await beside._sweep
            assert beside._leftovers.claimed == {}

            proc.send_signal(signal.SIGKILL)  # the gateway dies; its detached actors run on
            proc.wait(10)
            restarted = ray_backends(tables, data_dir=data_dir, **timings)
            await restarted.stop_leftovers()
            instance = await restarted.start(OpenModelConfig(id="acme/kept", engine_args={"load_s": 0}), "acme_kept-1")

            assert instance.adopted and instance.address == kept_address
            assert instance.announced.is_set()
            answer = await client.post(
                instance.address + "/v1/chat/completions",
                json={**body, "messages": [{"role": "user", "content": "after"}]},
            )
            assert answer.json()["choices"][0]["message"]["content"] == "echo: after"
            after = (await client.get(kept_address + "/stats")).json()
            assert after["pid"] == before["pid"] and after["served"] == before["served"] + 1  # the same worker

            # The one no start asked for is stopped once the adopt window has passed: nothing leaks.
            names = await asyncio.to_thread(restarted.cluster.names, restarted.prefix)
            assert len(names) == 2
            deadline = time.monotonic() + 40
            while len(await asyncio.to_thread(restarted.cluster.names, restarted.prefix)) != 1:
                assert time.monotonic() < deadline, "the leftover no start adopted was not stopped"
                await asyncio.sleep(0.2)
            with pytest.raises(httpx.HTTPError):
                await client.get(dropped_address + "/stats", timeout=2)
            assert restarted.running() == [instance.id]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
