"""One facade over the bot's tables, one store per aggregate:

    store.requests   the outbox (requests.py)        store.runs      tracked runs (runs.py)
    store.budgets    shared call budgets (budgets.py) store.channels  channel defaults
    store.events     Slack deliveries already seen   store.stop_refusals  where stop is refused
    store.tokens     people's own Codegen tokens, sealed (tokens.py)
    store.pull_requests  states set from the final reply's buttons (pull_requests.py)
    store.missing_endpoints  Codegen endpoints an organization lacks (endpoints.py)

Rows are handed out by lease (leases.py): every write by a holder is fenced on its token.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.clock import utc
from bot.store.budgets import BudgetStore
from bot.store.channels import ChannelStore
from bot.store.endpoints import MissingEndpointStore
from bot.store.events import EventStore
from bot.store.homes import HomeTabStore
from bot.store.leases import Leases
from bot.store.pull_requests import PullRequestStateStore
from bot.store.requests import RequestStore
from bot.store.runs import RunStore
from bot.store.sessions import AgentSessionStore
from bot.store.stops import StopRefusalStore
from bot.store.tables import QueuedRequest, RateSpend, RequestStatus, SeenEvent, TrackedRun
from bot.store.tokens import PersonalTokenStore
from bot.store.transactions import Transactions

#: Rows of each index SQLite's ANALYZE samples at most ("values between 100 and 1000 work
#: well for most applications": sqlite.org/lang_analyze.html).
ANALYSIS_LIMIT = 1000


def _analyze(connection: Connection) -> None:
    connection.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
    connection.exec_driver_sql("ANALYZE")


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.is_postgres = engine.dialect.name == "postgresql"
        self.transactions = Transactions(engine)
        self.leases = Leases(self.transactions, is_postgres=self.is_postgres)
        self.requests = RequestStore(self.leases, self.transactions, is_postgres=self.is_postgres)
        self.runs = RunStore(self.leases, self.transactions)
        self.budgets = BudgetStore(self.transactions, is_postgres=self.is_postgres)
        self.channels = ChannelStore(self.transactions)
        self.events = EventStore(self.transactions)
        self.stop_refusals = StopRefusalStore(self.transactions)
        self.tokens = PersonalTokenStore(self.transactions)
        self.homes = HomeTabStore(self.transactions)
        self.agent_sessions = AgentSessionStore(self.transactions)
        self.pull_requests = PullRequestStateStore(self.transactions)
        self.missing_endpoints = MissingEndpointStore(self.transactions)

    async def dispose(self) -> None:
        await self.transactions.dispose()
        await self.engine.dispose()

    async def ping(self) -> None:
        # Through the async engine's pool, not the reader thread's long-lived connection: it
        # opens the file again when its connections were closed, as a new replica would.
        async with self.sessions() as session:
            await session.execute(select(1))

    async def next_due(self, *, read_every: float | None = None) -> datetime | None:
        """The earliest moment some work falls due: a request's next attempt, a run's next
        poll, or the expiry of a lease on either (None: nothing is queued or tracked). With
        `read_every` (the tracker's minimum interval), also the moment a run in progress may
        be read again with spare reads."""
        pending = QueuedRequest.status == RequestStatus.PENDING
        tracking = TrackedRun.tracking.is_(True)
        queries = [
            select(func.min(QueuedRequest.next_attempt_at)).where(pending),
            select(func.min(QueuedRequest.lease_expires_at)).where(pending),
            select(func.min(TrackedRun.next_poll_at)).where(tracking),
            select(func.min(TrackedRun.lease_expires_at)).where(tracking),
        ]
        if read_every is not None:
            queries.append(
                select(func.min(TrackedRun.polled_at)).where(
                    tracking, TrackedRun.finished_at.is_(None)
                )
            )
        found = await self.transactions.read(
            lambda session: [session.scalar(query) for query in queries]
        )
        if read_every is not None and found[-1] is not None:
            found[-1] = utc(found[-1]) + timedelta(seconds=read_every)
        moments = [utc(moment) for moment in found if moment is not None]
        return min(moments, default=None)

    async def optimize(self) -> None:
        """Refresh the query planner's statistics. SQLite has none until asked: without them
        it takes an equality on `tracking` for selective and scans every tracked run in
        each claim (about 100 ms a tick at 10,000 tracked, 20 ms with them). PostgreSQL's
        autovacuum keeps its own.

        ANALYZE holds SQLite's write lock (every ack's insert waits behind it) and reads every
        row of every index, so it grew with the history the tables keep: about 180 ms at
        160,000 requests and runs. Bounded by ANALYSIS_LIMIT it samples each index instead:
        about 4 ms at any size, the same query plans, at start and every OPTIMIZE_SECONDS."""
        if not self.is_postgres:
            await self.transactions.run(_analyze)

    async def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database file, without waiting for anyone
        (PASSIVE), on a connection of the async engine: its thread does the I/O, and writers
        go on meanwhile. The writer thread's connection never checkpoints on its own
        (bot.store.transactions), so this keeps the log from growing. PostgreSQL: nothing."""
        if not self.is_postgres:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def reap_expired_leases(self, *, now: datetime) -> int:
        return await self.leases.reap_expired(now=now)

    async def prune(self, *, now: datetime, keep_events: timedelta, keep_spends: timedelta) -> None:
        """Forget deliveries and budget spends too old to matter."""
        events = delete(SeenEvent).where(SeenEvent.seen_at < now - keep_events)
        spends = delete(RateSpend).where(RateSpend.spent_at < now - keep_spends)

        def prune(connection: Connection) -> None:
            connection.execute(events)
            connection.execute(spends)

        await self.transactions.run(prune)
