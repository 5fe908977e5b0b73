"""Slack deliveries already handled, so a retried one produces nothing new."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.tables import SeenEvent


class EventStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def first_sighting(self, key: str, *, now: datetime) -> bool:
        """Record a delivery's key; False if it was seen before (a retry)."""
        try:
            async with self.sessions.begin() as session:
                session.add(SeenEvent(event_id=key, seen_at=now))
        except IntegrityError:
            return False
        return True
