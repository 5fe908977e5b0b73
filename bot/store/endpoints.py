"""Endpoints Codegen answered 404 for in an organization (its alpha run logs): the bot stops
calling them until it restarts (start-up forgets them), every replica alike, and the doctor
reads why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from bot.store.tables import MissingEndpoint
from bot.store.transactions import Transactions


class MissingEndpointStore:
    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def get(self, org_id: int, endpoint: str) -> MissingEndpoint | None:
        return await self.transactions.read(
            lambda session: session.get(MissingEndpoint, (org_id, endpoint))
        )

    async def record(self, org_id: int, endpoint: str, *, message: str, now: datetime) -> None:
        def record(session: Session) -> None:
            row = session.get(MissingEndpoint, (org_id, endpoint))
            if row is None:
                session.add(
                    MissingEndpoint(org_id=org_id, endpoint=endpoint, message=message, found_at=now)
                )
            else:
                row.message, row.found_at = message, now

        await self.transactions.run_in_session(record)

    async def forget(self, org_id: int, endpoint: str) -> None:
        statement = delete(MissingEndpoint).where(
            MissingEndpoint.org_id == org_id, MissingEndpoint.endpoint == endpoint
        )
        await self.transactions.execute(statement)
