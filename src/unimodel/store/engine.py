"""Opening a database: URL handling, engines tuned for SQLite and PostgreSQL, and error messages a person can act on.

Several gateway processes may share one SQLite file, so every SQLite connection runs in WAL mode (readers never
block the writer) with a busy timeout, and write transactions start with `BEGIN IMMEDIATE`: they take the write
lock up front and wait for it, instead of failing with "database is locked" when a read turns into a write.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from .types import StoreError, StoreUnavailable

CONNECT_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_MS = 5000
WRITE = {"unimodel_write": True}  # execution option that makes an SQLite transaction BEGIN IMMEDIATE


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
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("unimodel_write") else "BEGIN")

    return engine


def reason(error: BaseException, url: URL) -> str:
    """The driver's one-line reason for a failure, without SQL, parameters or the password."""
    orig = error.orig if isinstance(error, exc.DBAPIError) and error.orig is not None else error
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    # psycopg: 'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
    if "failed: " in text:
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
