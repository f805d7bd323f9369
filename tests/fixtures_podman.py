"""Real Podman for the container backend's tests: its Docker-compatible service on a private socket, and the images
the tests run, each built once per session (and kept by content hash across sessions).

- `podman_url`: `podman system service` started for the session on `unix://<tmp>/podman.sock`, with the repo's
  containers/containers.conf (runc, ulimits this host allows) unless CONTAINERS_CONF is set. It shares Podman's
  image store with the `podman` command, so images built below are there; each test's containers carry the
  session's `test.unimodel.session` label and are removed at the end whatever a test left.
- `base_image`: localhost/unimodel-base:bookworm, a Debian root filesystem from debootstrap (containers/base.sh;
  ~1 min, once per machine).
- `fake_image`: the base + tests/fakes/fake_worker.py (the worker's command line and HTTP contract, no model),
  listening on every address of its container; `[hog_mb=N]` in a request's last message makes it allocate N MiB
  first (to be OOM-killed under a memory limit). Seconds to build.
- `worker_image`: unimodel's real worker image, built by containers/build.sh (`make image`) as
  localhost/unimodel-worker:test-<hash of its inputs>.

`make test-services` installs Podman, runc and debootstrap. Without Podman these tests fail, saying so; set
UNIMODEL_TEST_NO_PODMAN=1 to skip them instead (where none can be installed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

REPO = Path(__file__).resolve().parent.parent
CONTAINERS = REPO / "containers"
BASE_IMAGE = "localhost/unimodel-base:bookworm"
SESSION_LABEL = "test.unimodel.session"

# The fake worker in a container: it must listen on the container's own address (the published port's traffic
# arrives there, not on its loopback), it takes no --host, and `[hog_mb=N]` makes it eat memory mid-request.
FAKE_ENTRY = """\
import http.server, importlib.util, re, sys, time

class AnyAddress(http.server.ThreadingHTTPServer):
    def __init__(self, address, handler, bind_and_activate=True):
        super().__init__(("0.0.0.0", address[1]), handler, bind_and_activate)

http.server.ThreadingHTTPServer = AnyAddress
spec = importlib.util.spec_from_file_location("fake_worker", "/opt/fake/fake_worker.py")
fake = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fake)
last_text = fake.last_text

def hungry_last_text(body):
    text = last_text(body)
    asked = re.search(r"\\[hog_mb=(\\d+)\\]", text)
    if asked:
        print(f"fake worker: allocating {asked.group(1)} MiB", file=sys.stderr, flush=True)
        hog = []
        for _ in range(int(asked.group(1))):
            hog.append(b"\\x01" * (1 << 20))
            time.sleep(0.002)
    return text

fake.last_text = hungry_last_text
argv = sys.argv[1:]
if "--host" in argv:
    i = argv.index("--host")
    del argv[i : i + 2]
fake.main(argv)
"""

FAKE_CONTAINERFILE = f"""\
FROM {BASE_IMAGE}
COPY unimodel /opt/fake/unimodel
COPY fake_worker.py entry.py /opt/fake/
ENV PYTHONPATH=/opt/fake PYTHONDONTWRITEBYTECODE=1
EXPOSE 8000
ENTRYPOINT ["python3", "/opt/fake/entry.py"]
"""


@contextlib.contextmanager
def _client(url: str, timeout: int = 60) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=url, timeout=timeout)
    try:
        yield client
    finally:
        client.close()


def _podman() -> str:
    podman = shutil.which("podman")
    if podman is None:
        if os.environ.get("UNIMODEL_TEST_NO_PODMAN") == "1":
            pytest.skip("PODMAN IS NOT INSTALLED and UNIMODEL_TEST_NO_PODMAN=1: the container backend is NOT tested")
        pytest.fail(
            "podman is not installed: the container backend's tests need a real Podman (make test-services "
            "installs it: apt-get install podman runc debootstrap), or set UNIMODEL_TEST_NO_PODMAN=1 to skip them",
            pytrace=False,
        )
    return podman


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("CONTAINERS_CONF") and shutil.which("runc"):
        env["CONTAINERS_CONF"] = str(CONTAINERS / "containers.conf")
    return env


def _run(argv: list[str], env: dict[str, str], what: str, timeout: float = 900) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def _exists(podman: str, env: dict[str, str], image: str) -> bool:
    done = subprocess.run([podman, "image", "exists", image], env=env, capture_output=True, check=False)
    return done.returncode == 0


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if "__pycache__" in path.parts or path.suffix in (".pyc", ".whl"):
                continue
            h.update(str(path.relative_to(REPO)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


class Podman:
    """The session's Podman: the command, its environment, the service's URL and the session's label."""

    def __init__(self, command: str, env: dict[str, str], url: str, session: str) -> None:
        self.command = command
        self.env = env
        self.url = url
        self.session = session

    @property
    def labels(self) -> dict[str, str]:
        """Labels for a test backend's containers (`ContainerConfig(labels=...)`): removed at the session's end."""
        return {SESSION_LABEL: self.session}

    @contextlib.contextmanager
    def client(self) -> Iterator[docker.DockerClient]:
        """A Docker SDK client of the session's service (closed at the end of the block)."""
        with _client(self.url) as client:
            yield client

    def run(self, *args: str, timeout: float = 120) -> str:
        return _run([self.command, *args], self.env, f"podman {' '.join(args[:2])}", timeout)


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    command = _podman()
    env = _environment()
    folder = Path(tempfile.mkdtemp(prefix="unimodel-test-podman-"))
    socket_path = folder / "podman.sock"
    url = f"unix://{socket_path}"
    log = open(folder / "service.log", "wb")  # noqa: SIM115 (closed at the end of the session)
    service = subprocess.Popen(
        [command, "system", "service", "--time=0", url],
        env=env,
        cwd=folder,  # conmon may leave files in its working folder
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with _client(url, timeout=5) as client:
                client.ping()
            break
        except Exception:
            if service.poll() is not None or time.monotonic() > deadline:
                service.kill()
                log.close()
                text = (folder / "service.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"podman system service did not answer on {url}:\n{text}", pytrace=False)
            time.sleep(0.1)
    session = secrets.token_hex(6)
    yield Podman(command, env, url, session)
    try:
        with _client(url) as client:
            for container in client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session}"}):
                container.remove(force=True)
    finally:
        service.terminate()
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(timeout=10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def base_image(podman: Podman) -> str:
    """The Debian base image (containers/base.sh), made once per machine."""
    if not _exists(podman.command, podman.env, BASE_IMAGE):
        env = {**podman.env, "ENGINE": podman.command, "BASE_IMAGE": BASE_IMAGE}
        _run([str(CONTAINERS / "base.sh")], env, "containers/base.sh (debootstrap)")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def fake_image(podman: Podman, base_image: str) -> str:
    """The fake worker's image, by the hash of what goes into it."""
    fake_worker = REPO / "tests" / "fakes" / "fake_worker.py"
    lifeline = REPO / "src" / "unimodel" / "runtime" / "lifeline.py"
    h = hashlib.sha256((FAKE_ENTRY + FAKE_CONTAINERFILE).encode())
    h.update(_digest(fake_worker, lifeline).encode())
    tag = f"localhost/unimodel-test-fake:{h.hexdigest()[:12]}"
    if _exists(podman.command, podman.env, tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="unimodel-test-fake-image-") as ctx:
        root = Path(ctx)
        package = root / "unimodel" / "runtime"
        package.mkdir(parents=True)
        (root / "unimodel" / "__init__.py").write_text("")
        (package / "__init__.py").write_text("")
        shutil.copy(lifeline, package / "lifeline.py")
        shutil.copy(fake_worker, root / "fake_worker.py")
        (root / "entry.py").write_text(FAKE_ENTRY)
        (root / "Containerfile").write_text(FAKE_CONTAINERFILE)
        podman.run("build", "-q", "-t", tag, "-f", str(root / "Containerfile"), str(root), timeout=300)
    return tag


@pytest.fixture(scope="session")
def worker_image(podman: Podman, base_image: str) -> str:
    """unimodel's worker image, built by containers/build.sh (what `make image` runs), by the hash of its inputs."""
    tag = f"localhost/unimodel-worker:test-{_digest(CONTAINERS, REPO / 'src' / 'unimodel')}"
    if not _exists(podman.command, podman.env, tag):
        env = {**podman.env, "ENGINE": podman.command, "TAG": tag}
        _run([str(CONTAINERS / "build.sh")], env, "containers/build.sh", timeout=1800)
    return tag


# ── backends for the tests ──────────────────────────────────────────────────


class Backends:
    """Makes ContainerBackends on the session's Podman, each with its own data folder unless told, every
    container labelled for the session; closes them all at the end of the test."""

    def __init__(self, podman: Podman, tmp_path: Path) -> None:
        self.podman = podman
        self.tmp_path = tmp_path
        self.made: list[Any] = []

    def __call__(
        self,
        models: dict[str, Any] | None = None,
        *,
        runtime: Any = None,
        data_dir: Path | None = None,
        hf_cache: Path | None = None,
        **config: Any,
    ) -> Any:
        from unimodel.config import RuntimeConfig
        from unimodel.container_settings import ContainerConfig, ModelContainerConfig
        from unimodel.runtime.backends.container import ContainerBackend

        tables = {model_id: ModelContainerConfig.model_validate(t) for model_id, t in (models or {}).items()}
        settings = ContainerConfig(**{"url": self.podman.url, "labels": self.podman.labels, **config})
        backend = ContainerBackend(
            settings,
            runtime or RuntimeConfig(log_dir=str(self.tmp_path / "logs")),
            data_dir=data_dir or self.tmp_path / "data",
            hf_cache=hf_cache,
            model_settings=lambda spec: tables.get(spec.id, ModelContainerConfig()),
        )
        self.made.append(backend)
        return backend


@pytest.fixture
async def container_backends(podman: Podman, tmp_path: Path) -> AsyncIterator[Backends]:
    made = Backends(podman, tmp_path)
    yield made
    for backend in made.made:
        await backend.aclose()
