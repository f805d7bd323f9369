"""Schema migrations: Alembic, configured in code so that no alembic.ini has to ship or be found at runtime.

Several gateway processes may start at once against one database, so the upgrade runs under a lock: PostgreSQL's
transaction-scoped advisory lock, or SQLite's write lock (`BEGIN IMMEDIATE`). The first process migrates; the others
wait, then find the schema at head and do nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from .engine import WRITE, display
from .types import StoreUnavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_ADVISORY_LOCK_ID = 0x756E696D6F64656C  # "unimodel"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to head, in one transaction, under a lock that serialises concurrent starters."""
    script = ScriptDirectory.from_config(alembic_config())  # read before taking the lock: siblings wait less
    with engine.execution_options(**WRITE).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
        current = current_revision(conn)
        if current == script.get_current_head():
            return
        if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
            raise StoreUnavailable(
                f"the database {display(engine.url)} has schema revision {current}, which this unimodel does not "
                "know: a newer unimodel migrated it — upgrade unimodel"
            )
        command.upgrade(alembic_config(conn), "head")
