"""The container backend's settings and what it asks the engine for, without an engine: `[runtime.container]` and a
model's `container` table (each bad value a clear error naming it), and the container settings a model becomes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from unimodel.config import OpenModelConfig, RuntimeConfig
from unimodel.container_settings import (
    ContainerConfig,
    ModelContainerConfig,
    default_engine_url,
    parse_size,
    render,
)
from unimodel.runtime.backends.container import ContainerBackend, Ownership, container_environment


def options(tmp_path: Path, table: dict[str, Any], spec: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    backend = ContainerBackend(
        ContainerConfig(url="unix:///nowhere.sock", **config),
        RuntimeConfig(log_dir=str(tmp_path)),
        data_dir=None,
        environ={"PATH": "/host/bin", "OMP_NUM_THREADS": "2"},
    )
    model = OpenModelConfig(**{"id": "acme/m", "task": "chat", "engine": "llama.cpp", **(spec or {})})
    return backend.create_options(model, ModelContainerConfig(**table), "unimodel-acme_m-1-abc")


@pytest.mark.parametrize(
    ("text", "size"),
    [("512m", 512 << 20), ("8g", 8 << 30), ("1.5GiB", 3 << 29), ("64MB", 64 << 20), ("1048576", 1 << 20), (42, 42)],
)
def test_sizes_read_as_docker_reads_them(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"memory": "lots"}, "'lots' is not a size: give bytes, or a number with k, m, g or t"),
        ({"shm_size": "0"}, "'0' is not a size"),
        (
            {"args": ["--model", "{weights}"]},
            "args: unknown placeholder {weights} in ['--model', '{weights}']; use {model}, {port}, {path}",
        ),
        ({"command": "serve 'unclosed"}, "command: No closing quotation"),
        ({"volumes": ["/data"]}, "volume '/data' is not SOURCE:TARGET[:ro|rw] with an absolute TARGET"),
        ({"volumes": ["/data:/data:rx"]}, "volume '/data:/data:rx': the mode must be ro or rw, not 'rx'"),
        ({"gpus": 0}, 'gpus = 0: give a count of at least 1, "all", or device ids'),
        ({"health_path": "health"}, "health_path 'health' must start with '/'"),
        ({"pull": "sometimes"}, "Input should be 'never', 'if-missing' or 'always'"),
        ({"imag": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_model_container_table_is_refused_naming_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ModelContainerConfig(**table)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "/var/run/docker.sock"}, "'/var/run/docker.sock' is not an engine address: use unix:///path"),
        ({"labels": {"io.unimodel.owner": "me"}}, "labels: 'io.unimodel.owner' is one of unimodel's own"),
        ({"ulimits": {"nofile": "many"}}, "ulimits.nofile: 'many' is not SOFT:HARD or one number"),
        ({"api_timeout_s": 0}, "Input should be greater than 0"),
    ],
)
def test_a_bad_runtime_container_table_is_refused_naming_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ContainerConfig(**config)
    assert message in str(caught.value)


def test_templates_split_like_a_shell_before_the_values_go_in() -> None:
    values = {"model": "acme/m", "port": "8000", "path": "/models/my model.gguf"}
    assert render("llama-server -m {path} --port {port} --alias {model}", values) == [
        "llama-server", "-m", "/models/my model.gguf", "--port", "8000", "--alias", "acme/m"
    ]  # fmt: skip
    assert render(["--model={path}"], values) == ["--model=/models/my model.gguf"]


def test_the_engine_is_docker_host_else_the_first_standard_socket_there(tmp_path: Path) -> None:
    assert default_engine_url({"DOCKER_HOST": "tcp://engine:2375"}) == "tcp://engine:2375"
    if Path("/var/run/docker.sock").exists() or Path("/run/podman/podman.sock").exists():
        pytest.skip("this machine has a system engine socket, which comes before a user's")
    assert default_engine_url({}) == "unix:///var/run/docker.sock"  # named in the error when nothing is there
    (tmp_path / "podman").mkdir()
    (tmp_path / "podman" / "podman.sock").touch()
    assert default_engine_url({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"unix://{tmp_path}/podman/podman.sock"


def test_a_model_without_args_gets_the_worker_command_line_on_every_address(tmp_path: Path) -> None:
    got = options(tmp_path, {}, {"path": "/models/m.gguf", "engine_args": {"n_ctx": 512}})

    assert got["image"] == "unimodel-worker:latest"
    assert got["command"] == [
        "--engine", "llama.cpp", "--task", "chat", "--model-id", "acme/m", "--path", "/models/m.gguf",
        "--port", "8000", "--engine-arg", "n_ctx=512", "--host", "0.0.0.0",
    ]  # fmt: skip
    assert "entrypoint" not in got  # the image's own
    assert got["ports"] == {"8000/tcp": ("127.0.0.1", 0)}  # loopback, a port the engine picks
    assert [(m["Source"], m["Target"], m["ReadOnly"]) for m in got["mounts"]] == [
        ("/models/m.gguf", "/models/m.gguf", True)
    ]
    assert got["init"] is True
    assert got["environment"] == {"OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}  # not the host's PATH


def test_an_image_of_another_server_gets_its_templates_and_the_resources_asked_for(tmp_path: Path) -> None:
    table = {
        "image": "ghcr.io/ggml-org/llama.cpp:server",
        "command": ["/app/llama-server"],
        "args": "-m {path} --host 0.0.0.0 --port {port}",
        "port": 8080,
        "cpus": 1.5,
        "memory": "4g",
        "shm_size": "1g",
        "gpus": "all",
        "devices": ["/dev/dri"],
        "volumes": ["/srv/cache:/cache:ro", "models:/models"],
    }
    got = options(tmp_path, table, {"path": "/m.gguf"}, host="0.0.0.0", ulimits={"nofile": "1024:2048"})

    assert got["image"] == "ghcr.io/ggml-org/llama.cpp:server"
    assert got["entrypoint"] == ["/app/llama-server"]
    assert got["command"] == ["-m", "/m.gguf", "--host", "0.0.0.0", "--port", "8080"]
    assert got["ports"] == {"8080/tcp": ("0.0.0.0", 0)}
    assert got["nano_cpus"] == 1_500_000_000
    assert got["mem_limit"] == got["memswap_limit"] == 4 << 30
    assert got["shm_size"] == 1 << 30
    [gpus] = got["device_requests"]
    assert (gpus["Count"], gpus["Capabilities"]) == (-1, [["gpu"]])
    assert got["devices"] == ["/dev/dri"]
    assert [(u["Name"], u["Soft"], u["Hard"]) for u in got["ulimits"]] == [("nofile", 1024, 2048)]
    assert [(m["Type"], m["Source"], m["Target"], m["ReadOnly"]) for m in got["mounts"]] == [
        ("bind", "/m.gguf", "/m.gguf", True),
        ("bind", "/srv/cache", "/cache", True),
        ("volume", "models", "/models", False),
    ]
    assert ContainerConfig(host="0.0.0.0").address_host() == "127.0.0.1"


def test_a_containers_environment_keeps_engine_knobs_and_drops_secrets_and_this_machines_paths() -> None:
    environ = {
        "PATH": "/host/bin",
        "HOME": "/root",
        "VIRTUAL_ENV": "/host/venv",
        "HF_HOME": "/host/hf",
        "HF_TOKEN": "hf_secret",
        "UNIMODEL_SECRET_KEY": "gateway-secret",
        "CUDA_VISIBLE_DEVICES": "0",
        "LANG": "C.UTF-8",
        "LICENSE_FILE": "/etc/lic",
    }
    env = container_environment(environ, ["LICENSE_FILE"], {"HOME": "/work", "MODE": "fast"}, "/host/hf/hub")

    assert env == {
        "CUDA_VISIBLE_DEVICES": "0",
        "LANG": "C.UTF-8",
        "LICENSE_FILE": "/etc/lic",
        "HOME": "/work",  # the model's env names it: kept
        "MODE": "fast",
        "HF_HUB_CACHE": "/host/hf/hub",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def test_a_servers_identity_lasts_across_runs_and_a_run_is_alive_while_it_holds_its_lock(tmp_path: Path) -> None:
    first = Ownership(tmp_path)
    second = Ownership(tmp_path)  # another run, sharing the folder, alive

    assert first.server_id == second.server_id
    assert first.token != second.token
    assert first.alive(second.token) and second.alive(first.token)
    assert not first.alive("0123456789abcdef")  # never ran here
    assert not first.alive("../../etc/passwd")  # not a token
    second.release()
    assert not first.alive(second.token)
    assert sorted(p.name for p in (tmp_path / "owners").iterdir()) == [f"{first.token}.lock"]
    first.release()
    assert Ownership(tmp_path).server_id == first.server_id
