"""A real PostgreSQL 15 server for the store tests, on loopback, in a throwaway folder.

The server starts once per session, when a test first asks for `postgres_url` (or `store_url`'s postgres case).
PostgreSQL refuses to run as root: as root the binaries run as the `postgres` user. Missing binaries fail the
tests (CI must not skip them silently) unless UNIMODEL_TEST_NO_POSTGRES=1.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

PG_BIN = Path(os.environ.get("UNIMODEL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
NO_POSTGRES = os.environ.get("UNIMODEL_TEST_NO_POSTGRES") == "1"
SUPERUSER = "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One postgres process with its own data folder. `stop()` and `start()` again keep the data and the port,
    which is how the ledger tests take the database away and bring it back."""

    def __init__(self) -> None:
        self.as_postgres_user = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="unimodel-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.running = False
        self.sockets.mkdir()
        if self.as_postgres_user:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-sync", "-N")

    def _run(self, binary: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(PG_BIN / binary), *args]
        if self.as_postgres_user:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{binary} failed ({result.returncode}): {result.stderr.strip()}\n{log}")
        return result

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin_sql(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True, connect_timeout=5
        ) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        self.admin_sql(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _require_binaries() -> None:
    if (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists():
        return
    message = (
        f"PostgreSQL 15 binaries not found in {PG_BIN} (install postgresql-15, or point UNIMODEL_TEST_PG_BIN at "
        "its bin folder); set UNIMODEL_TEST_NO_POSTGRES=1 to skip the PostgreSQL tests"
    )
    if NO_POSTGRES:
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def start_postgres() -> PostgresServer:
    """A fresh, running server; call `.destroy()` when done (an atexit hook does it if a test run is cut short)."""
    _require_binaries()
    if NO_POSTGRES:
        pytest.skip("UNIMODEL_TEST_NO_POSTGRES=1")
    last: Exception | None = None
    for _ in range(3):  # the free port can be taken by someone else before postgres binds it
        server = PostgresServer()
        try:
            server.start()
        except RuntimeError as e:
            last = e
            server.destroy()
            continue
        atexit.register(server.destroy)
        return server
    raise RuntimeError(f"could not start PostgreSQL: {last}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """postgresql+psycopg://postgres@127.0.0.1:PORT/unimodel on the session's server (created empty, shared)."""
    return postgres_server.create_database("unimodel")


@pytest.fixture
def postgres_factory() -> Iterator[Callable[[], PostgresServer]]:
    """Start dedicated servers a test may stop and restart; all are removed after the test."""
    started: list[PostgresServer] = []

    def start() -> PostgresServer:
        server = start_postgres()
        started.append(server)
        return server

    yield start
    for server in started:
        server.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty database: an SQLite file, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = "t_" + uuid.uuid4().hex[:16]
    yield server.create_database(name)
    with contextlib.suppress(Exception):
        server.admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
