"""App Home tabs: who opened the bot's Home, and when it was last published to them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from bot.store.tables import HomeTab, QueuedRequest, RequestStatus, TrackedRun
from bot.store.transactions import Transactions


class HomeTabStore:
    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def opened(self, *, team_id: str, user_id: str, now: datetime) -> HomeTab:
        """Remember that the person opened Home (their Home is kept fresh from now on)."""

        def opened(session: Session) -> HomeTab:
            row = session.get(HomeTab, (team_id, user_id))
            if row is None:
                row = HomeTab(team_id=team_id, user_id=user_id, opened_at=now)
                session.add(row)
            else:
                row.opened_at = now
            return row

        return await self.transactions.run_in_session(opened)

    async def get(self, *, team_id: str, user_id: str) -> HomeTab | None:
        return await self.transactions.read(
            lambda session: session.get(HomeTab, (team_id, user_id))
        )

    async def stale(self, *, now: datetime, quiet: timedelta, limit: int) -> list[HomeTab]:
        """Homes published at least `quiet` ago whose person has a run that changed, or a
        request that was made or settled, since: the oldest published first. A change at the
        very moment of the publish counts (the view may have been read just before it)."""
        since = HomeTab.published_at
        run_changed = exists().where(
            TrackedRun.user_id == HomeTab.user_id,
            TrackedRun.team_id == HomeTab.team_id,
            TrackedRun.last_change_at >= since,
        )
        request_changed = exists().where(
            QueuedRequest.user_id == HomeTab.user_id,
            QueuedRequest.team_id == HomeTab.team_id,
            or_(
                QueuedRequest.created_at >= since,
                and_(
                    QueuedRequest.status != RequestStatus.PENDING,
                    QueuedRequest.updated_at >= since,
                ),
            ),
        )
        statement = (
            select(HomeTab)
            .where(
                or_(
                    HomeTab.published_at.is_(None),
                    and_(since <= now - quiet, or_(run_changed, request_changed)),
                )
            )
            .order_by(HomeTab.published_at.asc().nulls_first())
            .limit(limit)
        )
        return await self.transactions.read(lambda session: list(session.scalars(statement)))

    async def claim(
        self, *, team_id: str, user_id: str, read: datetime | None, now: datetime
    ) -> bool:
        """Move published_at from `read` (the value this replica saw) to `now`: False when
        another replica got there first, so one of them publishes."""
        same = HomeTab.published_at.is_(None) if read is None else HomeTab.published_at == read
        statement = (
            update(HomeTab)
            .where(HomeTab.team_id == team_id, HomeTab.user_id == user_id, same)
            .values(published_at=now)
        )
        return bool(await self.transactions.execute(statement))

    async def unclaim(
        self, *, team_id: str, user_id: str, claimed: datetime, back_to: datetime | None
    ) -> None:
        """The publish did not go through: put published_at back so a later pass tries."""
        statement = (
            update(HomeTab)
            .where(
                HomeTab.team_id == team_id,
                HomeTab.user_id == user_id,
                HomeTab.published_at == claimed,
            )
            .values(published_at=back_to)
        )
        await self.transactions.execute(statement)
