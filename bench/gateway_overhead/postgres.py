"""A throwaway PostgreSQL server for the gateway-overhead benchmark's ``unimodel-keys-postgres`` target.

``initdb`` into a temporary folder, ``pg_ctl start`` on 127.0.0.1 (a free port, its socket in the same folder,
trust authentication), one database created with ``createdb``; ``stop()`` shuts it down and removes the folder.
PostgreSQL refuses to run as root, so as root every binary runs as the ``postgres`` user (``runuser``) and the
folders are handed to that user.  The server can be pinned to one CPU (``taskset``): the postmaster and every
backend inherit the affinity.  An ``atexit`` hook stops it if the benchmark dies without unwinding.

Standard library only; the binaries come from ``--pg-bin`` (default ``/usr/lib/postgresql/15/bin``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
LOOPBACK = "127.0.0.1"


class PostgresError(Exception):
    """The server could not be set up; the message carries the tool's output and the server log's tail."""


class Postgres:
    def __init__(
        self, port: int, *, bin_dir: Path = PG_BIN, cpu: int | None = None, database: str = "unimodel"
    ) -> None:
        for tool in ("initdb", "pg_ctl", "createdb"):
            if not (bin_dir / tool).exists():
                raise PostgresError(f"{bin_dir / tool} not found (apt-get install postgresql-15, or --pg-bin)")
        self.bin_dir = bin_dir
        self.port = port
        self.cpu = cpu
        self.database = database
        self.as_postgres_user = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="unimodel-bench-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self.running = False
        self.sockets.mkdir()
        if self.as_postgres_user:
            user = pwd.getpwnam(SUPERUSER)
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the benchmark's database."""
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{self.port}/{self.database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (its backends are its children), from ``postmaster.pid``."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def version(self) -> str:
        done = subprocess.run(
            [str(self.bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() or "postgres (version unknown)"

    def _run(self, tool: str, *args: str, pin: bool = False, timeout: float = 120) -> None:
        argv = [str(self.bin_dir / tool), *args]
        if self.as_postgres_user:
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        if pin and self.cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(self.cpu), *argv]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"{tool} timed out after {timeout:.0f}s{self._log_tail()}") from exc
        if done.returncode != 0:
            raise PostgresError(f"{tool} failed (rc {done.returncode}): {done.stderr.strip()}{self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\nserver log:\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        return ""

    def start(self) -> None:
        """initdb, start (pinned), create the database.  Raises PostgresError (and cleans up) on failure."""
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-sync")
            options = f"-c listen_addresses={LOOPBACK} -p {self.port} -k {self.sockets}"
            self.running = True  # from here on, stop() tries pg_ctl stop (a failed start may have left a server)
            self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start", pin=True
            )
            self._run("createdb", "-h", LOOPBACK, "-p", str(self.port), "-U", SUPERUSER, self.database)
        except PostgresError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (fast shutdown, then immediate) and remove its folder; safe to call more than once."""
        if self.running:
            for mode in ("fast", "immediate"):
                with contextlib.suppress(PostgresError):
                    self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", timeout=60)
                    break
            self.running = False
        if self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self.stop)
