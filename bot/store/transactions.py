"""The stores' reads and writes, each written as one function of a Connection or an ORM
Session and run in one go.

With aiosqlite every cursor operation is a hand-off to the driver's thread and back: a
budget spend from two windows took 18 of them (cursors, statements, fetches, the commit and
the pool's reset), a lookup by key 6, and the hand-offs cost more CPU than SQLite itself.
Worse, a write transaction holds SQLite's one write lock across those hand-offs, each a turn
of the event loop: under a burst of acks, writes through aiosqlite held it for tens and up
to hundreds of milliseconds, and every ack's outbox insert waited behind them (then slept in
SQLite's busy handler, which retries after 1, 2, 5, 10, 15... ms). So a store writes through
`run` (a function of a synchronous Connection) or `run_in_session` (of an ORM Session), and
reads through `read`:

* on a SQLite file, each runs whole on a thread of its own, through the standard library's
  driver on its own connection to the same file: one hand-off each (a spend from two
  windows: 2.8 -> 0.8 ms of CPU; a lookup by key 0.85 -> 0.3 ms). Every write of the process
  goes through the one writer connection, so no two of its connections wait on each other's
  lock (tests/conversation/test_single_writer.py); reads go through another, and in WAL mode
  readers and the writer never wait for each other.
* on PostgreSQL (asyncpg has no thread to hand off to) and an in-memory SQLite database
  (which a second connection would not see), through the async engine's `run_sync`.

A caller that gives up waiting (a cancelled task) does not stop a transaction already on the
thread: it commits or rolls back on its own, as a request already sent to a server would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from bot.store.db import SQLITE_TIMEOUT_SECONDS, on_sqlite_connect

T = TypeVar("T")


class Transactions:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        url = engine.url
        self.on_thread = url.get_backend_name() == "sqlite" and url.database not in (
            None,
            "",
            ":memory:",
        )
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._writer = _Lane("sqlite-writes", lambda: self._file_engine(autocheckpoint=False))
        self._reader = _Lane("sqlite-reads", lambda: self._file_engine(autocheckpoint=True))

    async def run(self, work: Callable[[Connection], T]) -> T:
        """`work` in one transaction: committed when it returns, rolled back if it raises
        (and the error raised here)."""
        if not self.on_thread:
            async with self.engine.begin() as connection:
                return await connection.run_sync(work)
        return await self._writer.run(lambda engine: _in_transaction(engine, work))

    async def execute(self, statement: Executable) -> int:
        """One write in a transaction of its own, as `run`: how many rows it matched."""
        return int(await self.run(lambda connection: connection.execute(statement).rowcount))

    async def run_in_session(self, work: Callable[[Session], T]) -> T:
        """`work` with an ORM session in one transaction, as `run`: what it changed is flushed
        and committed when it returns. Rows it returns are detached, their columns loaded."""
        return await self.run(lambda connection: _in_session(connection, work))

    async def read(self, work: Callable[[Session], T]) -> T:
        """`work` reading through an ORM session. On a SQLite file, whole on a thread of its
        own with its own connection (one hand-off instead of one per statement: a lookup by
        key costs 0.3 ms of CPU instead of 0.85), apart from the writer, so reads and writes
        never wait for each other (WAL). Rows it returns are detached, their columns loaded."""
        if not self.on_thread:
            async with self._sessions() as session:
                return await session.run_sync(work)
        return await self._reader.run(lambda engine: _in_read(engine, work))

    def _file_engine(self, *, autocheckpoint: bool) -> Engine:
        """One connection to the file through the standard library's driver, set up as the
        async engine's are."""
        engine = create_sync_engine(
            self.engine.url.set(drivername="sqlite+pysqlite"),
            connect_args={"timeout": SQLITE_TIMEOUT_SECONDS, "check_same_thread": False},
            pool_size=1,
        )
        on_sqlite_connect(engine, memory=False)
        if not autocheckpoint:
            event.listen(engine, "connect", _no_autocheckpoint)
        return engine

    async def dispose(self) -> None:
        """Wait for the reads and transactions under way, then close the threads' connections."""
        await self._reader.close()
        await self._writer.close()


class _Lane:
    """One thread and its engine, made by `make` at the thread's first call (on the thread):
    everything sent here runs there, one at a time, in the order sent."""

    def __init__(self, name: str, make: Callable[[], Engine]) -> None:
        self.name = name
        self._make = make
        self._engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def run(self, call: Callable[[Engine], T]) -> T:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        return await asyncio.wrap_future(self._thread.submit(self._call, call))

    def _call(self, call: Callable[[Engine], T]) -> T:
        if self._engine is None:
            self._engine = self._make()
        return call(self._engine)

    async def close(self) -> None:
        """After what was sent before: the engine disposed, the thread let go."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        await asyncio.wrap_future(thread.submit(self._dispose))
        thread.shutdown(wait=False)

    def _dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return work(connection)


def _in_read(engine: Engine, work: Callable[[Session], T]) -> T:
    with Session(engine, expire_on_commit=False) as session:
        return work(session)


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    # A commit that crosses SQLite's threshold (1,000 pages of log) copies the log into the
    # database file and syncs it before it returns: 0.4-0.6 s for the 4 MB of 2,000 requests
    # on this machine's disk, and every ack batched behind it waited as long. This connection
    # makes nearly every commit, so it never checkpoints; Store.checkpoint does, on another
    # connection, every few seconds, while this one goes on writing (WAL lets it).
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def _in_session(connection: Connection, work: Callable[[Session], T]) -> T:
    # The session joins the connection's transaction, which `run` commits or rolls back.
    with Session(bind=connection, expire_on_commit=False) as session:
        result = work(session)
        session.flush()
        return result
