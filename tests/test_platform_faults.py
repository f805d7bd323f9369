"""The platform when things go wrong: the database lost while running or unreachable at start, and a server
started open on a public address."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from unimodel.config import Settings, StoreConfig
from unimodel.gateway.platform import StartupRefused, auth_mode
from unimodel.store import Store

from .conftest import OPENAI_KEY, Fake
from .fixtures_pg import PostgresServer, free_port
from .platform_helpers import Platform, PlatformFactory, chat

UNIMODEL = [sys.executable, "-m", "unimodel"]


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def metric(p: Platform, name: str) -> float:
    for line in httpx.get(p.url + "/metrics", headers=p.admin).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_database_lost_while_running(
    platform_factory: PlatformFactory,
    postgres_factory: Callable[[], PostgresServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg = postgres_factory()
    p = platform_factory(store={"url": pg.create_database("ledger"), "flush_interval_s": 0.05})
    key_id, key = p.create_key()
    assert chat(p, key).status_code == 200  # the key is now known to this process
    wait_for(lambda: len(p.usage(key)["records"]) == 1)

    caplog.set_level(logging.INFO, logger="unimodel")
    pg.stop()
    for _ in range(3):  # closed-model calls keep working; their records wait in memory
        assert chat(p, key).status_code == 200
    ready = httpx.get(p.url + "/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["store"]["ok"] is False and ready.json()["status"] == "not_ready"
    wait_for(lambda: httpx.get(p.url + "/readyz").json()["checks"]["usage_ledger"]["ok"] is False)
    wait_for(lambda: metric(p, "unimodel_usage_records_buffered") >= 3)
    assert metric(p, "unimodel_store_up") == 0
    assert any("unreachable" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    r = httpx.get(p.url + "/models/v2/usage", headers={"authorization": key})
    assert r.status_code == 503 and r.json()["code"] == "store_unavailable"
    # a key never seen by this process cannot be checked now: a clear 503, not a 401
    r = chat(p, "um_never-seen-before-key-000000000000000000")
    assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"

    pg.start()
    wait_for(lambda: httpx.get(p.url + "/readyz").status_code == 200)
    wait_for(lambda: len(p.usage(key)["records"]) == 4)
    assert {r["keyId"] for r in p.usage(key)["records"]} == {key_id}
    assert metric(p, "unimodel_usage_records_dropped_total") == 0


def test_buffer_is_bounded_and_drops_are_counted(
    platform_factory: PlatformFactory, postgres_factory: Callable[[], PostgresServer]
) -> None:
    pg = postgres_factory()
    p = platform_factory(store={"url": pg.create_database("ledger"), "flush_interval_s": 0.05, "max_buffered": 2})
    _, key = p.create_key()
    assert chat(p, key).status_code == 200
    wait_for(lambda: len(p.usage(key)["records"]) == 1)
    pg.stop()
    for _ in range(5):
        assert chat(p, key).status_code == 200
    wait_for(lambda: metric(p, "unimodel_usage_records_dropped_total") == 3)
    pg.start()
    wait_for(lambda: httpx.get(p.url + "/readyz").status_code == 200)
    wait_for(lambda: len(p.usage(key)["records"]) == 3)  # the first, and the two the buffer could hold


def test_unreachable_database_at_start_is_a_clear_error_and_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "unimodel.toml"
    config.write_text('[store]\nurl = "postgresql+psycopg://app:hunter2@127.0.0.1:1/unimodel"\n')
    result = subprocess.run(
        [*UNIMODEL, "serve", "--config", str(config), "--port", "0"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert "127.0.0.1:1/unimodel" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_open_mode_on_a_public_address_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "unimodel.toml"
    config.write_text(f'[auth]\nmode = "open"\n[store]\ndata_dir = "{tmp_path}"\n')
    result = subprocess.run(
        [*UNIMODEL, "serve", "--config", str(config), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr and "0.0.0.0" in result.stderr


@pytest.mark.parametrize(
    ("host", "mode", "expected"),
    [
        ("127.0.0.1", None, "open"),
        ("localhost", None, "open"),
        ("::1", None, "open"),
        ("0.0.0.0", None, "keys"),
        ("10.1.2.3", None, "keys"),
        ("127.0.0.1", "keys", "keys"),
        ("0.0.0.0", "keys", "keys"),
    ],
)
def test_auth_mode_defaults(host: str, mode: str | None, expected: str) -> None:
    assert auth_mode(Settings(server={"host": host}, auth={"mode": mode})) == expected


def test_open_mode_refused_off_loopback() -> None:
    with pytest.raises(StartupRefused, match="loopback"):
        auth_mode(Settings(server={"host": "192.168.1.5"}, auth={"mode": "open"}))


def test_workers_need_redis_for_shared_limits(tmp_path: Path) -> None:
    config = tmp_path / "unimodel.toml"
    config.write_text(f'[store]\ndata_dir = "{tmp_path}"\n')
    result = subprocess.run(
        [*UNIMODEL, "serve", "--config", str(config), "--workers", "2", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "redis_url" in result.stderr


def test_a_graceful_stop_writes_every_buffered_usage_record(tmp_path: Path, openai_fake: Fake) -> None:
    """Records wait a whole minute in memory (flush_interval_s = 60); SIGTERM must still write them all."""
    port = free_port()
    config = tmp_path / "unimodel.toml"
    data = tmp_path / "data"
    config.write_text(
        f'[server]\nport = {port}\n[store]\ndata_dir = "{data}"\nflush_interval_s = 60\n'
        f'[runtime]\ndefault_models = false\n[providers.openai]\nbase_url = "{openai_fake.url}/v1"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIMODEL_")}
    process = subprocess.Popen([*UNIMODEL, "serve", "--config", str(config)], env=env, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url + "/healthz"))
        for _ in range(3):
            r = httpx.post(
                url + "/v1/chat/completions",
                json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                headers={"provider-key": OPENAI_KEY},
            )
            assert r.status_code == 200
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (the conventional exit status)
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert b"Traceback" not in (process.stderr.read() if process.stderr else b"")
    finally:
        if process.poll() is None:
            process.kill()
    store = Store.open(StoreConfig(data_dir=str(data)), migrate=False)
    try:
        records = store.query_usage(key_id=None)
    finally:
        store.close()
    assert len(records) == 3 and {r.model for r in records} == {"openai/gpt-4o"}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
