"""Ephemeral answers to the person who asked: through the slash command's response_url when
there is one, else chat.postEphemeral. Best effort: a lost hint must never lose a request."""

from __future__ import annotations

import logging

from bot.errors import SlackError
from bot.http_clients import OnDemandClient
from bot.requests import RunRequest, StopRequest
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)


class Replies:
    def __init__(self, *, slack: SlackGateway, http: OnDemandClient) -> None:
        self.slack = slack
        self.http = http

    async def to_requester(self, request: RunRequest | StopRequest, text: str) -> None:
        """An ephemeral answer to the person who made `request`."""
        if request.response_url:
            import httpx  # with the client's first request (bot.http_clients)

            try:
                answer = await self.http.client().post(
                    request.response_url,
                    json={"response_type": "ephemeral", "replace_original": False, "text": text},
                )
            except httpx.HTTPError as error:
                log.warning("response_url failed (%s); falling back to chat.postEphemeral", error)
            else:
                if answer.is_success:
                    return
                # Slack refuses a response URL 30 minutes after its command, or after five
                # uses, with a 404: the person would never see the note. (The URL itself is
                # a credential to post in the channel: never logged.)
                log.warning(
                    "response_url answered %s; falling back to chat.postEphemeral",
                    answer.status_code,
                )
        await self.whisper(
            channel=request.slack.channel_id,
            user=request.slack.user_id,
            thread_ts=request.slack.thread_ts,
            text=text,
        )

    async def whisper(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """An ephemeral message to `user` in `channel` (in the thread, when given)."""
        try:
            await self.slack.ephemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackError as error:
            log.warning("could not reply to %s in %s: %s", user, channel, error.error)
