"""Shared fixtures: databases (SQLite file, real PostgreSQL), clocks, the fake Slack."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.devtools.slack import FakeSlack
from bot.store.db import create_engine, migrate
from bot.store.store import Store
from bot.store.tables import Base

PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _postgres_reachable() -> str | None:
    """None if PostgreSQL answers, else the reason it does not."""

    async def probe() -> None:
        engine = create_engine(PG_ADMIN_URL)
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        finally:
            await engine.dispose()

    try:
        asyncio.run(asyncio.wait_for(probe(), timeout=5))
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end.

    On a laptop without PostgreSQL these tests skip; in CI (CI=true) a missing server fails,
    because .ci/run starts one and the tests must run there."""
    reason = _postgres_reachable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run the PostgreSQL tests")
        pytest.skip(reason)
    name = f"codegen_bot_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(sql)
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_migrate_url(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _migrate_url(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def truncate(store: Store) -> None:
    """Empty every table of the bot (PostgreSQL: the session's database is shared)."""
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the newest revision once per test process."""
    path = tmp_path_factory.mktemp("migrated") / "bot.db"
    asyncio.run(_migrate_url(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    """A SQLite database of its own, already at the newest migration: a copy of one migrated
    per session, since migrating every test's database anew costs 0.1-0.2 s each. The bot
    takes the same path as after any restart (it finds the schema at head). Tests of the
    migrations themselves use `fresh_sqlite_url`."""
    target = tmp_path / "bot.db"
    shutil.copyfile(migrated_sqlite, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    """A SQLite database that does not exist yet."""
    return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test once on SQLite and once on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    return postgres_database


@pytest.fixture
async def empty_postgres_url(postgres_database: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    store = Store(create_engine(postgres_database))
    try:
        await truncate(store)
    finally:
        await store.dispose()
    return postgres_database


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    store = Store(engine)
    if store.is_postgres:
        await truncate(store)
    else:
        await migrate(engine)
    yield store
    await store.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A fresh FakeSlack per test, with the default token and scopes."""
    async with FakeSlack.running() as slack:
        yield slack
