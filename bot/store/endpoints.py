"""Endpoints Codegen answered 404 for in an organization (its alpha run logs): the bot stops
calling them until it restarts (start-up forgets them), every replica alike, and the doctor
reads why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.tables import MissingEndpoint


class MissingEndpointStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get(self, org_id: int, endpoint: str) -> MissingEndpoint | None:
        async with self.sessions() as session:
            return await session.get(MissingEndpoint, (org_id, endpoint))

    async def record(self, org_id: int, endpoint: str, *, message: str, now: datetime) -> None:
        async with self.sessions.begin() as session:
            row = await session.get(MissingEndpoint, (org_id, endpoint))
            if row is None:
                session.add(
                    MissingEndpoint(org_id=org_id, endpoint=endpoint, message=message, found_at=now)
                )
            else:
                row.message, row.found_at = message, now

    async def forget(self, org_id: int, endpoint: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                delete(MissingEndpoint)
                .where(MissingEndpoint.org_id == org_id, MissingEndpoint.endpoint == endpoint)
                .execution_options(synchronize_session=False)
            )
