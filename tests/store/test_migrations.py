"""Migrations build exactly the tables the code declares, and applying them twice is harmless."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.store.db import create_engine, migrate, pending_migrations
from bot.store.tables import Base


async def test_migrated_schema_matches_the_models(fresh_sqlite_url: str) -> None:
    engine = create_engine(fresh_sqlite_url)
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


async def test_a_fresh_database_reports_pending_migrations(fresh_sqlite_url: str) -> None:
    engine = create_engine(fresh_sqlite_url)
    try:
        assert await pending_migrations(engine)
    finally:
        await engine.dispose()


def test_head_revision_is_alembics_head() -> None:
    """A start at HEAD_REVISION skips Alembic: the constant must follow every new migration."""
    from alembic.script import ScriptDirectory

    from bot.store.db import HEAD_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD_REVISION]


async def test_a_database_behind_head_is_migrated_at_start(fresh_sqlite_url: str) -> None:
    from alembic import command

    from bot.store.db import alembic_config, at_head

    engine = create_engine(fresh_sqlite_url)
    try:
        async with engine.begin() as connection:

            def to_0002(sync: object) -> None:
                config = alembic_config()
                config.attributes["connection"] = sync
                command.upgrade(config, "0002")

            await connection.run_sync(to_0002)
        assert not await at_head(engine)
        await migrate(engine)
        assert await at_head(engine)
        assert not await pending_migrations(engine)
    finally:
        await engine.dispose()


def test_a_start_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    script = (
        "import asyncio, sys\n"
        "from bot.store.db import create_engine, migrate\n"
        "async def main():\n"
        f"    engine = create_engine({url!r})\n"
        "    await migrate(engine)\n"
        "    await engine.dispose()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs == ["True", "False"]  # a new database is migrated; at head, nothing to load
