"""Channel defaults: the options `/codegen config` saves for runs started in a channel."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.requests import OptionField
from bot.store.tables import ChannelDefaults


class ChannelStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def defaults(self, channel_id: str) -> ChannelDefaults | None:
        async with self.sessions() as session:
            return await session.get(ChannelDefaults, channel_id)

    async def set_defaults(
        self,
        channel_id: str,
        *,
        values: dict[OptionField, str | None],
        user_id: str,
        now: datetime,
    ) -> ChannelDefaults:
        """Save (a value) or clear (None) each of `values`; the others stay as they are."""
        async with self.sessions.begin() as session:
            row = await session.get(ChannelDefaults, channel_id)
            if row is None:
                row = ChannelDefaults(channel_id=channel_id, updated_by=user_id, updated_at=now)
                session.add(row)
            if "repo" in values:
                row.repo = values["repo"]
            if "model" in values:
                row.model = values["model"]
            if "agent_type" in values:
                row.agent_type = values["agent_type"]
            row.updated_by = user_id
            row.updated_at = now
        return row

    async def reset(self, channel_id: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                delete(ChannelDefaults).where(ChannelDefaults.channel_id == channel_id)
            )
