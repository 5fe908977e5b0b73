"""The shared call budgets (Codegen's and Slack's): sliding-window logs per (org, bucket),
each locked on one row.

Writing a budget's row first takes the lock every spender queues on (a row lock on
PostgreSQL, the database write lock on SQLite), so replicas never spend the same slot twice.
A call may spend from several windows at once (a Slack post: its channel's and its method's);
it takes one slot in each or none, in one transaction, its rows locked in name order so two
spenders never wait on each other.

A spend is stamped with the clock read once the locks are held (waiting for a connection and
a lock can take seconds under load), and `restamp` moves it to when the call actually left:
the API counts arrivals, so the window here must too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import cast

from sqlalchemy import Integer, String, Table, bindparam, func, insert, select, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from bot.limits import wait_for_slot
from bot.store.tables import RateBudget, RateSpend
from bot.store.transactions import Transactions
from bot.store.upsert import dialect_insert


@dataclass(frozen=True)
class Window:
    """A sliding window a call spends from: at most `limit` calls in any `seconds`."""

    bucket: str
    limit: int
    seconds: float


@dataclass(frozen=True)
class Spend:
    """A try at spending: `wait` 0.0 and the ids of the spends when it was spent, else the
    seconds until it would fit, and the bucket that holds it back (nothing is spent then)."""

    wait: float
    spend_ids: tuple[int, ...] = ()
    full_bucket: str | None = None
    # Calls in each window once this try is done (this one included when it was spent), as
    # far as the window's limit: what is spent and left, for the metrics.
    in_window: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetState:
    spent: list[datetime]
    blocked_until: datetime | None


class BudgetStore:
    def __init__(self, transactions: Transactions, *, is_postgres: bool) -> None:
        # A spend's transaction runs in one go (bot.store.transactions).
        self.transactions = transactions
        self.is_postgres = is_postgres
        # Every call to Slack or Codegen spends, so the statements are built once, their
        # values bound by name: building a SELECT of subqueries and its cache key cost a
        # fifth of a spend's CPU when it was done at every call.
        self._lock_statement = _lock_statement(is_postgres=is_postgres)

    async def try_spend(
        self, *, org_id: int, windows: Sequence[Window], clock: Callable[[], datetime]
    ) -> Spend:
        """Spend one call from every window if it fits in all of them (wait 0.0); else the
        longest wait, spending nothing. `clock` is read once the budgets' locks are held."""
        ordered = sorted(windows, key=lambda w: w.bucket)
        return await self.transactions.run(
            lambda connection: self._try_spend(
                connection, org_id=org_id, windows=ordered, clock=clock
            )
        )

    def _try_spend(
        self,
        connection: Connection,
        *,
        org_id: int,
        windows: Sequence[Window],
        clock: Callable[[], datetime],
    ) -> Spend:
        blocks = self._lock_all(
            connection, org_id=org_id, buckets=[w.bucket for w in windows], now=clock()
        )
        now = clock()
        blocked = {b: until for b, until in blocks.items() if until is not None and until > now}
        fills = self._fill_all(
            connection,
            org_id=org_id,
            now=now,
            windows=[w for w in windows if w.bucket not in blocked],
        )
        wait, full = 0.0, None
        counts: dict[str, int] = {}
        for window in windows:
            if window.bucket in blocked:
                this = (blocked[window.bucket] - now).total_seconds()
                counts[window.bucket] = window.limit  # blocked: nothing is left
            else:
                count, leaving = fills[window.bucket]
                counts[window.bucket] = count
                this = wait_for_slot(
                    count, leaving, limit=window.limit, window=window.seconds, now=now
                )
            if this > wait:
                wait, full = this, window.bucket
        if wait > 0:
            return Spend(wait=wait, full_bucket=full, in_window=counts)
        ids = connection.scalars(
            _SPEND_STATEMENT,
            [{"org_id": org_id, "bucket": w.bucket, "spent_at": now} for w in windows],
        )
        return Spend(
            wait=0.0,
            spend_ids=tuple(ids.all()),
            in_window={bucket: count + 1 for bucket, count in counts.items()},
        )

    async def restamp(self, spend_ids: Sequence[int], *, at: datetime) -> None:
        """The call spent as `spend_ids` left at `at`: count it from then (never earlier)."""
        if not spend_ids:
            return
        statement = (
            update(RateSpend)
            .where(RateSpend.id.in_(list(spend_ids)), RateSpend.spent_at < at)
            .values(spent_at=at)
        )
        await self.transactions.execute(statement)

    async def block(self, *, org_id: int, bucket: str, until: datetime, now: datetime) -> None:
        """A 429 arrived: nobody spends from this budget before `until`."""

        def block(connection: Connection) -> None:
            blocks = self._lock_all(connection, org_id=org_id, buckets=[bucket], now=now)
            blocked_until = blocks[bucket]
            if blocked_until is None or blocked_until < until:
                connection.execute(
                    update(RateBudget)
                    .where(RateBudget.org_id == org_id, RateBudget.bucket == bucket)
                    .values(blocked_until=until)
                )

        await self.transactions.run(block)

    async def state(self, *, org_id: int, bucket: str, window: float, now: datetime) -> BudgetState:
        spends = select(RateSpend.spent_at).where(
            RateSpend.org_id == org_id,
            RateSpend.bucket == bucket,
            RateSpend.spent_at > now - timedelta(seconds=window),
        )
        block = select(RateBudget.blocked_until).where(
            RateBudget.org_id == org_id, RateBudget.bucket == bucket
        )

        def state(session: Session) -> BudgetState:
            return BudgetState(
                spent=list(session.scalars(spends)), blocked_until=session.scalar(block)
            )

        return await self.transactions.read(state)

    def _lock_all(
        self, connection: Connection, *, org_id: int, buckets: Sequence[str], now: datetime
    ) -> dict[str, datetime | None]:
        """Take the budgets' locks (creating their rows the first time) in one statement, and
        return each one's block by bucket. The rows are written in the order given (name
        order), so two spenders never wait on each other."""
        rows = connection.execute(
            self._lock_statement,
            [{"org_id": org_id, "bucket": b, "touched_at": now} for b in buckets],
        ).all()
        return {bucket: blocked_until for bucket, blocked_until in rows}

    def _fill_all(
        self, connection: Connection, *, org_id: int, now: datetime, windows: Sequence[Window]
    ) -> dict[str, tuple[int, datetime | None]]:
        """For each window, how many of its newest `limit` spends there are and the oldest of
        them: one row a window, all in one statement (a full window of chat.postMessage holds
        600 spends, each a datetime to build in Python if they were fetched)."""
        if not windows:
            return {}
        statement = _fill_statement(len(windows))
        values: dict[str, object] = {"org_id": org_id}
        for i, window in enumerate(windows):
            values.update(
                {
                    f"bucket_{i}": window.bucket,
                    f"since_{i}": now - timedelta(seconds=window.seconds),
                    f"limit_{i}": window.limit,
                }
            )
        rows = connection.execute(statement, values).all()
        return {bucket: (int(count), oldest) for bucket, count, oldest in rows}


def _lock_statement(*, is_postgres: bool) -> Executable:
    """The budgets' rows upserted, one parameter set per row (org_id, bucket, touched_at),
    each row's bucket and block returned in order. Core with a parameter set per row, not
    .values([...]): SQLAlchemy's compiled cache does not hold an ORM multi-row insert."""
    table = cast(Table, RateBudget.__table__)
    upsert = dialect_insert(is_postgres=is_postgres)(table)
    return upsert.on_conflict_do_update(
        index_elements=[table.c.org_id, table.c.bucket],
        set_={"touched_at": upsert.excluded.touched_at},
    ).returning(table.c.bucket, table.c.blocked_until, sort_by_parameter_order=True)


_SPENDS = cast(Table, RateSpend.__table__)
#: A spend per window, one parameter set each (org_id, bucket, spent_at); their ids in order.
_SPEND_STATEMENT = insert(_SPENDS).returning(_SPENDS.c.id, sort_by_parameter_order=True)


@cache
def _fill_statement(windows: int) -> Executable:
    """For `windows` windows, one row each: the bucket, how many of its newest `limit_i`
    spends since `since_i` there are, and the oldest of them (bound: org_id, and bucket_i,
    since_i and limit_i for each window i)."""
    parts = []
    for i in range(windows):
        newest = (
            select(RateSpend.spent_at)
            .where(
                RateSpend.org_id == bindparam("org_id"),
                RateSpend.bucket == bindparam(f"bucket_{i}"),
                RateSpend.spent_at > bindparam(f"since_{i}"),
            )
            .order_by(RateSpend.spent_at.desc())
            .limit(bindparam(f"limit_{i}", type_=Integer))
            .subquery()
        )
        parts.append(
            select(
                bindparam(f"bucket_{i}", type_=String).label("bucket"),
                func.count().label("count"),
                func.min(newest.c.spent_at).label("oldest"),
            )
        )
    return parts[0] if windows == 1 else union_all(*parts)
