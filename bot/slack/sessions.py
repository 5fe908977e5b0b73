"""Slack agent sessions: each run's thread is a session whose status follows the card.

`processing` while the request is queued or the run works (Slack shows a spinner and its own
stop button), `suspended` while the run waits for the person, `active` once a stop was asked
for (the work is ending; no more stop button), `closed` when the run has ended or was refused.
The session is titled with the request's first line and started by the person who asked.

Whoever edits the card (the lease holder) records the status the session should show, and it
is sent once, when it changes. A status Slack had no room for is sent by the next tick. Where
Slack refuses sessions (the app is not declared an agent, the workspace has them off), that is
remembered per workspace until the next start, the card alone is used, and the doctor says so.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from bot.clock import Clock
from bot.errors import SlackRefused, SlackUnavailable
from bot.slack.gateway import SlackGateway
from bot.slack.render import Phase
from bot.slack.text import shorten, slack_unescape
from bot.store.store import Store
from bot.store.tables import AgentSession

log = logging.getLogger(__name__)

SessionStatus = Literal["active", "processing", "suspended", "closed"]

#: What the card's phase makes the session show.
PHASE_SESSION: dict[Phase, SessionStatus] = {
    "queued": "processing",
    "waiting": "processing",
    "dispatching": "processing",
    "running": "processing",
    "paused": "suspended",
    "complete": "closed",
    "failed": "closed",
    "stopped": "closed",
    "error": "closed",
    "tracking_stopped": "closed",
}

#: Slack's answers meaning "no sessions here": the card alone is used in that workspace.
UNSUPPORTED_ERRORS = frozenset(
    {
        "method_not_found",
        "unknown_method",
        "not_allowed",
        "not_allowed_token_type",
        "feature_disabled",
        "missing_scope",
        "not_an_agent",
        "no_permission",
    }
)
TITLE_LIMIT = 200
UNSENT_PER_TICK = 50


def session_status(phase: Phase, *, stop_requested: bool = False) -> SessionStatus:
    status = PHASE_SESSION[phase]
    if stop_requested and status == "processing":
        return "active"  # Codegen is stopping it: Slack's stop button has done its part
    return status


def session_title(prompt: str) -> str:
    """The request's first line, as plain text."""
    first = next((line for line in prompt.splitlines() if line.strip()), "Codegen run")
    return shorten(" ".join(slack_unescape(first).split()), TITLE_LIMIT)


class AgentSessions:
    def __init__(self, *, slack: SlackGateway, store: Store, clock: Clock) -> None:
        self.slack = slack
        self.store = store
        self.clock = clock

    async def follow(
        self,
        *,
        team_id: str,
        channel_id: str,
        thread_ts: str | None,
        status: SessionStatus,
        prompt: str,
        requester: str,
    ) -> None:
        """The card of this thread now shows something that makes the session `status`.
        Never raises: a session is a courtesy on top of the card."""
        if not thread_ts or not team_id:
            return  # sessions are thread-based
        try:
            row = await self.store.agent_sessions.want(
                team_id=team_id,
                channel_id=channel_id,
                thread_ts=thread_ts,
                title=session_title(prompt),
                initiator_user_id=requester,
                status=status,
                now=self.clock.now(),
            )
            if row.sent == status:
                return
            if row.sent is None and status == "closed":
                # Ended before Slack ever showed a session (refused at once): none to close.
                await self.store.agent_sessions.mark_sent(
                    channel_id=channel_id, thread_ts=thread_ts, status=status
                )
                return
            await self._send(row)
        except Exception:
            log.exception("agent session of %s/%s not updated", channel_id, thread_ts)

    async def resend(self, *, channel_id: str, thread_ts: str) -> None:
        """Send the session's status again (a stop Slack's button asked for was refused: the
        session goes on working, and its stop button comes back)."""
        row = await self.store.agent_sessions.get(channel_id=channel_id, thread_ts=thread_ts)
        if row is not None:
            await self._send(row)

    async def tick(self) -> None:
        """Send the statuses Slack had no room for when the card changed."""
        for row in await self.store.agent_sessions.unsent(limit=UNSENT_PER_TICK):
            await self._send(row)

    async def _send(self, row: AgentSession) -> None:
        if await self.store.agent_sessions.refused(row.team_id) is not None:
            return
        params: dict[str, Any] = {
            "channel_id": row.channel_id,
            "thread_ts": row.thread_ts,
            "status": row.wanted,
        }
        if row.sent is None:  # Slack takes these only when it creates the session
            params["title"] = row.title
            params["initiator_user_id"] = row.initiator_user_id
        try:
            await self.slack.call(
                "agents.sessions.setStatus", params, context=f"session={row.thread_ts}"
            )
        except SlackUnavailable:
            return  # the next tick sends it
        except SlackRefused as refused:
            if refused.error in UNSUPPORTED_ERRORS:
                log.warning(
                    "Slack refused agent sessions in workspace %s (%s): the card alone is used "
                    "there until the bot restarts",
                    row.team_id,
                    refused.error,
                )
                await self.store.agent_sessions.refuse(
                    team_id=row.team_id, error=refused.error, now=self.clock.now()
                )
                return
            # Refused for this thread only (thread not found, archived): not sent again.
            log.warning("agent session %s refused: %s", row.thread_ts, refused.error)
        await self.store.agent_sessions.mark_sent(
            channel_id=row.channel_id, thread_ts=row.thread_ts, status=row.wanted
        )
