"""A real Ray cluster on loopback for the Ray backend's tests, started once per session (two nodes take seconds and
about 1 GB), and the backends the tests make on it.

- `ray_cluster`: a head node on 127.0.0.2 (`slot` = 1) and a second node on 127.0.0.3 (`second` = 4, `slot` = 1,
  its own Hugging Face cache), each a `ray start --block` process of this session (Ray replaces 127.0.0.1 with the
  machine's external address, but keeps 127.0.0.2, 127.0.0.3 …). This test process connects to it as a driver
  through the head's raylet (so killing the second node's raylet leaves the driver connected). `kill_second_node`
  kills the second node's raylet (a lost node); `restart_second_node` brings a new one up on the same address.
- `ray_backends`: RayBackends on that cluster whose instances run the fake worker (tests/fakes/fake_worker.py,
  made to listen on its node's address), closed at the end of the test.

`make test` installs Ray (the `ray` extra). Without it these tests fail, saying so; UNIMODEL_TEST_NO_RAY=1 skips
them instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from unimodel.config import OpenModelConfig, RuntimeConfig
from unimodel.ray_settings import ModelRayConfig, RayConfig

HEAD_IP = "127.0.0.2"
SECOND_IP = "127.0.0.3"
FAKE_WORKER = Path(__file__).resolve().parent / "fakes" / "fake_worker.py"
NODE_START_S = 90.0

# The fake worker on a Ray node: the real worker takes --host (the node's address); the fake binds 127.0.0.1, so
# this entry takes --host off its command line and makes the fake's server listen there.
FAKE_ENTRY = f"""\
import http.server, importlib.util, sys
argv = sys.argv[1:]
host = "127.0.0.1"
if "--host" in argv:
    i = argv.index("--host")
    host = argv[i + 1]
    del argv[i : i + 2]

class OnHost(http.server.ThreadingHTTPServer):
    def __init__(self, address, handler, bind_and_activate=True):
        super().__init__((host, address[1]), handler, bind_and_activate)

http.server.ThreadingHTTPServer = OnHost
spec = importlib.util.spec_from_file_location("fake_worker", {str(FAKE_WORKER)!r})
fake = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fake)
fake.main(argv)
"""
FAKE_PROGRAM = (sys.executable, "-c", FAKE_ENTRY)


def _ray_bin() -> str:
    found = Path(sys.executable).with_name("ray")
    return str(found) if found.exists() else "ray"


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class RayTestCluster:
    """The session's cluster (module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port(HEAD_IP)
        self.address = f"{HEAD_IP}:{self.port}"
        self.second_hf_cache = root / "second-node-hf-cache"
        self._head: subprocess.Popen[bytes] | None = None
        self._second: subprocess.Popen[bytes] | None = None
        self.second_node_id = ""

    def _start(self, args: list[str], log: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.root / log, "ab") as out:
            return subprocess.Popen(
                [_ray_bin(), "start", "--block", "--disable-usage-stats", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: the nodes' processes are ended together, and only they
                env=env,
            )

    def _env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", **extra}

    def start(self) -> None:
        self._head = self._start(
            [
                "--head",
                f"--node-ip-address={HEAD_IP}",
                f"--port={self.port}",
                "--num-cpus=4",
                '--resources={"slot": 1}',
                "--include-dashboard=false",
                f"--temp-dir={self.root / 'ray'}",
            ],
            "head.log",
            self._env(),
        )
        deadline = time.monotonic() + NODE_START_S
        while True:
            try:
                socket.create_connection((HEAD_IP, self.port), timeout=1).close()
                break
            except OSError:
                if self._head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray head did not start: {self.log_tail('head.log')}") from None
                time.sleep(0.2)
        self._connect()
        self.start_second_node()

    def _connect(self) -> None:
        from unimodel.runtime.backends.ray.client import RayCluster

        RayCluster(RayConfig(address=self.address, node_ip_address=HEAD_IP, connect_timeout_s=60)).connect()

    def nodes(self) -> list[dict[str, Any]]:
        import ray

        return [dict(n) for n in ray.nodes()]

    def start_second_node(self) -> None:
        known = {n["NodeID"] for n in self.nodes()}
        self.second_hf_cache.mkdir(parents=True, exist_ok=True)
        self._second = self._start(
            [
                f"--address={self.address}",
                f"--node-ip-address={SECOND_IP}",
                "--num-cpus=4",
                '--resources={"second": 4, "slot": 1}',
            ],
            "second.log",
            self._env(HF_HUB_CACHE=str(self.second_hf_cache)),
        )
        deadline = time.monotonic() + NODE_START_S
        while True:
            fresh = [
                n
                for n in self.nodes()
                if n["Alive"] and n["NodeManagerAddress"] == SECOND_IP and n["NodeID"] not in known
            ]
            if fresh:
                self.second_node_id = str(fresh[0]["NodeID"])
                return
            if self._second.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the second Ray node did not join: {self.log_tail('second.log')}")
            time.sleep(0.2)

    def kill_second_node(self) -> None:
        """SIGKILL the second node's raylet: the node is lost (its workers go with it)."""
        assert self._second is not None
        raylets = [pid for pid in _children(self._second.pid) if _comm(pid) == "raylet"]
        assert raylets, "the second node's raylet was not found"
        for pid in raylets:
            os.kill(pid, signal.SIGKILL)

    def restart_second_node(self) -> None:
        """End what is left of the second node and start a new one on the same address."""
        self._end(self._second)
        self.start_second_node()

    def log_tail(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.root / name).read_text()[-2000:]
        return ""

    @staticmethod
    def _end(proc: subprocess.Popen[bytes] | None) -> None:
        """SIGKILL a node's process group (its `ray start`, raylet, GCS, workers): a test cluster needs no orderly
        shutdown, and the instances' workers follow their actors through their lifelines."""
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        from unimodel.runtime.backends.ray.client import disconnect

        disconnect()  # this process leaves the cluster before it goes: the rest of the session runs without Ray
        self._end(self._second)
        self._end(self._head)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayTestCluster]:
    if os.environ.get("UNIMODEL_TEST_NO_RAY") == "1":
        pytest.skip("UNIMODEL_TEST_NO_RAY=1: the Ray backend's tests are skipped")
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.fail(
            'Ray is not installed: `make test` installs it (pip install -e ".[ray]"); UNIMODEL_TEST_NO_RAY=1 skips'
        )
    # A cluster of its own, without token authentication (Ray turns it on when ~/.ray/auth_token exists); this
    # process, its driver, must agree.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    cluster = RayTestCluster(Path(tempfile.mkdtemp(prefix="unimodel-test-ray-")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


BackendFactory = Callable[..., Any]


@pytest.fixture
async def ray_backends(ray_cluster: RayTestCluster, tmp_path: Path) -> AsyncIterator[BackendFactory]:
    """`make(models={id: {num_cpus: …, resources: …}}, runtime=RuntimeConfig, **ray)`: a RayBackend on the
    session's cluster running the fake worker; each model's `[models.ray]` from `models` (defaults: 0 CPUs)."""
    from unimodel.runtime.backends.ray import RayBackend

    made: list[RayBackend] = []

    def make(
        models: dict[str, dict[str, Any]] | None = None,
        *,
        runtime: RuntimeConfig | None = None,
        data_dir: Path | None = None,
        program: tuple[str, ...] | None = FAKE_PROGRAM,
        **ray: Any,
    ) -> RayBackend:
        tables = models or {}

        def model_settings(spec: OpenModelConfig) -> ModelRayConfig:
            return ModelRayConfig(**{"num_cpus": 0, **tables.get(spec.id, {})})

        backend = RayBackend(
            RayConfig(address=ray_cluster.address, node_ip_address=HEAD_IP, **ray),
            runtime or RuntimeConfig(log_dir=str(tmp_path / "logs")),
            data_dir=data_dir if data_dir is not None else tmp_path / "data",
            program=program,
            model_settings=model_settings,
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()
