"""The outbox: requests committed before any call to Codegen, kept until a run id or a reason.

Every write is a method with typed arguments; writes by the holder of a request's lease are
fenced on its token (see leases.py) and return False when the lease was lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from bot.requests import StoredOptions, Trigger
from bot.store.group_commit import GroupCommit
from bot.store.leases import Leases
from bot.store.tables import (
    QueuedRequest,
    ReplyState,
    RequestKind,
    RequestStatus,
    SeenEvent,
    TrackedRun,
)
from bot.store.transactions import Transactions
from bot.store.upsert import dialect_insert


@dataclass(frozen=True)
class PreparedRequest:
    """What preparing a request worked out: where the bot reports, create or resume, the
    final prompt with its images and options. Written in one fenced update."""

    kind: RequestKind
    prompt: str
    images: list[str]
    skipped_files: list[str]
    options: StoredOptions
    run_metadata: dict[str, Any]
    resume_run_id: int | None
    channel_id: str
    thread_ts: str | None
    message_ts: str | None
    trigger: Trigger
    # The thread's earlier run this follows (resumed, or ended and followed by a new run).
    parent_run_id: int | None = None

    def values(self) -> dict[str, Any]:
        """The columns this sets (the request continues `resume_run_id`, if any)."""
        return {
            "kind": self.kind,
            "prompt": self.prompt,
            "images": list(self.images),
            "skipped_files": list(self.skipped_files),
            "options": self.options,
            "run_metadata": dict(self.run_metadata),
            "resume_run_id": self.resume_run_id,
            "parent_run_id": self.parent_run_id or self.resume_run_id,
            "channel_id": self.channel_id,
            "thread_ts": self.thread_ts,
            "message_ts": self.message_ts,
            "trigger": self.trigger,
        }

    def apply_to(self, row: QueuedRequest) -> QueuedRequest:
        """The row as it reads once this is written (cards render from the row)."""
        for key, value in self.values().items():
            setattr(row, key, value)
        return row


@dataclass(frozen=True)
class QueuePlace:
    """What deciding a waiting card's queue line needs of its request: the columns, without
    its images and payloads (the queue is read every few seconds and may hold thousands)."""

    id: str
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    queue_note: str | None
    queue_noted_at: datetime | None
    card_ts: str | None


class RequestStore:
    def __init__(self, leases: Leases, transactions: Transactions, *, is_postgres: bool) -> None:
        self.leases = leases
        # Every ack's insert runs in one go (bot.store.transactions).
        self.transactions = transactions
        self.is_postgres = is_postgres
        seen = cast(Table, SeenEvent.__table__)
        upsert = dialect_insert(is_postgres=is_postgres)(seen)
        self._seen_statement = upsert.on_conflict_do_nothing(
            index_elements=[seen.c.event_id]
        ).returning(seen.c.event_id)
        self._adds: GroupCommit[tuple[QueuedRequest | dict[str, Any], str | None], bool] = (
            GroupCommit(self._add_batch)
        )

    # -- reading -----------------------------------------------------------------------------

    async def get(self, request_id: str) -> QueuedRequest | None:
        return await self.transactions.read(lambda session: session.get(QueuedRequest, request_id))

    async def pending(self, *, org_id: int) -> list[QueuedRequest]:
        """Every request still waiting to go out for this org, in queue order."""
        statement = (
            select(QueuedRequest)
            .where(QueuedRequest.org_id == org_id, QueuedRequest.status == RequestStatus.PENDING)
            .order_by(QueuedRequest.created_at, QueuedRequest.id)
        )
        return await self.transactions.read(lambda session: list(session.scalars(statement)))

    async def queue_places(self, *, org_id: int) -> list[QueuePlace]:
        """The prepared requests waiting to go out for this org, in queue order."""
        columns = [getattr(QueuedRequest, name) for name in QueuePlace.__dataclass_fields__]
        statement = (
            select(*columns)
            .where(
                QueuedRequest.org_id == org_id,
                QueuedRequest.status == RequestStatus.PENDING,
                QueuedRequest.prepared.is_(True),
            )
            .order_by(QueuedRequest.created_at, QueuedRequest.id)
        )
        return await self.transactions.read(
            lambda session: [QueuePlace(*row) for row in session.execute(statement)]
        )

    async def count_pending(self) -> int:
        statement = (
            select(func.count())
            .select_from(QueuedRequest)
            .where(QueuedRequest.status == RequestStatus.PENDING)
        )
        count: int | None = await self.transactions.read(lambda s: s.scalar(statement))
        return int(count or 0)

    async def recent(self, *, user_id: str, limit: int) -> list[QueuedRequest]:
        statement = (
            select(QueuedRequest)
            .where(QueuedRequest.user_id == user_id)
            .order_by(QueuedRequest.created_at.desc())
            .limit(limit)
        )
        return await self.transactions.read(lambda session: list(session.scalars(statement)))

    # -- the queue ---------------------------------------------------------------------------

    async def add(
        self, request: QueuedRequest | dict[str, Any], *, dedupe_key: str | None = None
    ) -> bool:
        """Commit a new request (a row, or its columns from `new_request`), and its delivery's
        key in the same transaction; False (and nothing written) when the key was seen
        before: a retried delivery. Requests added at the same moment share a transaction
        (bot.store.group_commit)."""
        return await self._adds.submit((request, dedupe_key))

    async def _add_batch(
        self, batch: Sequence[tuple[QueuedRequest | dict[str, Any], str | None]]
    ) -> list[bool]:
        """One transaction, run in one go (bot.store.transactions): the delivery keys first
        (a key already seen, in the store or earlier in the batch, drops its request), then
        one INSERT of the requests left."""
        rows = [
            (request if isinstance(request, dict) else _insert_values(request), key)
            for request, key in batch
        ]
        return await self.transactions.run(lambda connection: self._insert(connection, rows))

    def _insert(
        self, connection: Connection, batch: Sequence[tuple[dict[str, Any], str | None]]
    ) -> list[bool]:
        seen_at = {key: values["created_at"] for values, key in batch if key}
        new_keys: set[str] = set()
        if seen_at:
            # Core with a parameter set per key, not .values([...]): SQLAlchemy's compiled
            # cache does not hold a multi-row insert (bot.store.budgets).
            inserted = connection.scalars(
                self._seen_statement,
                [{"event_id": k, "seen_at": t} for k, t in seen_at.items()],
            )
            new_keys = set(inserted.all())
        added: list[bool] = []
        rows: list[dict[str, Any]] = []
        for values, key in batch:
            fresh = key is None or key in new_keys
            if key:
                new_keys.discard(key)  # a second delivery in the same batch is repeated
            added.append(fresh)
            if fresh:
                rows.append(values)
        if rows:
            # The table's INSERT, not the ORM's: no unit of work for rows written once.
            connection.execute(_INSERT_REQUESTS, rows)
        return added

    async def claim_due(
        self, *, owner: str, now: datetime, lease_seconds: float, limit: int
    ) -> list[QueuedRequest]:
        """Pending requests whose next attempt is due, oldest first."""
        return await self.leases.claim(
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

    async def release(
        self, request_id: str, *, owner: str, next_attempt_at: datetime, now: datetime
    ) -> bool:
        """Give a request back untouched (e.g. the budget is spent) to be claimed again later."""
        return await self.leases.release(
            QueuedRequest, request_id, owner, next_attempt_at=next_attempt_at, updated_at=now
        )

    async def release_many(
        self, request_ids: list[str], *, owner: str, next_attempt_at: datetime, now: datetime
    ) -> int:
        """Give back, in one write, requests that all wait the same (the queue behind one the
        budget holds back); returns how many were still this owner's."""
        return await self.leases.release_many(
            QueuedRequest, request_ids, owner, next_attempt_at=next_attempt_at, updated_at=now
        )

    async def record_prepared(
        self,
        request_id: str,
        *,
        owner: str,
        prepared: PreparedRequest,
        card_ts: str | None,
        release: bool,
        now: datetime,
    ) -> bool:
        """Ready to send. `release`: give the lease back (intake); the dispatcher keeps it."""
        values = {**prepared.values(), "prepared": True, "updated_at": now}
        if card_ts is not None:
            values["card_ts"] = card_ts
        if release:
            values.update(lease_owner=None, lease_expires_at=None)
        return await self.leases.write(QueuedRequest, request_id, owner, **values)

    async def set_root(
        self, request_id: str, *, owner: str, channel_id: str, thread_ts: str
    ) -> bool:
        """The root message a slash command's run is threaded on, recorded the moment it is
        posted: a preparation cut short does not post it again."""
        return await self.leases.write(
            QueuedRequest, request_id, owner, channel_id=channel_id, thread_ts=thread_ts
        )

    async def mark_sending(self, request_id: str, *, owner: str, sending: bool = True) -> bool:
        """Before a create leaves: from now on it may have reached Codegen (`ambiguous`), and
        the next attempt looks for it first. `sending=False`: an answer proved it did not."""
        return await self.leases.write(QueuedRequest, request_id, owner, ambiguous=sending)

    async def restart_as_create(
        self,
        request_id: str,
        *,
        owner: str,
        prompt: str,
        run_metadata: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Codegen would not resume the run: the request becomes a create, due at once."""
        return await self.leases.release(
            QueuedRequest,
            request_id,
            owner,
            kind=RequestKind.CREATE,
            prompt=prompt,
            run_metadata=run_metadata,
            resume_run_id=None,
            ambiguous=False,
            next_attempt_at=now,
            updated_at=now,
        )

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
        return await self.leases.release(
            QueuedRequest,
            request_id,
            owner,
            attempts=QueuedRequest.attempts + 1,
            ambiguous=ambiguous,
            next_attempt_at=next_attempt_at,
            error=error,
            updated_at=now,
        )

    async def record_failed(
        self, request_id: str, *, owner: str, error: str, now: datetime
    ) -> bool:
        return await self.leases.release(
            QueuedRequest,
            request_id,
            owner,
            status=RequestStatus.FAILED,
            error=error,
            updated_at=now,
        )

    async def record_dispatched(
        self, request_id: str, *, owner: str, run: TrackedRun, now: datetime
    ) -> bool:
        """Codegen accepted the request: record the run and close the request, atomically."""
        close = (
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

        def record(session: Session) -> bool:
            if not session.execute(close).rowcount:  # type: ignore[attr-defined]
                return False
            existing = session.get(TrackedRun, run.id)
            if existing is None:
                session.add(run)
            else:
                _track_again(existing, run, request_id=request_id, now=now)
            return True

        return await self.transactions.run_in_session(record)

    # -- the card ----------------------------------------------------------------------------

    async def set_card(self, request_id: str, *, card_ts: str) -> None:
        """The request's card was (re)posted: on the request, and on its run if it has one."""
        on_request = (
            update(QueuedRequest).where(QueuedRequest.id == request_id).values(card_ts=card_ts)
        )
        # A run may already exist (the dispatcher can be faster than the card post).
        on_run = (
            update(TrackedRun).where(TrackedRun.request_id == request_id).values(card_ts=card_ts)
        )

        def set_card(connection: Connection) -> None:
            connection.execute(on_request)
            connection.execute(on_run)

        await self.transactions.run(set_card)

    async def set_queue_note(
        self,
        request_id: str,
        note: str | None,
        *,
        previous: str | None,
        now: datetime | None,
    ) -> bool:
        """Replace the queue note `previous` with `note` (shown at `now`); False when it was
        no longer `previous` (another replica got there first) or the request left the queue."""
        current = (
            QueuedRequest.queue_note.is_(None)
            if previous is None
            else QueuedRequest.queue_note == previous
        )
        statement = (
            update(QueuedRequest)
            .where(
                QueuedRequest.id == request_id,
                QueuedRequest.status == RequestStatus.PENDING,
                current,
            )
            .values(queue_note=note, queue_noted_at=now)
        )
        return bool(await self.transactions.execute(statement))


def _track_again(existing: TrackedRun, run: TrackedRun, *, request_id: str, now: datetime) -> None:
    """A resume: the same run is tracked again, reporting to the new request."""
    existing.request_id = request_id
    existing.tracking = True
    existing.next_poll_at = run.next_poll_at
    existing.poll_interval = run.poll_interval
    existing.status = run.status
    existing.notified_status = None
    existing.final_reply_state = ReplyState.NONE
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


_TABLE = cast(Table, QueuedRequest.__table__)
_INSERT_REQUESTS = insert(_TABLE)
#: The columns of a request with a default, and the default (a callable or a value).
_DEFAULTS: list[tuple[str, Any]] = [
    (column.key, column.default) for column in _TABLE.columns if column.default is not None
]
_COLUMNS = frozenset(column.key for column in _TABLE.columns)


def new_request(**columns: Any) -> dict[str, Any]:
    """A new request's columns, for `RequestStore.add`, with the table's defaults for those
    not given (as a flush would fill them in): what the ack path builds instead of an ORM
    row, which cost a fifth of an ack's CPU (instrumented attributes, one by one).
    `QueuedRequest(**new_request(...))` is the row it becomes."""
    unknown = columns.keys() - _COLUMNS
    if unknown:
        raise TypeError(f"not columns of a request: {', '.join(sorted(unknown))}")
    for key, default in _DEFAULTS:
        if columns.get(key) is None:
            columns[key] = default.arg(None) if default.is_callable else default.arg
    return columns


def _insert_values(request: QueuedRequest) -> dict[str, Any]:
    """A new request's columns for a Core INSERT (`new_request` of its attributes), its
    defaults filled in on the object too (as a flush would have): preparing it reads them."""
    values = new_request(**{key: getattr(request, key) for key in _COLUMNS})
    for key, _default in _DEFAULTS:
        if getattr(request, key) is None:
            setattr(request, key, values[key])
    return values
