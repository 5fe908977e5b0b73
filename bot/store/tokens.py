"""People's own Codegen tokens, as stored: sealed (the store never sees them in plain text)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from bot.store.tables import PersonalToken
from bot.store.transactions import Transactions


class PersonalTokenStore:
    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def get(self, slack_user_id: str) -> PersonalToken | None:
        return await self.transactions.read(
            lambda session: session.get(PersonalToken, slack_user_id)
        )

    async def put(self, row: PersonalToken) -> None:
        """Store a person's token (replacing an earlier one)."""
        await self.transactions.run_in_session(lambda session: session.merge(row))

    async def delete(self, slack_user_id: str) -> bool:
        statement = delete(PersonalToken).where(PersonalToken.slack_user_id == slack_user_id)
        return bool(await self.transactions.execute(statement))

    async def mark_rejected(self, slack_user_id: str, *, fingerprint: str, now: datetime) -> bool:
        """Codegen rejected this token: True the first time (the person is told once)."""
        statement = (
            update(PersonalToken)
            .where(
                PersonalToken.slack_user_id == slack_user_id,
                PersonalToken.fingerprint == fingerprint,
                PersonalToken.rejected_at.is_(None),
            )
            .values(rejected_at=now)
        )
        return bool(await self.transactions.execute(statement))

    async def all(self) -> list[PersonalToken]:
        return await self.transactions.read(
            lambda session: list(session.scalars(select(PersonalToken)))
        )

    async def reseal(self, slack_user_id: str, *, sealed_token: str) -> None:
        statement = (
            update(PersonalToken)
            .where(PersonalToken.slack_user_id == slack_user_id)
            .values(sealed_token=sealed_token)
        )
        await self.transactions.execute(statement)
