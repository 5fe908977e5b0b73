"""A transaction written as a function of a Connection: committed when it returns, rolled
back when it raises, on SQLite's writer thread or through run_sync on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store.db import create_engine, migrate
from bot.store.store import Store
from bot.store.tables import SeenEvent
from bot.store.transactions import Transactions

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _see(key: str) -> object:
    return insert(SeenEvent).values(event_id=key, seen_at=AT)


async def _seen(store: Store) -> list[str]:
    async with store.sessions() as session:
        return list((await session.scalars(select(SeenEvent.event_id))).all())


async def test_what_returns_is_committed_and_what_raises_is_rolled_back(store: Store) -> None:
    def add_two(connection: Connection) -> int:
        connection.execute(_see("a"))
        connection.execute(_see("b"))
        return 2

    assert await store.transactions.run(add_two) == 2

    def add_then_collide(connection: Connection) -> None:
        connection.execute(_see("c"))
        connection.execute(_see("a"))  # already there

    with pytest.raises(IntegrityError):
        await store.transactions.run(add_then_collide)
    assert sorted(await _seen(store)) == ["a", "b"]  # "c" went with its transaction


async def test_a_unit_of_work_in_an_orm_session_commits_and_hands_back_loaded_rows(
    store: Store,
) -> None:
    def add(session: Session) -> SeenEvent:
        row = SeenEvent(event_id="a", seen_at=AT)
        session.add(row)
        return row

    row = await store.transactions.run_in_session(add)
    assert (row.event_id, row.seen_at.replace(tzinfo=UTC)) == ("a", AT)  # loaded, detached

    def add_then_fail(session: Session) -> None:
        session.add(SeenEvent(event_id="b", seen_at=AT))
        session.flush()
        raise RuntimeError("changed its mind")

    with pytest.raises(RuntimeError):
        await store.transactions.run_in_session(add_then_fail)
    assert await _seen(store) == ["a"]  # "b" went with its transaction


async def test_on_a_sqlite_file_it_runs_on_one_thread_of_its_own(tmp_path: Path) -> None:
    store = Store(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"))
    try:
        await migrate(store.engine)
        assert store.transactions.on_thread
        threads = {await store.transactions.run(lambda _: threading.get_ident()) for _ in range(5)}
        assert len(threads) == 1 and threading.get_ident() not in threads
    finally:
        await store.dispose()


async def test_in_memory_it_runs_on_the_async_engines_connection() -> None:
    # A second connection to ":memory:" would open another, empty database.
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    transactions = Transactions(engine)
    try:
        assert not transactions.on_thread
        assert await transactions.run(lambda c: c.execute(select(func.sqlite_version())).scalar())
    finally:
        await transactions.dispose()
        await engine.dispose()


async def test_a_caller_that_gives_up_does_not_undo_a_transaction_under_way(
    tmp_path: Path,
) -> None:
    store = Store(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"))
    await migrate(store.engine)
    started, go_on = threading.Event(), threading.Event()

    def slow(connection: Connection) -> None:
        connection.execute(_see("kept"))
        started.set()
        go_on.wait(timeout=30)

    waiting = asyncio.create_task(store.transactions.run(slow))
    await asyncio.to_thread(started.wait, 30)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    go_on.set()
    await store.transactions.dispose()  # waits for it to finish
    try:
        assert await _seen(store) == ["kept"]
    finally:
        await store.dispose()


async def test_the_writer_never_checkpoints_on_its_own_and_the_store_checkpoints_apart(
    tmp_path: Path,
) -> None:
    """A commit that crosses SQLite's log threshold (1,000 pages) would copy the whole log
    into the database file before returning, with every ack batched behind it waiting: the
    writer's commits never do, and Store.checkpoint does it on another connection."""
    path = tmp_path / "bot.db"
    store = Store(create_engine(f"sqlite+aiosqlite:///{path}"))
    try:
        await migrate(store.engine)
        await store.checkpoint()
        before = path.stat().st_size

        def add_batch(first: int) -> Callable[[Connection], None]:
            rows = [
                {"event_id": f"{n:06d}" + "x" * 3000, "seen_at": AT}
                for n in range(first, first + 100)
            ]
            return lambda connection: connection.execute(insert(SeenEvent), rows) and None

        for first in range(0, 1500, 100):  # about 1,500 pages of log, in 15 commits
            await store.transactions.run(add_batch(first))
        assert path.stat().st_size == before  # all of it still in the log only
        await store.checkpoint()
        assert path.stat().st_size > before + 1000 * 4096
        assert len(await _seen(store)) == 1500
    finally:
        await store.dispose()


async def test_reads_run_on_a_thread_of_their_own_and_do_not_wait_for_the_writer(
    tmp_path: Path,
) -> None:
    store = Store(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"))
    await migrate(store.engine)
    started, go_on = threading.Event(), threading.Event()

    def hold(connection: Connection) -> int:
        connection.execute(_see("a"))  # holds the database's write lock until go_on
        started.set()
        go_on.wait(timeout=30)
        return threading.get_ident()

    try:
        await store.transactions.run(lambda connection: connection.execute(_see("first")))
        writing = asyncio.create_task(store.transactions.run(hold))
        await asyncio.to_thread(started.wait, 30)
        # While the writer is mid-transaction: what it committed before, not what it has not.
        seen = await asyncio.wait_for(
            store.transactions.read(lambda session: list(session.scalars(select(SeenEvent)))),
            timeout=10,
        )
        reader = await store.transactions.read(lambda _: threading.get_ident())
        go_on.set()
        writer = await writing
        assert [row.event_id for row in seen] == ["first"]  # rows loaded, usable detached
        assert len({reader, writer, threading.get_ident()}) == 3
        assert sorted(await _seen(store)) == ["a", "first"]
    finally:
        go_on.set()
        await store.dispose()
