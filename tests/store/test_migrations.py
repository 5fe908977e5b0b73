"""Migrations build exactly the tables the code declares, and applying them twice is harmless."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.store.db import create_engine, migrate, pending_migrations
from bot.store.tables import Base


async def test_migrated_schema_matches_the_models(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        await migrate(engine)
        await migrate(engine)
        assert not await pending_migrations(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()


async def test_a_fresh_database_reports_pending_migrations(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        assert await pending_migrations(engine)
    finally:
        await engine.dispose()
