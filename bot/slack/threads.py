"""Reading a thread: conversations.replies, page by page, through the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bot.slack.gateway import SlackGateway

PAGE_SIZE = 200


async def thread_messages(
    slack: SlackGateway,
    *,
    channel: str,
    thread_ts: str,
    before_ts: str | None = None,
    include_metadata: bool = False,
    max_pages: int | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The thread's messages as Slack pages them (its root first, then the replies, oldest
    first), up to `max_pages` pages; with `before_ts`, only those older than that message.

    A page that cannot be read raises the gateway's SlackError: the caller decides whether a
    partial thread will do."""
    cursor: str | None = None
    pages = 0
    while max_pages is None or pages < max_pages:
        params: dict[str, Any] = {"channel": channel, "ts": thread_ts, "limit": PAGE_SIZE}
        if before_ts:
            params.update(latest=before_ts, inclusive=False)
        if include_metadata:
            params["include_all_metadata"] = True
        if cursor:
            params["cursor"] = cursor
        response = await slack.call("conversations.replies", params)
        pages += 1
        for message in response.get("messages") or []:
            yield message
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return
