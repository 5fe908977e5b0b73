"""Tracked runs: what the bot reports on, each with its own next poll time.

Reporting is exactly once because of two conditional writes here: `mark_notified` (a card
edit for a state happens only for the holder that moved `notified_status` to it) and
`begin_reply` (a thread reply moves none → posting → posted, see ReplyState).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from bot.store.leases import Leases
from bot.store.tables import ReplyKind, ReplyState, TrackedRun
from bot.store.transactions import Transactions


@dataclass(frozen=True)
class RunObservation:
    """What one poll saw of a run, and what the tracker decided from it, written at once."""

    status: str | None
    web_url: str | None
    summary: str | None
    result: str | None
    pull_requests: list[dict[str, Any]]
    next_poll_at: datetime
    poll_interval: float
    last_change_at: datetime | None = None  # set when something changed
    finished_at: datetime | None = None  # set when the run ended or the bot stops following it
    stop_reason: str | None = None  # why the bot stops following it (the watchdog)
    reset_reply: bool = False  # it left PAUSED: a later pause asks again
    polled_at: datetime | None = None  # when it was read (None: not read, only reported)

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "status": self.status,
            "web_url": self.web_url,
            "summary": self.summary,
            "result": self.result,
            "pull_requests": self.pull_requests,
            "next_poll_at": self.next_poll_at,
            "poll_interval": self.poll_interval,
        }
        if self.last_change_at is not None:
            values["last_change_at"] = self.last_change_at
        if self.finished_at is not None:
            values["finished_at"] = self.finished_at
        if self.stop_reason is not None:
            values["stop_reason"] = self.stop_reason
        if self.reset_reply:
            values["final_reply_state"] = ReplyState.NONE
        if self.polled_at is not None:
            values["polled_at"] = self.polled_at
        return values

    def apply_to(self, run: TrackedRun) -> TrackedRun:
        for key, value in self.values().items():
            setattr(run, key, value)
        return run


class ReplyStep(enum.Enum):
    POST = "post"  # nobody posted it: post now
    CHECK = "check"  # a post may have happened before a crash: look in the thread first


class RunStore:
    def __init__(self, leases: Leases, transactions: Transactions) -> None:
        self.leases = leases
        self.transactions = transactions  # reads and writes, each in one go

    # -- reading -----------------------------------------------------------------------------

    async def get(self, run_id: int) -> TrackedRun | None:
        return await self.transactions.read(lambda session: session.get(TrackedRun, run_id))

    async def many(self, run_ids: Sequence[int]) -> list[TrackedRun]:
        statement = select(TrackedRun).where(TrackedRun.id.in_(run_ids))
        return await self.transactions.read(lambda session: list(session.scalars(statement)))

    async def latest_in_thread(self, *, channel_id: str, thread_ts: str) -> TrackedRun | None:
        statement = (
            select(TrackedRun)
            .where(TrackedRun.channel_id == channel_id, TrackedRun.thread_ts == thread_ts)
            .order_by(TrackedRun.created_at.desc(), TrackedRun.id.desc())
            .limit(1)
        )
        return await self.transactions.read(lambda session: session.scalars(statement).first())

    async def count_tracking(self, *, org_id: int) -> int:
        statement = (
            select(func.count())
            .select_from(TrackedRun)
            .where(TrackedRun.org_id == org_id, TrackedRun.tracking.is_(True))
        )
        count: int | None = await self.transactions.read(lambda s: s.scalar(statement))
        return int(count or 0)

    async def tracking_statuses(self) -> list[str | None]:
        """The last seen status of every run still tracked."""
        statement = select(TrackedRun.status).where(TrackedRun.tracking.is_(True))
        return await self.transactions.read(lambda session: list(session.scalars(statement)))

    # -- leases ------------------------------------------------------------------------------

    async def claim_settled(
        self, *, owner: str, now: datetime, lease_seconds: float, limit: int
    ) -> list[TrackedRun]:
        """Due runs already seen ending (or given up on): only Slack work is left for them."""
        return await self.leases.claim(
            TrackedRun,
            due=TrackedRun.tracking.is_(True)
            & TrackedRun.finished_at.is_not(None)
            & (TrackedRun.next_poll_at <= now),
            order_by=(TrackedRun.next_poll_at, TrackedRun.id),
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            limit=limit,
        )

    async def claim_to_read(
        self,
        *,
        owner: str,
        now: datetime,
        read_before: datetime,
        lease_seconds: float,
        limit: int,
    ) -> list[TrackedRun]:
        """Runs in progress to spend this tick's reads on, soonest due first: those due, then
        those last read before `read_before` (the reads are there; their news is worth it)."""
        return await self.leases.claim(
            TrackedRun,
            due=TrackedRun.tracking.is_(True)
            & TrackedRun.finished_at.is_(None)
            & or_(TrackedRun.next_poll_at <= now, TrackedRun.polled_at <= read_before),
            order_by=(TrackedRun.next_poll_at, TrackedRun.id),
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            limit=limit,
        )

    async def claim_ids(
        self, *, owner: str, run_ids: Sequence[int], now: datetime, lease_seconds: float
    ) -> list[TrackedRun]:
        """The tracked runs among `run_ids` that nobody holds, due or not (the tracker has just
        read them on a list page, so their news costs nothing)."""
        if not run_ids:
            return []
        return await self.leases.claim(
            TrackedRun,
            # Runs seen ending already have nothing more to learn.
            due=TrackedRun.tracking.is_(True)
            & TrackedRun.finished_at.is_(None)
            & TrackedRun.id.in_(list(run_ids)),
            # No order: all of them are wanted, and an ORDER BY would lead SQLite to scan
            # the poll-time index instead of looking the ids up (47 ms at 10,000 tracked).
            order_by=(),
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            limit=len(run_ids),
        )

    async def claim_for_progress(
        self,
        *,
        owner: str,
        statuses: Sequence[str],
        read_before: datetime,
        now: datetime,
        lease_seconds: float,
        limit: int,
    ) -> list[TrackedRun]:
        """Runs working now (a status of `statuses`, a card, not ended) whose steps were not
        read since `read_before`, newest activity first: the latest step seen, else the
        latest status change."""
        activity = func.coalesce(TrackedRun.progress_changed_at, TrackedRun.last_change_at)
        rows = await self.leases.claim(
            TrackedRun,
            due=TrackedRun.tracking.is_(True)
            & TrackedRun.finished_at.is_(None)
            & TrackedRun.card_ts.is_not(None)
            & func.upper(TrackedRun.status).in_(list(statuses))
            & or_(
                TrackedRun.progress_read_at.is_(None), TrackedRun.progress_read_at <= read_before
            ),
            order_by=(activity.desc(), TrackedRun.id.desc()),
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            limit=limit,
        )
        return sorted(
            rows, key=lambda run: run.progress_changed_at or run.last_change_at, reverse=True
        )

    async def record_progress(
        self,
        run_id: int,
        *,
        owner: str,
        read_at: datetime,
        steps: list[dict[str, Any]] | None = None,
    ) -> bool:
        """The run's steps were read at `read_at`; `steps`, when given, are now on its card.
        Releases the run."""
        values: dict[str, Any] = {"progress_read_at": read_at}
        if steps is not None:
            values.update(progress=steps, progress_changed_at=read_at)
        return await self.leases.release(TrackedRun, run_id, owner, **values)

    async def release(
        self, run_id: int, *, owner: str, next_poll_at: datetime | None = None
    ) -> bool:
        """Let go of the run (polled next at `next_poll_at`, when given)."""
        if next_poll_at is None:
            return await self.leases.release(TrackedRun, run_id, owner)
        return await self.leases.release(TrackedRun, run_id, owner, next_poll_at=next_poll_at)

    async def reschedule(
        self,
        *,
        owner: str,
        schedule: Sequence[tuple[int, datetime, float]],
        polled_at: datetime | None,
    ) -> int:
        """Set each run's next poll and release it, in one statement (fenced by the claim's
        owner). `schedule` is (run id, next poll, interval); `polled_at`: when they were read
        (None: they were not, and keep their last read time)."""
        if not schedule:
            return 0
        table = cast(Table, TrackedRun.__table__)
        values: dict[str, Any] = {
            "next_poll_at": bindparam("next_at"),
            "poll_interval": bindparam("interval"),
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if polled_at is not None:
            values["polled_at"] = polled_at
        statement = (
            update(table)
            .where(table.c.id == bindparam("run_id"), table.c.lease_owner == bindparam("owner"))
            .values(**values)
        )
        params = [
            {"run_id": run_id, "owner": owner, "next_at": next_at, "interval": interval}
            for run_id, next_at, interval in schedule
        ]
        return int(
            await self.transactions.run(lambda c: c.execute(statement, params).rowcount or 0)
        )

    # -- what the holder writes --------------------------------------------------------------

    async def observe(
        self, run_id: int, *, owner: str, observation: RunObservation, notify: str | None
    ) -> tuple[bool, bool]:
        """One write for what a poll saw, then (if `notify` is given) the conditional update of
        notified_status that says whether the card is to be edited. Returns (lease still held,
        card to be edited)."""
        seen = (
            update(TrackedRun)
            .where(TrackedRun.id == run_id, TrackedRun.lease_owner == owner)
            .values(**observation.values())
        )

        def observe(connection: Connection) -> tuple[bool, bool]:
            if not connection.execute(seen).rowcount:
                return False, False
            if notify is None:
                return True, False
            return True, bool(connection.execute(_mark_notified(run_id, owner, notify)).rowcount)

        return await self.transactions.run(observe)

    async def mark_notified(self, run_id: int, *, owner: str, key: str) -> bool:
        """True exactly once per (run, card state): the caller then edits the card."""
        statement = _mark_notified(run_id, owner, key)
        return bool(await self.transactions.execute(statement))

    async def unmark_notified(self, run_id: int, *, owner: str, back_to: str | None) -> bool:
        """The card edit did not get through: the state is to be shown again later."""
        return await self.leases.write(TrackedRun, run_id, owner, notified_status=back_to)

    async def confirm_card(self, run_id: int, *, owner: str, key: str) -> bool:
        """The card edit for `key` went through: the card shows it."""
        return await self.leases.write(TrackedRun, run_id, owner, card_shown=key)

    async def unbegin_reply(self, run_id: int, *, owner: str, kind: ReplyKind) -> bool:
        """The reply of `kind` was not sent at all (no budget, refused before sending): the
        next try is a first try again, with nothing to look for."""
        statement = (
            update(TrackedRun)
            .where(
                TrackedRun.id == run_id,
                TrackedRun.lease_owner == owner,
                TrackedRun.final_reply_state == ReplyState.posting(kind),
            )
            .values(final_reply_state=ReplyState.NONE)
        )
        return bool(await self.transactions.execute(statement))

    async def set_card(self, run_id: int, *, owner: str, card_ts: str) -> bool:
        return await self.leases.write(TrackedRun, run_id, owner, card_ts=card_ts)

    async def stop_following(self, run_id: int, *, owner: str, reason: str, now: datetime) -> bool:
        """The bot stops following the run (Codegen no longer knows it); the card says why."""
        return await self.leases.write(
            TrackedRun, run_id, owner, finished_at=now, stop_reason=reason
        )

    async def request_stop(self, run_id: int, *, user_id: str, now: datetime) -> bool:
        """Codegen accepted a stop asked by `user_id`: recorded, and the run is due now, so
        its holder shows it on the card and reads it soon. Not fenced: no holder writes these
        columns. False when the bot no longer tracks the run."""
        statement = (
            update(TrackedRun)
            .where(TrackedRun.id == run_id, TrackedRun.tracking.is_(True))
            .values(stop_requested_by=user_id, stop_requested_at=now, next_poll_at=now)
        )
        return bool(await self.transactions.execute(statement))

    async def close(self, run_id: int, *, owner: str) -> bool:
        """Tracking is over (the final reply is out): stop polling, release."""
        return await self.leases.release(TrackedRun, run_id, owner, tracking=False)

    async def begin_reply(self, run_id: int, *, owner: str, kind: ReplyKind) -> ReplyStep | None:
        """Start the once-only reply of `kind`: POST when nobody posted it, CHECK when a post
        may have happened before a crash, None when it was posted already or the lease is
        lost. A final reply may follow a pause reply (the run went on without the bot
        resuming it)."""
        posting = ReplyState.posting(kind)
        allowed = [ReplyState.NONE]
        if kind is ReplyKind.FINAL:
            allowed += [ReplyState.PAUSE_POSTING, ReplyState.PAUSE_POSTED]
        begin = (
            update(TrackedRun)
            .where(
                TrackedRun.id == run_id,
                TrackedRun.lease_owner == owner,
                TrackedRun.final_reply_state.in_(allowed),
            )
            .values(final_reply_state=posting)
        )
        current = select(TrackedRun.final_reply_state).where(
            TrackedRun.id == run_id, TrackedRun.lease_owner == owner
        )

        def begin_reply(connection: Connection) -> ReplyStep | None:
            if connection.execute(begin).rowcount:
                return ReplyStep.POST
            return ReplyStep.CHECK if connection.scalar(current) == posting else None

        return await self.transactions.run(begin_reply)

    async def finish_reply(
        self, run_id: int, *, owner: str, kind: ReplyKind, ts: str | None, close: bool
    ) -> bool:
        """Record the reply as posted; `close` ends tracking in the same write."""
        values: dict[str, Any] = {"final_reply_state": ReplyState.posted(kind)}
        if kind is ReplyKind.FINAL:
            values["final_reply_ts"] = ts
        if close:
            return await self.leases.release(TrackedRun, run_id, owner, tracking=False, **values)
        return await self.leases.write(TrackedRun, run_id, owner, **values)


def _mark_notified(run_id: int, owner: str, key: str) -> Any:
    return (
        update(TrackedRun)
        .where(
            TrackedRun.id == run_id,
            TrackedRun.lease_owner == owner,
            or_(TrackedRun.notified_status.is_(None), TrackedRun.notified_status != key),
        )
        .values(notified_status=key)
    )
