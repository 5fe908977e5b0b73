"""Every Slack Web API call the bot makes goes through SlackGateway.call, with one contract:
the response's data, or a SlackError (bot.errors) that says whether a later try may succeed.

    SlackRefused      Slack said no for good (channel_not_found, is_archived, missing_scope, …)
    SlackUnavailable  no budget slot, a 429, or 5xx/connection errors past the retry limits
                      (retryable; `wait` when known, `ambiguous` when Slack may have acted)

Each call first spends from Slack's rate budget (bot.slack.budget, shared by replicas); with
no slot, or after a 429 (which blocks the method for its Retry-After), it raises
SlackUnavailable with the wait and the caller makes it again later. 5xx and connection errors
are retried with growing waits on the injected clock, except where Slack may have acted on
the call: a post is then looked for (by the key in its metadata) before it is sent again.
Reactions that are already in the wanted state (already_reacted, no_reaction) are not
failures. Every failure is logged with the caller's context and counted by Slack's error code
(`on_error`), so callers that carry on regardless only decide what to do next; every attempt
is counted by its outcome (`on_call`: ok, refused, ratelimited, server_error, transport_error,
no_budget when the budget held it back unsent).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock, parse_retry_after
from bot.errors import SlackError, SlackRefused, SlackUnavailable
from bot.slack.budget import Priority, SlackBudget

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
CallHook = Callable[[str, str], None]  # (method, outcome): one of OUTCOMES

# What became of one attempt at a call, as counted by `on_call`.
OUTCOMES = ("ok", "refused", "ratelimited", "server_error", "transport_error", "no_budget")

# Every message the bot posts carries a key in its metadata (under this event type unless the
# caller gives one), so that it can be found again after an ambiguous failure.
POST_EVENT = "codegen_bot_message"
POST_KEY = "post_key"
THREAD_PAGE = 200


class SlackGateway:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        clock: Clock,
        budget: SlackBudget | None = None,
        max_attempts: int = 4,
        max_wait: float = 60.0,
        max_total_wait: float = 90.0,
        on_error: ErrorHook | None = None,
        on_call: CallHook | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.budget = budget
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.max_total_wait = max_total_wait
        self.on_error = on_error
        self.on_call = on_call

    async def call(
        self,
        method: str,
        params: dict[str, Any],
        *,
        context: str = "",
        priority: Priority = Priority.HIGH,
        repeat_ambiguous: bool = True,
    ) -> dict[str, Any]:
        """Call Web API `method` (dotted, e.g. "chat.postMessage") with `params`: the
        response's data, or SlackRefused / SlackUnavailable.

        Each attempt spends from Slack's rate budget first (`priority`: see bot.slack.budget).
        `repeat_ambiguous=False`: a 5xx, a timeout or a reset after sending raises
        SlackUnavailable(ambiguous=True) at once instead of sending again (Slack may have
        acted on it: the caller looks first)."""
        send = getattr(self.client, method.replace(".", "_"))
        channel = params.get("channel") if isinstance(params.get("channel"), str) else None
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            await self._spend(method, channel=channel, priority=priority, context=context)
            try:
                response = await send(**params)
                self._outcome(method, "ok")
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as error:
                status = error.response.status_code
                code = _error_code(error.response)
                if code in HARMLESS_ERRORS:
                    self._outcome(method, "ok")
                    return dict(error.response.data)
                if status == 429:
                    self._outcome(method, "ratelimited")
                    retry_after = error.response.headers.get("Retry-After")
                    wait = parse_retry_after(
                        str(retry_after) if retry_after is not None else None,
                        now=self.clock.now(),
                        default=1.0,
                    )
                    wait = min(wait, self.max_wait)
                    self._count(method, "ratelimited")
                    if self.budget is not None:
                        # Shared: no replica calls this method again before Retry-After, and
                        # this call is the caller's to make again then (nobody sleeps on it).
                        await self.budget.block(method, channel=channel, seconds=wait)
                        log.warning(
                            "slack %s answered 429: blocked for %.1f s %s", method, wait, context
                        )
                        raise SlackUnavailable(method, "ratelimited", wait=wait) from None
                    if last or waited + wait > self.max_total_wait:
                        raise self._unavailable(method, "ratelimited", context) from None
                    log.warning("slack %s answered 429, waiting %.1f s %s", method, wait, context)
                    await self.clock.sleep(wait)
                    waited += wait
                    continue
                if status >= 500:
                    self._outcome(method, "server_error")
                    kind = f"http_{status}"
                    self._count(method, kind)
                    wait = min(2.0**attempt, self.max_wait)
                    if not repeat_ambiguous or last or waited + wait > self.max_total_wait:
                        raise self._unavailable(method, kind, context, ambiguous=True) from None
                    log.warning(
                        "slack %s answered %s, retrying in %.1f s %s", method, status, wait, context
                    )
                    await self.clock.sleep(wait)
                    waited += wait
                    continue
                level = logging.WARNING if code in PERMANENT_ERRORS else logging.ERROR
                log.log(level, "slack %s failed: %s %s", method, code, context)
                self._outcome(method, "refused")
                self._count(method, code)
                raise SlackRefused(method, code) from None
            except (TimeoutError, OSError, aiohttp.ClientError) as error:
                kind = type(error).__name__
                self._outcome(method, "transport_error")
                self._count(method, kind)
                # A connection that was never made carried nothing; anything later may have.
                ambiguous = not isinstance(
                    error, aiohttp.ClientConnectorError | ConnectionRefusedError
                )
                wait = min(2.0**attempt, self.max_wait)
                stop = (ambiguous and not repeat_ambiguous) or last
                if stop or waited + wait > self.max_total_wait:
                    raise self._unavailable(
                        method, f"{kind}: {error}", context, ambiguous=ambiguous
                    ) from None
                await self.clock.sleep(wait)
                waited += wait
        raise self._unavailable(method, "no attempts", context)  # max_attempts < 1

    async def _spend(
        self, method: str, *, channel: str | None, priority: Priority, context: str
    ) -> None:
        if self.budget is None:
            return
        try:
            await self.budget.spend(method, channel=channel, priority=priority)
        except SlackUnavailable as spent:
            self._outcome(method, "no_budget")
            self._count(method, "budget")
            level = logging.DEBUG if priority is Priority.LOW else logging.INFO
            log.log(level, "slack %s not called: %s %s", method, spent.error, context)
            raise

    async def thread_messages(
        self,
        *,
        channel: str,
        thread_ts: str,
        before_ts: str | None = None,
        include_metadata: bool = False,
        max_pages: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The thread's messages as Slack pages them (its root first, then the replies,
        oldest first), up to `max_pages` pages; with `before_ts`, only those older than that
        message. A page that cannot be read raises SlackError: the caller decides whether a
        partial thread will do."""
        cursor: str | None = None
        pages = 0
        while max_pages is None or pages < max_pages:
            params: dict[str, Any] = {"channel": channel, "ts": thread_ts, "limit": THREAD_PAGE}
            if before_ts:
                params.update(latest=before_ts, inclusive=False)
            if include_metadata:
                params["include_all_metadata"] = True
            if cursor:
                params["cursor"] = cursor
            response = await self.call("conversations.replies", params)
            pages += 1
            for message in response.get("messages") or []:
                yield message
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    def _unavailable(
        self, method: str, error: str, context: str, *, ambiguous: bool = False
    ) -> SlackError:
        if ambiguous:
            log.warning("slack %s may not have taken the call (%s) %s", method, error, context)
        else:
            log.error("slack %s unavailable (%s), giving up for now %s", method, error, context)
        return SlackUnavailable(method, error, ambiguous=ambiguous)

    def _outcome(self, method: str, outcome: str) -> None:
        if self.on_call is not None:
            self.on_call(method, outcome)

    def _count(self, method: str, error: str) -> None:
        if self.on_error is not None:
            self.on_error(method, error)

    # -- writes --------------------------------------------------------------------------------

    async def post(
        self,
        *,
        channel: str,
        text: str,
        key: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
        context: str = "",
    ) -> str:
        """Post a message; its ts. `key` names it uniquely (it rides in the message's
        metadata): after an ambiguous failure (a 5xx, a timeout, a reset after sending) the
        thread (or, for a root message, the channel) is searched for it before posting again,
        so a message Slack stored despite the error is not posted twice."""
        event_type = (metadata or {}).get("event_type") or POST_EVENT
        payload = {**((metadata or {}).get("event_payload") or {}), POST_KEY: key}
        params: dict[str, Any] = {
            "channel": channel,
            "text": text,
            "unfurl_links": False,
            "metadata": {"event_type": event_type, "event_payload": payload},
        }
        if blocks is not None:
            params["blocks"] = blocks
        if thread_ts is not None:
            params["thread_ts"] = thread_ts
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await self.call(
                    "chat.postMessage", params, context=context, repeat_ambiguous=False
                )
            except SlackUnavailable as error:
                if not error.ambiguous or attempt == self.max_attempts:
                    raise
                found = await self._find_posted(channel=channel, thread_ts=thread_ts, key=key)
                if found is not None:
                    log.info("slack had stored message %s despite the error %s", key, context)
                    return found
                await self.clock.sleep(min(2.0**attempt, self.max_wait))
                continue
            if not response.get("ts"):
                raise SlackRefused("chat.postMessage", "no_ts_in_response")
            return str(response["ts"])
        raise SlackUnavailable("chat.postMessage", "no attempts")  # max_attempts < 1

    async def _find_posted(self, *, channel: str, thread_ts: str | None, key: str) -> str | None:
        """The ts of the bot's message carrying `key` in `thread_ts` (or among the channel's
        latest messages), None when there is none. A failed look raises SlackUnavailable
        (ambiguous): whether it was posted is still unknown."""
        try:
            if thread_ts is not None:
                async for message in self.thread_messages(
                    channel=channel, thread_ts=thread_ts, include_metadata=True
                ):
                    if _post_key(message) == key:
                        return str(message["ts"])
                return None
            params = {"channel": channel, "limit": 100, "include_all_metadata": True}
            response = await self.call("conversations.history", params)
        except SlackError as error:
            raise SlackUnavailable(
                "chat.postMessage", f"could not look for {key}: {error.error}", ambiguous=True
            ) from None
        for message in response.get("messages") or []:
            if _post_key(message) == key:
                return str(message["ts"])
        return None

    async def update(
        self,
        *,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        context: str = "",
        priority: Priority = Priority.HIGH,
    ) -> None:
        """Edit a message in place (`metadata`: what it carries, given again)."""
        params: dict[str, Any] = {"channel": channel, "ts": ts, "text": text, "blocks": blocks}
        if metadata is not None:
            params["metadata"] = metadata
        await self.call("chat.update", params, context=context, priority=priority)

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

    async def open_view(self, *, trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal for the person whose action carried `trigger_id` (valid for 3 s)."""
        await self.call("views.open", {"trigger_id": trigger_id, "view": view})

    async def publish_home(
        self, *, user_id: str, view: dict[str, Any], priority: Priority = Priority.LOW
    ) -> None:
        """Publish a person's App Home tab (replaces what they saw)."""
        await self.call(
            "views.publish", {"user_id": user_id, "view": view}, priority=priority, context="home"
        )

    async def user_email(self, user_id: str) -> str | None:
        """The email Slack has for a person (users:read.email), None when it gives none.
        SlackUnavailable (raised) means: ask again later."""
        try:
            response = await self.call("users.info", {"user": user_id})
        except SlackUnavailable:
            raise
        except SlackError:
            return None
        profile = (response.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        return str(email).strip() if email else None

    async def channel_info(self, channel: str) -> dict[str, Any]:
        response = await self.call("conversations.info", {"channel": channel})
        return dict(response.get("channel") or {})

    @staticmethod
    def bot_is_member(info: dict[str, Any]) -> bool:
        """Whether `channel_info`'s answer says the bot is in the conversation (and so may
        post there). Slack shows the bot only DMs it is part of and may leave `is_member` out
        for them."""
        if info.get("is_im"):
            return info.get("is_member", True) is not False
        return bool(info.get("is_member"))

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


def _post_key(message: dict[str, Any]) -> str | None:
    metadata = message.get("metadata") or {}
    key = (metadata.get("event_payload") or {}).get(POST_KEY)
    return str(key) if key is not None else None


def _error_code(response: Any) -> str:
    """Slack's error code; the HTTP status when the body is not Slack's JSON (a 5xx page)."""
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return str(getattr(response, "status_code", "unknown"))
