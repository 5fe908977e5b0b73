"""People's own Codegen tokens, as stored: sealed (the store never sees them in plain text)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.tables import PersonalToken


class PersonalTokenStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get(self, slack_user_id: str) -> PersonalToken | None:
        async with self.sessions() as session:
            return await session.get(PersonalToken, slack_user_id)

    async def put(self, row: PersonalToken) -> None:
        """Store a person's token (replacing an earlier one)."""
        async with self.sessions.begin() as session:
            await session.merge(row)

    async def delete(self, slack_user_id: str) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(PersonalToken).where(PersonalToken.slack_user_id == slack_user_id)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_rejected(self, slack_user_id: str, *, fingerprint: str, now: datetime) -> bool:
        """Codegen rejected this token: True the first time (the person is told once)."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(PersonalToken)
                .where(
                    PersonalToken.slack_user_id == slack_user_id,
                    PersonalToken.fingerprint == fingerprint,
                    PersonalToken.rejected_at.is_(None),
                )
                .values(rejected_at=now)
                .execution_options(synchronize_session=False)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def all(self) -> list[PersonalToken]:
        async with self.sessions() as session:
            return list((await session.scalars(select(PersonalToken))).all())

    async def reseal(self, slack_user_id: str, *, sealed_token: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(PersonalToken)
                .where(PersonalToken.slack_user_id == slack_user_id)
                .values(sealed_token=sealed_token)
                .execution_options(synchronize_session=False)
            )
