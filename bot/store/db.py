"""Engine creation and migrations (applied at start and by `codegen-bot migrate`).

A start on a database already at the newest revision asks it one question and never imports
Alembic (a fifth of the bot's start-up): HEAD_REVISION names that revision, and
tests/store/test_migrations.py holds it to Alembic's own head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
#: The newest migration's revision: bump it with every new migration.
HEAD_REVISION = "0011"
# Any constant works: it only has to be the same for every replica of the bot.
_PG_MIGRATION_LOCK = 0x636F6465


#: How long a connection waits for SQLite's write lock before it gives up.
SQLITE_TIMEOUT_SECONDS = 30


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_TIMEOUT_SECONDS}, **kwargs
        )
        on_sqlite_connect(engine.sync_engine, memory=":memory:" in url)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def on_sqlite_connect(engine: Engine, *, memory: bool) -> None:
    """Every new connection of `engine` set up the bot's way (bot.store.transactions makes a
    second engine on the same file)."""

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the web handlers read while a tick writes; busy_timeout makes writers
        # queue instead of failing with "database is locked".
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(connection: Connection) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        # Several replicas may start at once; one migrates, the others wait and find nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    command.upgrade(config, "head")


async def at_head(engine: AsyncEngine) -> bool:
    """True when the database is at HEAD_REVISION (False too when it has no tables yet)."""
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return set(result.scalars().all()) == {HEAD_REVISION}
    except DBAPIError:  # no alembic_version table: a new database
        return False


async def migrate(engine: AsyncEngine) -> None:
    if await at_head(engine):
        return
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def pending_migrations(engine: AsyncEngine) -> bool:
    """True when the database is not at the newest revision (used by `doctor`)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    async with engine.connect() as connection:
        heads = await connection.run_sync(
            lambda c: set(MigrationContext.configure(c).get_current_heads())
        )
    script = ScriptDirectory.from_config(alembic_config())
    return heads != set(script.get_heads())
