"""Slack deliveries already handled, so a retried one produces nothing new."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError

from bot.store.tables import SeenEvent
from bot.store.transactions import Transactions


class EventStore:
    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def first_sighting(self, key: str, *, now: datetime) -> bool:
        """Record a delivery's key; False if it was seen before (a retry)."""
        try:
            await self.transactions.run_in_session(
                lambda session: session.add(SeenEvent(event_id=key, seen_at=now))
            )
        except IntegrityError:
            return False
        return True
