"""Organizations whose Codegen refused a stop: the Stop button is not offered there until the
bot restarts (start-up forgets the refusal), and the doctor reads why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from bot.store.tables import StopRefusal
from bot.store.transactions import Transactions


class StopRefusalStore:
    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def get(self, org_id: int) -> StopRefusal | None:
        return await self.transactions.read(lambda session: session.get(StopRefusal, org_id))

    async def record(
        self, org_id: int, *, status_code: int | None, message: str, now: datetime
    ) -> None:
        def record(session: Session) -> None:
            row = session.get(StopRefusal, org_id)
            if row is None:
                session.add(
                    StopRefusal(
                        org_id=org_id, status_code=status_code, message=message, refused_at=now
                    )
                )
            else:
                row.status_code, row.message, row.refused_at = status_code, message, now

        await self.transactions.run_in_session(record)

    async def forget(self, org_id: int) -> None:
        statement = delete(StopRefusal).where(StopRefusal.org_id == org_id)
        await self.transactions.execute(statement)
