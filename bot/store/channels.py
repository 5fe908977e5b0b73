"""Channel defaults: the options `/codegen config` saves for runs started in a channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.requests import OptionField
from bot.store.tables import ChannelDefaults, ChannelDefaultsChange
from bot.store.transactions import Transactions

_FIELDS: tuple[OptionField, ...] = ("repo", "model", "agent_type")


def _values(row: ChannelDefaults | None) -> dict[str, Any]:
    return {field: getattr(row, field) if row is not None else None for field in _FIELDS}


class ChannelStore:
    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def defaults(self, channel_id: str) -> ChannelDefaults | None:
        return await self.transactions.read(
            lambda session: session.get(ChannelDefaults, channel_id)
        )

    async def set_defaults(
        self,
        channel_id: str,
        *,
        values: dict[OptionField, str | None],
        user_id: str,
        now: datetime,
    ) -> ChannelDefaults:
        """Save (a value) or clear (None) each of `values`; the others stay as they are. The
        change is recorded in the same transaction."""

        def save(session: Session) -> ChannelDefaults:
            row = session.get(ChannelDefaults, channel_id)
            before = _values(row)
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
            self._record(session, channel_id, user_id, now, before, _values(row))
            return row

        return await self.transactions.run_in_session(save)

    async def reset(self, channel_id: str, *, user_id: str, now: datetime) -> None:
        def reset(session: Session) -> None:
            before = _values(session.get(ChannelDefaults, channel_id))
            session.execute(delete(ChannelDefaults).where(ChannelDefaults.channel_id == channel_id))
            self._record(session, channel_id, user_id, now, before, _values(None))

        await self.transactions.run_in_session(reset)

    async def last_change(self, channel_id: str) -> ChannelDefaultsChange | None:
        statement = (
            select(ChannelDefaultsChange)
            .where(ChannelDefaultsChange.channel_id == channel_id)
            .order_by(ChannelDefaultsChange.changed_at.desc(), ChannelDefaultsChange.id.desc())
            .limit(1)
        )
        return await self.transactions.read(lambda session: session.scalars(statement).first())

    @staticmethod
    def _record(
        session: Session,
        channel_id: str,
        user_id: str,
        now: datetime,
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> None:
        if before != after:
            session.add(
                ChannelDefaultsChange(
                    channel_id=channel_id,
                    user_id=user_id,
                    changed_at=now,
                    before=before,
                    after=after,
                )
            )
