"""`unimodel pull`, `unimodel models`, `unimodel models rm` end to end: the real command in a subprocess, the
fake Hub on loopback named by HF_ENDPOINT, the cache in a temporary folder (HF_HUB_CACHE)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from unimodel.runtime.bundled import MINILM_ID, SMOLLM2_ID, smollm2_gguf

from .fakes.hf_hub import FakeHub
from .fakes.server import LiveServer

SMALL = os.urandom(2_000_000)
BERT = {
    "config.json": '{"architectures": ["BertForMaskedLM"], "model_type": "bert"}',
    "model.safetensors": os.urandom(300_000),
    "tokenizer.json": "{}",
}


@pytest.fixture
def hub() -> FakeHub:
    hub = FakeHub()
    hub.add_repo("acme/tiny-GGUF", {"tiny.Q4_K_M.gguf": SMALL, "tiny.Q8_0.gguf": SMALL + SMALL})
    hub.add_repo("acme/bert", BERT, pipeline_tag="fill-mask")
    return hub


@pytest.fixture
def server(hub: FakeHub) -> Iterator[LiveServer]:
    with LiveServer(hub.app) as live:
        yield live


@pytest.fixture
def env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "UNIMODEL_"))}
    return clean | {
        "HF_ENDPOINT": server.url,
        "HF_HUB_CACHE": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "home"),
    }


def unimodel(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unimodel", *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_pull_shows_progress_then_what_it_decided(hub: FakeHub, env: dict[str, str], tmp_path: Path) -> None:
    done = unimodel(env, "pull", "acme/tiny-GGUF")
    assert done.returncode == 0, done.stderr
    sha = hub.repos["acme/tiny-gguf"].sha
    path = tmp_path / "cache" / "models--acme--tiny-GGUF" / "snapshots" / sha / "tiny.Q4_K_M.gguf"
    assert done.stdout.splitlines() == [
        f"Pulled acme/tiny-GGUF (main @ {sha[:12]})",
        "  task     text-generation",
        "  engine   llama.cpp",
        "  files    tiny.Q4_K_M.gguf (2 MB)",
        "  chosen   Q4_K_M, the first of [hub] gguf_preference it has",
        "  size     2 MB",
        f"  path     {path}",
    ]
    lines = done.stderr.splitlines()
    assert lines[0] == f"Pulling acme/tiny-GGUF (main @ {sha[:12]}): 1 file, 2 MB → {tmp_path / 'cache'}"
    assert lines[-1].startswith("  2 MB / 2 MB (100%), ") and lines[-1].endswith(", 1/1 file")
    assert path.read_bytes() == SMALL


def test_pull_draws_a_progress_bar_on_a_terminal(hub: FakeHub, env: dict[str, str]) -> None:
    hub.throttle_bps = 1_000_000
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen(
        [sys.executable, "-m", "unimodel", "pull", "acme/tiny-GGUF"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    drawn = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            drawn.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert proc.wait(timeout=180) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(10)
        os.close(leader)
    text = drawn.decode(errors="replace")
    assert "\r" in text and "100%" in text and "files 1/1" in text
    assert "B/s" in text  # tqdm's rate


def test_models_lists_bundled_configured_and_pulled(env: dict[str, str], tmp_path: Path) -> None:
    assert unimodel(env, "pull", "acme/tiny-GGUF").returncode == 0
    gguf = smollm2_gguf()
    assert gguf is not None
    config = tmp_path / "unimodel.toml"
    config.write_text(
        f'[[models]]\nid = "mine/smol"\nengine = "llama.cpp"\npath = "{gguf}"\n\n'
        '[[models]]\nid = "acme/bert"\ntask = "fill-mask"\nmax_instances = 2\n'
    )
    listed = unimodel(env, "models", "--json", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert list(rows) == ["mine/smol", "acme/bert", SMOLLM2_ID, MINILM_ID, "acme/tiny-GGUF"]
    assert rows["mine/smol"] | {"path": None} == {
        "id": "mine/smol",
        "task": "chat",
        "engine": "llama.cpp",
        "size_bytes": gguf.stat().st_size,
        "source": "configured",
        "path": None,
    }
    assert rows["acme/bert"]["source"] == "configured, not pulled yet" and rows["acme/bert"]["path"] is None
    assert (rows[SMOLLM2_ID]["source"], rows[MINILM_ID]["task"]) == ("bundled", "feature-extraction")
    pulled = rows["acme/tiny-GGUF"]
    assert (pulled["source"], pulled["task"], pulled["engine"], pulled["size_bytes"]) == (
        "pulled",
        "text-generation",
        "llama.cpp",
        len(SMALL),
    )
    assert pulled["revision"] == "main" and pulled["path"].endswith("/tiny.Q4_K_M.gguf")
    table = unimodel(env, "models", "--config", str(config)).stdout.splitlines()
    assert table[0].split() == ["ID", "TASK", "ENGINE", "SIZE", "SOURCE", "WHERE"]
    assert any(line.startswith("acme/tiny-GGUF") and "2 MB" in line and "pulled" in line for line in table)


def test_models_rm_removes_a_pulled_model(env: dict[str, str], tmp_path: Path) -> None:
    assert unimodel(env, "pull", "acme/bert").returncode == 0
    removed = unimodel(env, "models", "rm", "acme/bert")
    assert removed.returncode == 0 and removed.stdout.strip() == "Removed acme/bert (300 kB freed)."
    assert not (tmp_path / "cache" / "models--acme--bert").exists()
    again = unimodel(env, "models", "rm", "acme/bert")
    assert again.returncode == 1
    assert (
        again.stderr
        == f"unimodel: 'acme/bert' is not pulled (nothing in {tmp_path / 'cache'}). (404 model_not_found)\n"
    )


def test_errors_are_one_line_with_a_nonzero_status(env: dict[str, str], tmp_path: Path) -> None:
    missing = unimodel(env, "pull", "acme/missing")
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and missing.stderr.startswith("unimodel: Model 'acme/missing' was not found")
    assert missing.stderr.rstrip().endswith("(404 model_not_found)")
    config = tmp_path / "allow.toml"
    config.write_text('[hub]\nallow = ["Qwen/*"]\n')
    refused = unimodel(env, "pull", "acme/bert", "--config", str(config))
    assert refused.returncode == 1 and refused.stderr == (
        "unimodel: Pulling 'acme/bert' is not allowed on this server: [hub] allow permits \"Qwen/*\". "
        "(403 model_not_allowed)\n"
    )
    unsupported = unimodel(env, "pull", "acme/bert", "--file", "x.gguf")
    assert unsupported.returncode == 1 and "(400 invalid_request)" in unsupported.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[hub]\nmax_download_gb = -1\n")
    config_error = unimodel(env, "pull", "acme/bert", "--config", str(bad))
    assert config_error.returncode == 2 and "hub.max_download_gb" in config_error.stderr


def test_offline_pull_reports_a_local_model_and_refuses_others(env: dict[str, str]) -> None:
    assert unimodel(env, "pull", "acme/tiny-GGUF").returncode == 0
    offline = env | {"HF_HUB_OFFLINE": "1"}
    local = unimodel(offline, "pull", "acme/tiny-GGUF")
    assert local.returncode == 0
    assert local.stdout.startswith("acme/tiny-GGUF is already pulled; the Hub is off (HF_HUB_OFFLINE)")
    other = unimodel(offline, "pull", "acme/bert")
    assert other.returncode == 1 and other.stderr.rstrip().endswith("(503 hub_offline)")
