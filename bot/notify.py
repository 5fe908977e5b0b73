"""Slack side effects: posting and editing cards, reactions, replies, and the few reads intake
needs. Every call goes through one place that waits out 429s (per Retry-After, on the injected
clock), retries 5xx, and turns permanent errors into a logged `None` so a tick never crashes
because a channel was archived.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock
from bot.codegen.models import AgentRunResponse, StatusKind, classify_status, is_terminal
from bot.options import ResolvedOptions
from bot.render import (
    CardView,
    Phase,
    RenderedMessage,
    render_card,
    render_final_reply,
    shorten,
    slack_escape,
)
from bot.requests import RunRequest
from bot.store.tables import QueuedRequest, TrackedRun

log = logging.getLogger(__name__)

# The bot's own messages carry this metadata so a reply can be found again after a crash.
FINAL_REPLY_EVENT = "codegen_run_finished"
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
        on_error: ErrorHook | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.on_error = on_error

    async def call(
        self, method: str, send: Callable[[], Awaitable[Any]], *, context: str = ""
    ) -> dict[str, Any] | None:
        """Run one Web API call with Slack's fault rules; None when it failed for good."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await send()
                return dict(response.data) if hasattr(response, "data") else dict(response)
            except SlackApiError as error:
                status = error.response.status_code
                code = str(error.response.get("error") or status)
                if code in HARMLESS_ERRORS:
                    return None
                if status == 429 and attempt < self.max_attempts:
                    wait = _retry_after(error.response.headers)
                    log.warning("slack %s rate limited, waiting %.1f s %s", method, wait, context)
                    self._count(method, "ratelimited")
                    await self.clock.sleep(min(wait, self.max_wait))
                    continue
                if status >= 500 and attempt < self.max_attempts:
                    self._count(method, f"http_{status}")
                    await self.clock.sleep(min(2.0**attempt, self.max_wait))
                    continue
                level = logging.WARNING if code in PERMANENT_ERRORS else logging.ERROR
                log.log(level, "slack %s failed: %s %s", method, code, context)
                self._count(method, code)
                return None
            except (TimeoutError, OSError) as error:
                self._count(method, type(error).__name__)
                if attempt < self.max_attempts:
                    await self.clock.sleep(min(2.0**attempt, self.max_wait))
                    continue
                log.error("slack %s unreachable: %s %s", method, error, context)
                return None
        return None

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
    ) -> str | None:
        """Post a message; its ts, or None if Slack refused for good."""
        kwargs: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False}
        if blocks is not None:
            kwargs["blocks"] = blocks
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        if metadata is not None:
            kwargs["metadata"] = metadata
        response = await self.call(
            "chat.postMessage", lambda: self.client.chat_postMessage(**kwargs), context=context
        )
        return str(response["ts"]) if response and response.get("ts") else None

    async def update(
        self,
        *,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        context: str = "",
    ) -> bool:
        response = await self.call(
            "chat.update",
            lambda: self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks),
            context=context,
        )
        return response is not None

    async def ephemeral(
        self, *, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        await self.call("chat.postEphemeral", lambda: self.client.chat_postEphemeral(**kwargs))

    async def react(self, *, channel: str, ts: str, add: str, remove: tuple[str, ...] = ()) -> None:
        for name in remove:
            await self.call(
                "reactions.remove",
                partial(self.client.reactions_remove, channel=channel, timestamp=ts, name=name),
            )
        await self.call(
            "reactions.add",
            lambda: self.client.reactions_add(channel=channel, timestamp=ts, name=add),
        )

    # -- reads -------------------------------------------------------------------------------

    async def find_final_reply(self, *, channel: str, thread_ts: str, run_id: int) -> str | None:
        """The ts of this run's final reply if it was posted (before a crash), else None."""
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "channel": channel,
                "ts": thread_ts,
                "include_all_metadata": True,
                "limit": 200,
            }
            if cursor:
                kwargs["cursor"] = cursor
            response = await self.call(
                "conversations.replies",
                partial(self.client.conversations_replies, **kwargs),
            )
            if response is None:
                raise LookupError("could not read the thread to look for an earlier reply")
            for message in response.get("messages", []):
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == FINAL_REPLY_EVENT and str(
                    payload.get("run_id")
                ) == str(run_id):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    async def thread_messages(
        self, *, channel: str, thread_ts: str, limit: int
    ) -> list[dict[str, Any]]:
        response = await self.call(
            "conversations.replies",
            lambda: self.client.conversations_replies(channel=channel, ts=thread_ts, limit=limit),
        )
        return list(response.get("messages", [])) if response else []

    async def user_name(self, user_id: str) -> str:
        response = await self.call("users.info", lambda: self.client.users_info(user=user_id))
        if not response:
            return user_id
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        return str(
            profile.get("display_name") or user.get("real_name") or user.get("name") or user_id
        )

    async def channel_info(self, channel: str) -> dict[str, Any] | None:
        response = await self.call(
            "conversations.info", lambda: self.client.conversations_info(channel=channel)
        )
        return dict(response.get("channel") or {}) if response else None

    async def open_dm(self, user_id: str) -> str | None:
        response = await self.call(
            "conversations.open", lambda: self.client.conversations_open(users=user_id)
        )
        return str(response["channel"]["id"]) if response and response.get("channel") else None

    async def permalink(self, *, channel: str, ts: str) -> str | None:
        response = await self.call(
            "chat.getPermalink",
            lambda: self.client.chat_getPermalink(channel=channel, message_ts=ts),
        )
        return str(response["permalink"]) if response and response.get("permalink") else None

    async def file_info(self, file_id: str) -> dict[str, Any]:
        response = await self.call("files.info", lambda: self.client.files_info(file=file_id))
        return dict(response.get("file") or {}) if response else {}


def _retry_after(headers: Any) -> float:
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return max(0.0, float(value))
    except (TypeError, ValueError, AttributeError):
        return 1.0


# -- run cards: one status card per request/run, edited in place ------------------------------

REACTION_RECEIVED = "eyes"
REACTION_RUNNING = "hourglass_flowing_sand"
REACTION_DONE = "white_check_mark"
REACTION_FAILED = "x"
_ALL_REACTIONS = (REACTION_RECEIVED, REACTION_RUNNING, REACTION_DONE, REACTION_FAILED)


def render_request_root(request: RunRequest) -> RenderedMessage:
    """The channel message a slash command's run is threaded on: who asked, what, shortened."""
    prompt = shorten(slack_escape(request.prompt), 300)
    text = f"<@{request.slack.user_id}> asked Codegen: {prompt}"
    return RenderedMessage(
        text=text,
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "Status updates follow in this thread."}],
            },
        ],
    )


def run_phase(run: TrackedRun) -> Phase:
    if run.stop_reason and run.tracking is False and not is_terminal(run.status):
        return "tracking_stopped"
    kind = classify_status(run.status)
    if kind is StatusKind.IN_PROGRESS:
        return "running"
    if kind is StatusKind.WAITING_FOR_INPUT:
        return "paused"
    if kind is StatusKind.SUCCESS:
        return "complete"
    return "failed"


def _resolved(options: dict[str, Any]) -> ResolvedOptions:
    return ResolvedOptions.model_validate(options.get("resolved") or {})


def as_api_run(run: TrackedRun) -> AgentRunResponse:
    return AgentRunResponse(
        id=run.id,
        organization_id=run.org_id,
        status=run.status,
        web_url=run.web_url,
        summary=run.summary,
        result=run.result,
        github_pull_requests=run.pull_requests or None,
    )


class RunCards:
    """Renders a request's or run's state and puts it on its card, reactions included."""

    def __init__(self, *, slack: SlackGateway, clock: Clock) -> None:
        self.slack = slack
        self.clock = clock

    def request_view(self, row: QueuedRequest, **changes: Any) -> CardView:
        request_json = row.request_json or {}
        fields: dict[str, Any] = {
            "phase": "queued",
            "prompt": request_json.get("prompt", row.prompt),
            "requester_id": row.user_id,
            "run_id": row.resume_run_id,
            "options": _resolved(row.options),
            "repo_label": row.options.get("repo_label"),
            "created_at": row.created_at,
        }
        fields.update(changes)
        return CardView(**fields)

    async def post_request_card(self, row: QueuedRequest) -> str | None:
        note = f"sent to run #{row.resume_run_id}" if row.resume_run_id else None
        message = render_card(self.request_view(row, note=note), now=self.clock.now())
        return await self.slack.post(
            channel=row.channel_id,
            thread_ts=row.thread_ts,
            text=message.text,
            blocks=message.blocks,
            context=f"request={row.id}",
        )

    async def show_request(self, row: QueuedRequest, **changes: Any) -> None:
        if not row.card_ts:
            row.card_ts = await self.post_request_card(row)
        if not row.card_ts:
            return
        message = render_card(self.request_view(row, **changes), now=self.clock.now())
        await self.slack.update(
            channel=row.channel_id,
            ts=row.card_ts,
            text=message.text,
            blocks=message.blocks,
            context=f"request={row.id}",
        )

    async def show_request_failed(self, row: QueuedRequest, *, error: str) -> None:
        await self.show_request(row, phase="error", error=error)
        await self.react(row.channel_id, row.message_ts, REACTION_FAILED)

    async def show_run(self, run: TrackedRun, *, note: str | None = None) -> None:
        view = CardView(
            phase=run_phase(run),
            status=run.status,
            prompt=run.prompt,
            requester_id=run.user_id,
            run_id=run.id,
            web_url=run.web_url,
            options=_resolved(run.options),
            repo_label=run.options.get("repo_label"),
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            error=run.stop_reason if run.tracking is False else None,
            note=note,
        )
        message = render_card(view, now=self.clock.now())
        context = f"run={run.id}"
        if run.card_ts:
            await self.slack.update(
                channel=run.channel_id,
                ts=run.card_ts,
                text=message.text,
                blocks=message.blocks,
                context=context,
            )
        else:
            run.card_ts = await self.slack.post(
                channel=run.channel_id,
                thread_ts=run.thread_ts,
                text=message.text,
                blocks=message.blocks,
                context=context,
            )
        phase = view.phase
        reaction = {
            "running": REACTION_RUNNING,
            "paused": REACTION_RUNNING,
            "complete": REACTION_DONE,
            "failed": REACTION_FAILED,
        }.get(phase)
        if reaction:
            await self.react(run.channel_id, run.message_ts, reaction)

    async def react(self, channel: str, ts: str | None, name: str) -> None:
        """Move the triggering message's reaction: 👀 → ⏳ → ✅ or ❌."""
        if not ts:
            return
        others = tuple(r for r in _ALL_REACTIONS if r != name)
        await self.slack.react(channel=channel, ts=ts, add=name, remove=others)

    def final_reply(self, run: TrackedRun) -> RenderedMessage:
        return render_final_reply(
            run=as_api_run(run), requester_id=run.user_id, now=self.clock.now()
        )

    async def post_final_reply(self, run: TrackedRun) -> str | None:
        message = self.final_reply(run)
        return await self.slack.post(
            channel=run.channel_id,
            thread_ts=run.thread_ts,
            text=message.text,
            blocks=message.blocks,
            metadata={"event_type": FINAL_REPLY_EVENT, "event_payload": {"run_id": run.id}},
            context=f"run={run.id}",
        )
