"""The shared Codegen call budgets: a sliding-window log per (org, bucket), locked on one row.

Writing the budget's row first takes the lock every spender queues on (a row lock on
PostgreSQL, the database write lock on SQLite), so replicas never spend the same slot twice.
How long a spender must wait is the caller's arithmetic (bot.limits), passed in and run
under that lock.

A spend is stamped with the clock read once the lock is held (waiting for a connection and
the lock can take seconds under load), and `restamp` moves it to when the call actually left:
the API counts arrivals, so the window here must too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.tables import RateBudget, RateSpend


@dataclass(frozen=True)
class Spend:
    """A try at spending: `wait` 0.0 and the spend's id when it was spent, else the seconds
    until one would fit."""

    wait: float
    spend_id: int | None = None


@dataclass(frozen=True)
class BudgetState:
    spent: list[datetime]
    blocked_until: datetime | None


class BudgetStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, is_postgres: bool) -> None:
        self.sessions = sessions
        self.is_postgres = is_postgres

    async def try_spend(
        self,
        *,
        org_id: int,
        bucket: str,
        window: float,
        clock: Callable[[], datetime],
        wait_for: Callable[[Sequence[datetime], datetime], float],
    ) -> Spend:
        """Spend one call from the budget if `wait_for(spends in the window, now)` says it
        fits (wait 0.0, with the spend's id); else the seconds to wait, spending nothing.
        `clock` is read once the budget's lock is held."""
        async with self.sessions.begin() as session:
            budget = await self._lock(session, org_id=org_id, bucket=bucket, now=clock())
            now = clock()
            if budget.blocked_until is not None and budget.blocked_until > now:
                return Spend(wait=(budget.blocked_until - now).total_seconds())
            spent = await self._spent(session, org_id=org_id, bucket=bucket, now=now, window=window)
            wait = wait_for(spent, now)
            if wait > 0:
                return Spend(wait=wait)
            row = RateSpend(org_id=org_id, bucket=bucket, spent_at=now)
            session.add(row)
            await session.flush()
            return Spend(wait=0.0, spend_id=row.id)

    async def restamp(self, spend_id: int, *, at: datetime) -> None:
        """The call spent as `spend_id` left at `at`: count it from then (never earlier)."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(RateSpend)
                .where(RateSpend.id == spend_id, RateSpend.spent_at < at)
                .values(spent_at=at)
                .execution_options(synchronize_session=False)
            )

    async def block(self, *, org_id: int, bucket: str, until: datetime, now: datetime) -> None:
        """A 429 arrived: nobody spends from this budget before `until`."""
        async with self.sessions.begin() as session:
            budget = await self._lock(session, org_id=org_id, bucket=bucket, now=now)
            if budget.blocked_until is None or budget.blocked_until < until:
                budget.blocked_until = until

    async def state(self, *, org_id: int, bucket: str, window: float, now: datetime) -> BudgetState:
        async with self.sessions() as session:
            spent = await self._spent(session, org_id=org_id, bucket=bucket, now=now, window=window)
            blocked = await session.scalar(
                select(RateBudget.blocked_until).where(
                    RateBudget.org_id == org_id, RateBudget.bucket == bucket
                )
            )
        return BudgetState(spent=spent, blocked_until=blocked)

    async def _lock(
        self, session: AsyncSession, *, org_id: int, bucket: str, now: datetime
    ) -> RateBudget:
        insert = postgresql.insert if self.is_postgres else sqlite.insert
        await session.execute(
            insert(RateBudget)
            .values(org_id=org_id, bucket=bucket, touched_at=now)
            .on_conflict_do_nothing()
        )
        await session.execute(
            update(RateBudget)
            .where(RateBudget.org_id == org_id, RateBudget.bucket == bucket)
            .values(touched_at=now)
            .execution_options(synchronize_session=False)
        )
        row = await session.scalar(
            select(RateBudget)
            .where(RateBudget.org_id == org_id, RateBudget.bucket == bucket)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row

    async def _spent(
        self, session: AsyncSession, *, org_id: int, bucket: str, now: datetime, window: float
    ) -> list[datetime]:
        rows = await session.scalars(
            select(RateSpend.spent_at).where(
                RateSpend.org_id == org_id,
                RateSpend.bucket == bucket,
                RateSpend.spent_at > now - timedelta(seconds=window),
            )
        )
        return list(rows.all())
