"""Leases: how work is handed to exactly one holder at a time.

A claim marks due rows with a fresh owner token in one statement (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, a plain atomic UPDATE on SQLite), and every later write of that row names the
token. A replica whose lease expired and was taken over finds its writes refused (they return
False) and drops the work: the new holder owns it.

Leases are short (LEASE_SECONDS) and their holder renews all of its own every RENEW_SECONDS
while it lives, so the work of a replica that died moves to another within LEASE_SECONDS
plus a tick. Owner tokens start with the replica id: a replica restarted under the same
stable id (BOT_REPLICA_ID) takes its predecessor's leases back at once (`take_back`); what
was in flight is safe to redo, since creates are looked up before they are repeated.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.sql.expression import Executable

from bot.store.tables import QueuedRequest, TrackedRun
from bot.store.transactions import Transactions

RowT = TypeVar("RowT", QueuedRequest, TrackedRun)

LEASE_SECONDS = 20.0
RENEW_SECONDS = 5.0


def new_lease_owner(replica_id: str) -> str:
    """A token unique to one claim, so fencing tells apart two claims by the same replica."""
    return f"{replica_id}:{uuid.uuid4().hex[:16]}"


def _owned_by(model: type[QueuedRequest | TrackedRun], replica_id: str) -> ColumnElement[bool]:
    escaped = replica_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return model.lease_owner.like(f"{escaped}:%", escape="\\")


class Leases:
    """Claims and fenced writes, shared by the request and run stores."""

    def __init__(self, transactions: Transactions, *, is_postgres: bool) -> None:
        # Every claim and write runs whole on SQLite's writer thread (bot.store.transactions).
        self.transactions = transactions
        self.is_postgres = is_postgres

    async def claim(
        self,
        model: type[RowT],
        *,
        due: ColumnElement[bool],
        order_by: Sequence[Any],
        owner: str,
        now: datetime,
        lease_seconds: float,
        limit: int,
    ) -> list[RowT]:
        """Up to `limit` rows matching `due` that nobody holds, now held by `owner`."""
        free = or_(model.lease_expires_at.is_(None), model.lease_expires_at <= now)
        candidates = select(model.id).where(due, free).order_by(*order_by).limit(limit)
        if self.is_postgres:
            candidates = candidates.with_for_update(skip_locked=True)
        claim = (
            update(model)
            # Repeat the conditions: on SQLite the subquery and the update are one statement
            # under the database write lock, on PostgreSQL the locked rows cannot change.
            .where(model.id.in_(candidates.scalar_subquery()), due, free)
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
            .returning(model)
            .execution_options(synchronize_session=False)
        )
        rows = await self.transactions.run_in_session(lambda s: list(s.scalars(claim).all()))
        return sorted(rows, key=lambda row: row.queue_key())

    async def write(self, model: type[RowT], key: Any, owner: str, **values: Any) -> bool:
        """A write by the holder of the row's lease; False when the lease is no longer theirs.
        Callers are the typed methods of the stores, never business code."""
        statement = (
            update(model).where(model.id == key, model.lease_owner == owner).values(**values)
        )
        return bool(await self.transactions.execute(statement))

    async def release(self, model: type[RowT], key: Any, owner: str, **values: Any) -> bool:
        return await self.write(
            model, key, owner, lease_owner=None, lease_expires_at=None, **values
        )

    async def release_many(
        self, model: type[RowT], keys: Sequence[Any], owner: str, **values: Any
    ) -> int:
        """`release` of several rows at once; returns how many were still `owner`'s."""
        if not keys:
            return 0
        statement = (
            update(model)
            .where(model.id.in_(list(keys)), model.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None, **values)
        )
        return await self.transactions.execute(statement)

    async def renew(self, replica_id: str, *, now: datetime, lease_seconds: float) -> int:
        """Extend every live lease `replica_id` holds (an expired one stays expired: another
        replica may have it by now)."""
        return await self._update_both(
            lambda model: (
                update(model)
                .where(_owned_by(model, replica_id), model.lease_expires_at > now)
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
        )

    async def take_back(self, replica_id: str) -> int:
        """At start: free the leases an earlier process with this replica id held (it is
        gone, or this one would not be starting under its id)."""
        return await self._update_both(
            lambda model: (
                update(model)
                .where(_owned_by(model, replica_id))
                .values(lease_owner=None, lease_expires_at=None)
            )
        )

    async def reap_expired(self, *, now: datetime) -> int:
        """Clear leases whose holder died; claims ignore them anyway, this keeps rows tidy."""
        return await self._update_both(
            lambda model: (
                update(model)
                .where(model.lease_expires_at <= now)
                .values(lease_owner=None, lease_expires_at=None)
            )
        )

    async def _update_both(
        self, statement: Callable[[type[QueuedRequest] | type[TrackedRun]], Executable]
    ) -> int:
        """`statement` of the requests' table and of the runs', in one transaction: the rows
        it changed in both."""
        statements = [statement(QueuedRequest), statement(TrackedRun)]
        return await self.transactions.run(
            lambda c: sum(c.execute(one).rowcount for one in statements)
        )
