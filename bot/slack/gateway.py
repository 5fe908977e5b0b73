"""Every Slack Web API call the bot makes goes through SlackGateway.call, with one contract:
the response's data, or a SlackError (bot.errors) that says whether a later try may succeed.

    SlackRefused      Slack said no for good (channel_not_found, is_archived, missing_scope, …)
    SlackUnavailable  429s and 5xx/connection errors went on past the retry limits (retryable)

429s are waited out per Retry-After and 5xx/connection errors retried with growing waits, all
on the injected clock, within a total wait that stays well inside the leases of the tick
making the call. Reactions that are already in the wanted state (already_reacted,
no_reaction) are not failures. Every failure is logged with the caller's context and counted
(`on_error`), so callers that carry on regardless only decide what to do next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock, parse_retry_after
from bot.errors import SlackError, SlackRefused, SlackUnavailable

__all__ = ["HARMLESS_ERRORS", "PERMANENT_ERRORS", "SlackGateway"]

log = logging.getLogger(__name__)

# Refusals that are expected in a healthy install (an archived channel, a message deleted by a
# person, a missing invite): logged as warnings. Any other refusal is logged as an error.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "message_not_found",
        "cant_update_message",
        "msg_too_long",
        "invalid_blocks",
        "no_permission",
        "restricted_action",
        "user_not_found",
        "account_inactive",
        "invalid_auth",
        "not_authed",
        "missing_scope",
    }
)
# Reactions that are already in the wanted state are not failures.
HARMLESS_ERRORS = frozenset({"already_reacted", "no_reaction"})

ErrorHook = Callable[[str, str], None]


class SlackGateway:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        clock: Clock,
        max_attempts: int = 4,
        max_wait: float = 60.0,
        max_total_wait: float = 90.0,
        on_error: ErrorHook | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.max_total_wait = max_total_wait
        self.on_error = on_error

    async def call(
        self, method: str, params: dict[str, Any], *, context: str = ""
    ) -> dict[str, Any]:
        """Call Web API `method` (dotted, e.g. "chat.postMessage") with `params`: the
        response's data, or SlackRefused / SlackUnavailable."""
        send = getattr(self.client, method.replace(".", "_"))
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                response = await send(**params)
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as error:
                status = error.response.status_code
                code = _error_code(error.response)
                if code in HARMLESS_ERRORS:
                    return dict(error.response.data)
                if status == 429 or status >= 500:
                    if status == 429:
                        retry_after = error.response.headers.get("Retry-After")
                        wait = parse_retry_after(
                            str(retry_after) if retry_after is not None else None,
                            now=self.clock.now(),
                            default=1.0,
                        )
                        wait = min(wait, self.max_wait)
                        kind = "ratelimited"
                    else:
                        wait = min(2.0**attempt, self.max_wait)
                        kind = f"http_{status}"
                    self._count(method, kind)
                    if last or waited + wait > self.max_total_wait:
                        raise self._unavailable(method, kind, context) from None
                    log.warning(
                        "slack %s answered %s, retrying in %.1f s %s", method, status, wait, context
                    )
                    await self.clock.sleep(wait)
                    waited += wait
                    continue
                level = logging.WARNING if code in PERMANENT_ERRORS else logging.ERROR
                log.log(level, "slack %s failed: %s %s", method, code, context)
                self._count(method, code)
                raise SlackRefused(method, code) from None
            except (TimeoutError, OSError, aiohttp.ClientError) as error:
                kind = type(error).__name__
                self._count(method, kind)
                wait = min(2.0**attempt, self.max_wait)
                if last or waited + wait > self.max_total_wait:
                    raise self._unavailable(method, f"{kind}: {error}", context) from None
                await self.clock.sleep(wait)
                waited += wait
        raise self._unavailable(method, "no attempts", context)  # max_attempts < 1

    def _unavailable(self, method: str, error: str, context: str) -> SlackError:
        log.error("slack %s unavailable (%s), giving up for now %s", method, error, context)
        return SlackUnavailable(method, error)

    def _count(self, method: str, error: str) -> None:
        if self.on_error is not None:
            self.on_error(method, error)

    # -- writes --------------------------------------------------------------------------------

    async def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
        context: str = "",
    ) -> str:
        """Post a message; its ts."""
        params: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False}
        if blocks is not None:
            params["blocks"] = blocks
        if thread_ts is not None:
            params["thread_ts"] = thread_ts
        if metadata is not None:
            params["metadata"] = metadata
        response = await self.call("chat.postMessage", params, context=context)
        if not response.get("ts"):
            raise SlackRefused("chat.postMessage", "no_ts_in_response")
        return str(response["ts"])

    async def update(
        self,
        *,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        context: str = "",
    ) -> None:
        """Edit a message in place."""
        params = {"channel": channel, "ts": ts, "text": text, "blocks": blocks}
        await self.call("chat.update", params, context=context)

    async def ephemeral(
        self, *, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> None:
        params: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            params["thread_ts"] = thread_ts
        await self.call("chat.postEphemeral", params)

    async def react(
        self, *, channel: str, ts: str, add: str, remove: tuple[str, ...] = (), context: str = ""
    ) -> None:
        """Put reaction `add` on a message, taking `remove` off first (each one's absence is
        fine)."""
        for name in remove:
            params = {"channel": channel, "timestamp": ts, "name": name}
            await self.call("reactions.remove", params, context=context)
        params = {"channel": channel, "timestamp": ts, "name": add}
        await self.call("reactions.add", params, context=context)

    # -- reads -------------------------------------------------------------------------------

    async def user_name(self, user_id: str) -> str:
        """The name a person is shown by; their id when Slack cannot say."""
        try:
            response = await self.call("users.info", {"user": user_id})
        except SlackError:
            return user_id
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        return str(
            profile.get("display_name") or user.get("real_name") or user.get("name") or user_id
        )

    async def channel_info(self, channel: str) -> dict[str, Any]:
        response = await self.call("conversations.info", {"channel": channel})
        return dict(response.get("channel") or {})

    async def open_dm(self, user_id: str) -> str:
        response = await self.call("conversations.open", {"users": user_id})
        channel = response.get("channel") or {}
        if not channel.get("id"):
            raise SlackRefused("conversations.open", "no_channel_in_response")
        return str(channel["id"])

    async def permalink(self, *, channel: str, ts: str) -> str | None:
        response = await self.call("chat.getPermalink", {"channel": channel, "message_ts": ts})
        return str(response["permalink"]) if response.get("permalink") else None

    async def file_info(self, file_id: str) -> dict[str, Any]:
        response = await self.call("files.info", {"file": file_id})
        return dict(response.get("file") or {})


def _error_code(response: Any) -> str:
    """Slack's error code; the HTTP status when the body is not Slack's JSON (a 5xx page)."""
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return str(getattr(response, "status_code", "unknown"))
