"""Queries over the bot's tables: leases, fenced writes, budgets.

Work is handed out by lease: a claim marks due rows with a fresh owner token in one statement
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, a plain atomic UPDATE on SQLite), and every later
write of that row names the token. A replica whose lease expired and was taken over finds its
writes refused (they return False) and drops the work: the new holder owns it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import ratelimit
from bot.store.tables import (
    ChannelDefaults,
    QueuedRequest,
    RateBudget,
    RateSpend,
    RequestStatus,
    SeenEvent,
    TrackedRun,
)

RowT = TypeVar("RowT", QueuedRequest, TrackedRun)

# TrackedRun.final_reply_state: "none", or one of these (posting, posted) pairs per reply kind.
REPLY_FINAL = "final"
REPLY_PAUSE = "pause"
REPLY_STATES = {
    REPLY_FINAL: ("posting", "posted"),
    REPLY_PAUSE: ("pause-posting", "pause-posted"),
}


def new_lease_owner(replica_id: str) -> str:
    """A token unique to one claim, so fencing tells apart two claims by the same replica."""
    return f"{replica_id}:{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class BudgetState:
    spent: list[datetime]
    blocked_until: datetime | None


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.is_postgres = engine.dialect.name == "postgresql"

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.sessions() as session:
            await session.execute(select(1))

    # -- leases ------------------------------------------------------------------------------

    async def _claim(
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
        async with self.sessions.begin() as session:
            rows = list((await session.scalars(claim)).all())
        return sorted(rows, key=lambda row: _sort_key(row))

    async def claim_requests(
        self, *, owner: str, now: datetime, lease_seconds: float, limit: int
    ) -> list[QueuedRequest]:
        """Pending requests whose next attempt is due, oldest first."""
        return await self._claim(
            QueuedRequest,
            due=(QueuedRequest.status == RequestStatus.PENDING)
            & (QueuedRequest.next_attempt_at <= now),
            # The id breaks ties, so the queue order is the same in every query (places on cards).
            order_by=(QueuedRequest.created_at, QueuedRequest.id),
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            limit=limit,
        )

    async def claim_runs(
        self, *, owner: str, now: datetime, lease_seconds: float, limit: int
    ) -> list[TrackedRun]:
        """Tracked runs whose next poll is due, most overdue first."""
        return await self._claim(
            TrackedRun,
            due=TrackedRun.tracking.is_(True) & (TrackedRun.next_poll_at <= now),
            order_by=(TrackedRun.next_poll_at, TrackedRun.id),
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            limit=limit,
        )

    async def claim_runs_by_id(
        self, *, owner: str, run_ids: Sequence[int], now: datetime, lease_seconds: float
    ) -> list[TrackedRun]:
        """The tracked runs among `run_ids` that nobody holds, due or not (the tracker has just
        read them on a list page, so their news costs nothing)."""
        if not run_ids:
            return []
        return await self._claim(
            TrackedRun,
            due=TrackedRun.tracking.is_(True) & TrackedRun.id.in_(list(run_ids)),
            order_by=(TrackedRun.next_poll_at, TrackedRun.id),
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            limit=len(run_ids),
        )

    async def _fenced_update(self, model: type[RowT], key: Any, owner: str, **values: Any) -> bool:
        statement = (
            update(model)
            .where(model.id == key, model.lease_owner == owner)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        async with self.sessions.begin() as session:
            result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release_request(
        self, request_id: str, *, owner: str, next_attempt_at: datetime, now: datetime
    ) -> bool:
        """Give a request back untouched (e.g. the budget is spent) to be claimed again later."""
        return await self._fenced_update(
            QueuedRequest,
            request_id,
            owner,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=next_attempt_at,
            updated_at=now,
        )

    async def release_run(self, run_id: int, *, owner: str) -> bool:
        return await self._fenced_update(
            TrackedRun, run_id, owner, lease_owner=None, lease_expires_at=None
        )

    async def reap_expired_leases(self, *, now: datetime) -> int:
        """Clear leases whose holder died; claims ignore them anyway, this keeps rows tidy."""
        total = 0
        async with self.sessions.begin() as session:
            for model in (QueuedRequest, TrackedRun):
                result = await session.execute(
                    update(model)
                    .where(model.lease_expires_at <= now)
                    .values(lease_owner=None, lease_expires_at=None)
                    .execution_options(synchronize_session=False)
                )
                total += result.rowcount  # type: ignore[attr-defined]
        return total

    # -- requests (the outbox) ---------------------------------------------------------------

    async def add_request(self, request: QueuedRequest) -> QueuedRequest:
        async with self.sessions.begin() as session:
            session.add(request)
        return request

    async def get_request(self, request_id: str) -> QueuedRequest | None:
        async with self.sessions() as session:
            return await session.get(QueuedRequest, request_id)

    async def set_request_card(
        self, request_id: str, *, card_ts: str, thread_ts: str | None = None
    ) -> None:
        values: dict[str, Any] = {"card_ts": card_ts}
        if thread_ts is not None:
            values["thread_ts"] = thread_ts
        async with self.sessions.begin() as session:
            await session.execute(
                update(QueuedRequest).where(QueuedRequest.id == request_id).values(**values)
            )
            # A run may already exist (the dispatcher can be faster than the card post).
            await session.execute(
                update(TrackedRun).where(TrackedRun.request_id == request_id).values(**values)
            )

    async def update_request(self, request_id: str, *, owner: str, **values: Any) -> bool:
        """A fenced write by the holder of the request's lease."""
        return await self._fenced_update(QueuedRequest, request_id, owner, **values)

    async def set_queue_note(self, request_id: str, note: str) -> bool:
        """True when the note changed (the card then shows the new place in the queue)."""
        statement = (
            update(QueuedRequest)
            .where(
                QueuedRequest.id == request_id,
                QueuedRequest.status == RequestStatus.PENDING,
                or_(QueuedRequest.queue_note.is_(None), QueuedRequest.queue_note != note),
            )
            .values(queue_note=note)
            .execution_options(synchronize_session=False)
        )
        async with self.sessions.begin() as session:
            result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def pending_requests(self, *, org_id: int) -> list[QueuedRequest]:
        """Every request still waiting to go out for this org, in queue order."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(QueuedRequest)
                .where(
                    QueuedRequest.org_id == org_id,
                    QueuedRequest.status == RequestStatus.PENDING,
                )
                .order_by(QueuedRequest.created_at, QueuedRequest.id)
            )
            return list(rows.all())

    async def record_dispatched(
        self, request_id: str, *, owner: str, run: TrackedRun, now: datetime
    ) -> bool:
        """Codegen accepted the request: record the run and close the request, atomically."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(QueuedRequest)
                .where(QueuedRequest.id == request_id, QueuedRequest.lease_owner == owner)
                .values(
                    status=RequestStatus.DISPATCHED,
                    run_id=run.id,
                    ambiguous=False,
                    error=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            existing = await session.get(TrackedRun, run.id)
            if existing is None:
                session.add(run)
            else:
                # A resume: the same run is tracked again, reporting to the new request.
                existing.request_id = request_id
                existing.tracking = True
                existing.next_poll_at = run.next_poll_at
                existing.poll_interval = run.poll_interval
                existing.status = run.status
                existing.notified_status = None
                existing.final_reply_state = "none"
                existing.final_reply_ts = None
                existing.card_ts = run.card_ts
                existing.message_ts = run.message_ts
                existing.user_id = run.user_id
                existing.last_change_at = now
                existing.started_at = now
                existing.finished_at = None
                existing.stop_reason = None
                # The run's lease as the caller set it (the dispatcher holds it to show the card).
                existing.lease_owner = run.lease_owner
                existing.lease_expires_at = run.lease_expires_at
        return True

    async def record_retry(
        self,
        request_id: str,
        *,
        owner: str,
        next_attempt_at: datetime,
        ambiguous: bool,
        error: str,
        now: datetime,
    ) -> bool:
        return await self._fenced_update(
            QueuedRequest,
            request_id,
            owner,
            attempts=QueuedRequest.attempts + 1,
            ambiguous=ambiguous,
            next_attempt_at=next_attempt_at,
            error=error,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )

    async def record_failed(
        self, request_id: str, *, owner: str, error: str, now: datetime
    ) -> bool:
        return await self._fenced_update(
            QueuedRequest,
            request_id,
            owner,
            status=RequestStatus.FAILED,
            error=error,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )

    async def recent_requests(self, *, user_id: str, limit: int) -> list[QueuedRequest]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(QueuedRequest)
                .where(QueuedRequest.user_id == user_id)
                .order_by(QueuedRequest.created_at.desc())
                .limit(limit)
            )
            return list(rows.all())

    # -- tracked runs --------------------------------------------------------------------------

    async def get_run(self, run_id: int) -> TrackedRun | None:
        async with self.sessions() as session:
            return await session.get(TrackedRun, run_id)

    async def latest_run_in_thread(self, *, channel_id: str, thread_ts: str) -> TrackedRun | None:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(TrackedRun)
                .where(TrackedRun.channel_id == channel_id, TrackedRun.thread_ts == thread_ts)
                .order_by(TrackedRun.created_at.desc(), TrackedRun.id.desc())
                .limit(1)
            )
            return rows.first()

    async def update_run(self, run_id: int, *, owner: str, **values: Any) -> bool:
        """A fenced write by the holder of the run's lease."""
        return await self._fenced_update(TrackedRun, run_id, owner, **values)

    async def mark_notified(self, run_id: int, *, owner: str, status: str) -> bool:
        """True exactly once per (run, status): the caller then edits the card."""
        statement = (
            update(TrackedRun)
            .where(
                TrackedRun.id == run_id,
                TrackedRun.lease_owner == owner,
                or_(TrackedRun.notified_status.is_(None), TrackedRun.notified_status != status),
            )
            .values(notified_status=status)
            .execution_options(synchronize_session=False)
        )
        async with self.sessions.begin() as session:
            result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def begin_reply(self, run_id: int, *, owner: str, kind: str) -> str | None:
        """The once-only thread replies of a run: the final one, and the one asking for input
        while it is PAUSED (`kind` "final" or "pause"). Moves the state to "<kind> posting" and
        returns "post"; "check" when a post of this kind may have happened before a crash;
        None when it was posted already or the lease is lost. A final reply may follow a pause
        reply (the run went on without the bot resuming it)."""
        posting, _posted = REPLY_STATES[kind]
        allowed = ["none"]
        if kind == REPLY_FINAL:
            allowed += list(REPLY_STATES[REPLY_PAUSE])
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(TrackedRun)
                .where(
                    TrackedRun.id == run_id,
                    TrackedRun.lease_owner == owner,
                    TrackedRun.final_reply_state.in_(allowed),
                )
                .values(final_reply_state=posting)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                return "post"
            state = await session.scalar(
                select(TrackedRun.final_reply_state).where(
                    TrackedRun.id == run_id, TrackedRun.lease_owner == owner
                )
            )
        return "check" if state == posting else None

    async def finish_reply(
        self, run_id: int, *, owner: str, kind: str, ts: str | None, **values: Any
    ) -> bool:
        """Record the reply as posted (with any other `values` of the run, in one write)."""
        _posting, posted = REPLY_STATES[kind]
        values["final_reply_state"] = posted
        if kind == REPLY_FINAL:
            values["final_reply_ts"] = ts
        return await self._fenced_update(TrackedRun, run_id, owner, **values)

    async def observe_run(
        self, run_id: int, *, owner: str, notify: str | None, **values: Any
    ) -> tuple[bool, bool]:
        """One write for what a poll saw: the fenced update of `values`, then (if `notify` is
        given) the conditional update of notified_status that says whether the card is to be
        edited. Returns (lease still held, card to be edited)."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(TrackedRun)
                .where(TrackedRun.id == run_id, TrackedRun.lease_owner == owner)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False, False
            if notify is None:
                return True, False
            marked = await session.execute(
                update(TrackedRun)
                .where(
                    TrackedRun.id == run_id,
                    TrackedRun.lease_owner == owner,
                    or_(
                        TrackedRun.notified_status.is_(None),
                        TrackedRun.notified_status != notify,
                    ),
                )
                .values(notified_status=notify)
                .execution_options(synchronize_session=False)
            )
            return True, bool(marked.rowcount)  # type: ignore[attr-defined]

    async def reschedule_runs(
        self, *, owner: str, schedule: Sequence[tuple[int, datetime, float]]
    ) -> int:
        """Runs refreshed without news: set each one's next poll and release it, in one
        statement (fenced by the claim's owner). `schedule` is (run id, next poll, interval)."""
        if not schedule:
            return 0
        table = cast(Table, TrackedRun.__table__)
        statement = (
            update(table)
            .where(table.c.id == bindparam("run_id"), table.c.lease_owner == bindparam("owner"))
            .values(
                next_poll_at=bindparam("next_at"),
                poll_interval=bindparam("interval"),
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        params = [
            {"run_id": run_id, "owner": owner, "next_at": next_at, "interval": interval}
            for run_id, next_at, interval in schedule
        ]
        async with self.sessions.begin() as session:
            connection = await session.connection()
            result = await connection.execute(statement, params)
        return int(result.rowcount or 0)

    async def runs_in_progress(self, *, org_id: int) -> int:
        async with self.sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(TrackedRun)
                .where(TrackedRun.org_id == org_id, TrackedRun.tracking.is_(True))
            )
        return int(count or 0)

    async def tracked_runs(self, run_ids: Sequence[int]) -> list[TrackedRun]:
        async with self.sessions() as session:
            rows = await session.scalars(select(TrackedRun).where(TrackedRun.id.in_(run_ids)))
            return list(rows.all())

    # -- Slack event de-duplication ----------------------------------------------------------

    async def first_sighting(self, event_id: str, *, now: datetime) -> bool:
        """Record a Slack event id; False if it was seen before (a retry)."""
        try:
            async with self.sessions.begin() as session:
                session.add(SeenEvent(event_id=event_id, seen_at=now))
        except IntegrityError:
            return False
        return True

    # -- channel defaults --------------------------------------------------------------------

    async def channel_defaults(self, channel_id: str) -> ChannelDefaults | None:
        async with self.sessions() as session:
            return await session.get(ChannelDefaults, channel_id)

    async def set_channel_defaults(
        self, channel_id: str, *, values: dict[str, str | None], user_id: str, now: datetime
    ) -> ChannelDefaults:
        async with self.sessions.begin() as session:
            row = await session.get(ChannelDefaults, channel_id)
            if row is None:
                row = ChannelDefaults(channel_id=channel_id, updated_by=user_id, updated_at=now)
                session.add(row)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_by = user_id
            row.updated_at = now
        return row

    async def reset_channel_defaults(self, channel_id: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                delete(ChannelDefaults).where(ChannelDefaults.channel_id == channel_id)
            )

    # -- rate budgets --------------------------------------------------------------------------

    async def _lock_budget(
        self, session: AsyncSession, *, org_id: int, bucket: str, now: datetime
    ) -> RateBudget:
        insert = postgresql.insert if self.is_postgres else sqlite.insert
        await session.execute(
            insert(RateBudget)
            .values(org_id=org_id, bucket=bucket, touched_at=now)
            .on_conflict_do_nothing()
        )
        # Writing the row first takes the lock every spender queues on: a row lock on
        # PostgreSQL, the database write lock on SQLite.
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

    async def try_spend(
        self, *, org_id: int, bucket: str, limit: int, window: float, now: datetime
    ) -> float:
        """Spend one call from the budget if it fits: 0.0, else the seconds to wait."""
        async with self.sessions.begin() as session:
            budget = await self._lock_budget(session, org_id=org_id, bucket=bucket, now=now)
            if budget.blocked_until is not None and budget.blocked_until > now:
                return (budget.blocked_until - now).total_seconds()
            spent = await self._spent(
                session, org_id=org_id, bucket=bucket, since=now, window=window
            )
            wait = ratelimit.wait_before_next(spent, limit=limit, window=window, now=now)
            if wait > 0:
                return wait
            session.add(RateSpend(org_id=org_id, bucket=bucket, spent_at=now))
        return 0.0

    async def _spent(
        self, session: AsyncSession, *, org_id: int, bucket: str, since: datetime, window: float
    ) -> list[datetime]:
        rows = await session.scalars(
            select(RateSpend.spent_at).where(
                RateSpend.org_id == org_id,
                RateSpend.bucket == bucket,
                RateSpend.spent_at > since - timedelta(seconds=window),
            )
        )
        return list(rows.all())

    async def block_budget(
        self, *, org_id: int, bucket: str, until: datetime, now: datetime
    ) -> None:
        """A 429 arrived: nobody spends from this budget before `until`."""
        async with self.sessions.begin() as session:
            budget = await self._lock_budget(session, org_id=org_id, bucket=bucket, now=now)
            if budget.blocked_until is None or budget.blocked_until < until:
                budget.blocked_until = until

    async def budget_state(
        self, *, org_id: int, bucket: str, window: float, now: datetime
    ) -> BudgetState:
        async with self.sessions() as session:
            spent = await self._spent(
                session, org_id=org_id, bucket=bucket, since=now, window=window
            )
            blocked = await session.scalar(
                select(RateBudget.blocked_until).where(
                    RateBudget.org_id == org_id, RateBudget.bucket == bucket
                )
            )
        return BudgetState(spent=spent, blocked_until=blocked)

    # -- housekeeping ------------------------------------------------------------------------

    async def prune(self, *, now: datetime, keep_events: timedelta, keep_spends: timedelta) -> None:
        async with self.sessions.begin() as session:
            await session.execute(delete(SeenEvent).where(SeenEvent.seen_at < now - keep_events))
            await session.execute(delete(RateSpend).where(RateSpend.spent_at < now - keep_spends))


def _sort_key(row: QueuedRequest | TrackedRun) -> tuple[datetime, str]:
    if isinstance(row, QueuedRequest):
        return row.created_at, row.id
    return row.next_poll_at, f"{row.id:020d}"
