"""Opening a database: URL handling, engines tuned for SQLite and PostgreSQL, and error messages a person can act on.

Several gateway processes may share one SQLite file, so every SQLite connection runs in WAL mode (readers never
block the writer) with a busy timeout, and write transactions start with `BEGIN IMMEDIATE`: they take the write
lock up front and wait for it, instead of failing with "database is locked" when a read turns into a write.

SQLite returns "database is locked" without calling its busy handler when a connection that already reads must
upgrade to a write lock. `PRAGMA journal_mode=WAL` on a file not yet in WAL mode is such a case (it reads page 1,
then takes the write lock to switch the file's format): processes opening a fresh file together fail there at
once, whatever the busy timeout. So that pragma is retried with backoff (`_enable_wal`), and `retry_while_busy`
lets `Store.open` wait out a busy database for a bounded time instead of failing a start.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from .types import StoreError, StoreUnavailable

CONNECT_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_MS = 5000
WRITE = {"unimodel_write": True}  # execution option that makes an SQLite transaction BEGIN IMMEDIATE
OPEN_BUSY_WAIT_S = 60.0  # how long opening (and migrating) waits for siblings holding the SQLite file's locks
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6

T = TypeVar("T")


def parse_url(raw: str) -> URL:
    """Parse a `[store] url`; `postgresql://` and `postgres://` mean psycopg 3, the PostgreSQL driver unimodel ships."""
    try:
        url = make_url(raw)
    except (exc.ArgumentError, ValueError) as e:
        raise StoreUnavailable(
            'cannot parse the [store] url: expected a SQLAlchemy URL such as "postgresql+psycopg://user:pw@host/db" '
            'or "sqlite:////path/to/unimodel.db"'
        ) from e
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def display(url: URL) -> str:
    """The URL with its password replaced by ***: the only form of it that may reach a message or a log line."""
    return url.render_as_string(hide_password=True)


def create(url: URL, *, default_sqlite: bool = False) -> Engine:
    """A sync engine for `url` (callers run store calls in threads); SQLite files get their folder (0700) made."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, default_sqlite=default_sqlite)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args)
    except (ImportError, exc.NoSuchModuleError) as e:
        raise StoreUnavailable(
            f"no database driver for {display(url)}: unimodel supports sqlite:/// and postgresql+psycopg:// "
            "— check [store] url"
        ) from e


def _sqlite_engine(url: URL, *, default_sqlite: bool) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        if not folder.exists():
            try:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            except OSError as e:
                raise StoreUnavailable(
                    f"cannot create the folder {folder} for the database {display(url)}: {e.strerror} — "
                    + hint(default_sqlite=default_sqlite)
                ) from e
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if database in ("", ":memory:"):  # one shared connection, or every thread would see its own empty database
        connect_args["check_same_thread"] = False
        engine = create_engine(url, hide_parameters=True, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = create_engine(url, hide_parameters=True, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the sqlite3 module, decides where transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("unimodel_write") else "BEGIN")

    return engine


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    """`PRAGMA journal_mode=WAL`, retried while a sibling holds the lock: switching a fresh file to WAL upgrades a
    read to a write lock, which SQLite refuses at once instead of waiting (see the module's docstring)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.002
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as e:
            if not is_busy(e) or time.monotonic() >= deadline:
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: siblings that collided must not retry in step
        delay = min(delay * 2, 0.1)


def is_busy(error: BaseException) -> bool:
    """Whether `error` (a driver error, or SQLAlchemy's wrapper of one) is SQLite's "database is locked"."""
    orig = error.orig if isinstance(error, exc.DBAPIError) and error.orig is not None else error
    if not isinstance(orig, sqlite3.OperationalError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "database is locked" in str(orig)


def retry_while_busy(fn: Callable[[], T], *, within_s: float | None = None) -> T:
    """Call `fn` until it does not fail with SQLite's "database is locked", for at most `within_s` seconds
    (OPEN_BUSY_WAIT_S by default).

    Each call already waits up to the busy timeout; this covers the cases SQLite does not wait for (a read that
    must become a write) and a queue of siblings migrating one after another that outlasts one busy timeout.
    """
    deadline = time.monotonic() + (OPEN_BUSY_WAIT_S if within_s is None else within_s)
    delay = 0.01
    while True:
        try:
            return fn()
        except (exc.OperationalError, sqlite3.OperationalError) as e:
            if not is_busy(e) or time.monotonic() + delay >= deadline:
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 1.0)


def reason(error: BaseException, url: URL) -> str:
    """The driver's one-line reason for a failure, without SQL, parameters or the password."""
    orig = error.orig if isinstance(error, exc.DBAPIError) and error.orig is not None else error
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    # psycopg: 'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused' (and not
    # SQLite's "NOT NULL constraint failed: usage.model", whose start is the reason)
    if "connection" in text and "failed: " in text:
        text = text.rsplit("failed: ", 1)[1]
    text = text.removeprefix("FATAL:").strip()
    if text[:1].isupper() and text[1:2].islower():
        text = text[0].lower() + text[1:]
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def hint(*, default_sqlite: bool) -> str:
    """Which setting to look at: the default SQLite file lives in data_dir; anything else came from the url."""
    return "check [store] data_dir" if default_sqlite else "check [store] url"


@contextmanager
def translate_errors(url: URL, *, default_sqlite: bool) -> Iterator[None]:
    """Turn driver failures into StoreUnavailable (cannot connect) or StoreError (the statement failed).

    SQLAlchemy's own messages include the statement and, unless hidden, its parameters (hashes, ciphertext): they
    never pass through; only the driver's reason does.
    """
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError) as e:
        raise StoreUnavailable(
            f"cannot reach the database {display(url)}: {reason(e, url)} — {hint(default_sqlite=default_sqlite)}"
        ) from e
    except exc.DBAPIError as e:
        raise StoreError(f"the database {display(url)} refused a statement: {reason(e, url)}") from e
    except exc.SQLAlchemyError as e:
        raise StoreError(f"database error on {display(url)}: {type(e).__name__}") from e
    except OSError as e:
        raise StoreUnavailable(
            f"cannot reach the database {display(url)}: {e.strerror or e} — {hint(default_sqlite=default_sqlite)}"
        ) from e
