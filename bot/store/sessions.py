"""Slack agent sessions: the status each run thread's session should show and the last one Slack
took, and the workspaces where Slack refused sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from bot.store.tables import AgentSession, SessionSupport
from bot.store.transactions import Transactions


class AgentSessionStore:
    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def want(
        self,
        *,
        team_id: str,
        channel_id: str,
        thread_ts: str,
        title: str,
        initiator_user_id: str,
        status: str,
        now: datetime,
    ) -> AgentSession:
        """Record the status the thread's session should show; the title and initiator are
        kept from the first time (Slack takes them only when it creates the session)."""

        def want(session: Session) -> AgentSession:
            row = session.get(AgentSession, (channel_id, thread_ts))
            if row is None:
                row = AgentSession(
                    channel_id=channel_id,
                    thread_ts=thread_ts,
                    team_id=team_id,
                    title=title[:200],
                    initiator_user_id=initiator_user_id,
                    wanted=status,
                    sent=None,
                    updated_at=now,
                )
                session.add(row)
            elif row.wanted != status:
                row.wanted, row.updated_at = status, now
            return row

        return await self.transactions.run_in_session(want)

    async def mark_sent(self, *, channel_id: str, thread_ts: str, status: str) -> None:
        statement = (
            update(AgentSession)
            .where(AgentSession.channel_id == channel_id, AgentSession.thread_ts == thread_ts)
            .values(sent=status)
        )
        await self.transactions.execute(statement)

    async def get(self, *, channel_id: str, thread_ts: str) -> AgentSession | None:
        return await self.transactions.read(
            lambda session: session.get(AgentSession, (channel_id, thread_ts))
        )

    async def unsent(self, *, limit: int) -> list[AgentSession]:
        """Sessions whose status Slack has not taken yet (it was busy), in workspaces that
        have sessions, the longest waiting first."""
        refused = select(SessionSupport.team_id)
        statement = (
            select(AgentSession)
            .where(
                or_(AgentSession.sent.is_(None), AgentSession.sent != AgentSession.wanted),
                AgentSession.team_id.not_in(refused),
            )
            .order_by(AgentSession.updated_at)
            .limit(limit)
        )
        return await self.transactions.read(lambda session: list(session.scalars(statement)))

    async def refused(self, team_id: str) -> SessionSupport | None:
        return await self.transactions.read(lambda session: session.get(SessionSupport, team_id))

    async def all_refused(self) -> list[SessionSupport]:
        return await self.transactions.read(
            lambda session: list(session.scalars(select(SessionSupport)))
        )

    async def refuse(self, *, team_id: str, error: str, now: datetime) -> None:
        def refuse(session: Session) -> None:
            if session.get(SessionSupport, team_id) is None:
                session.add(SessionSupport(team_id=team_id, error=error, refused_at=now))

        await self.transactions.run_in_session(refuse)

    async def forget_refusals(self) -> None:
        """At start: try sessions again (an admin may have declared the app an agent)."""
        await self.transactions.execute(delete(SessionSupport))
