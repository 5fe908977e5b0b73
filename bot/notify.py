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

import aiohttp
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


class SlackUnavailable(Exception):
    """Slack kept answering 429/5xx (or could not be reached) past the retry limits: the call
    may succeed later. Raised only by calls made with `strict=True`."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"slack {method} unavailable: {error}")
        self.method = method
        self.error = error


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
        # Waiting stays well inside the leases held by the tick making the call.
        self.max_total_wait = max_total_wait
        self.on_error = on_error

    async def call(
        self,
        method: str,
        send: Callable[[], Awaitable[Any]],
        *,
        context: str = "",
        strict: bool = False,
    ) -> dict[str, Any] | None:
        """Run one Web API call with Slack's fault rules; None when it failed for good.

        429s are waited out per Retry-After and 5xx/connection errors retried, on the clock.
        When those retries run out the call failed for now, not for good: `strict=True` raises
        SlackUnavailable so the caller can try again later; otherwise it is None as well."""
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                response = await send()
                return dict(response.data) if hasattr(response, "data") else dict(response)
            except SlackApiError as error:
                status = error.response.status_code
                code = _error_code(error.response)
                if code in HARMLESS_ERRORS:
                    return None
                if status == 429 or status >= 500:
                    if status == 429:
                        wait = min(_retry_after(error.response.headers), self.max_wait)
                        kind = "ratelimited"
                    else:
                        wait = min(2.0**attempt, self.max_wait)
                        kind = f"http_{status}"
                    self._count(method, kind)
                    if last or waited + wait > self.max_total_wait:
                        self._unavailable(method, kind, context, strict)
                        return None
                    log.warning(
                        "slack %s answered %s, retrying in %.1f s %s", method, status, wait, context
                    )
                    await self.clock.sleep(wait)
                    waited += wait
                    continue
                level = logging.WARNING if code in PERMANENT_ERRORS else logging.ERROR
                log.log(level, "slack %s failed: %s %s", method, code, context)
                self._count(method, code)
                return None
            except (TimeoutError, OSError, aiohttp.ClientError) as error:
                kind = type(error).__name__
                self._count(method, kind)
                wait = min(2.0**attempt, self.max_wait)
                if last or waited + wait > self.max_total_wait:
                    self._unavailable(method, f"{kind}: {error}", context, strict)
                    return None
                await self.clock.sleep(wait)
                waited += wait
        return None

    def _unavailable(self, method: str, error: str, context: str, strict: bool) -> None:
        log.error("slack %s unavailable (%s), giving up for now %s", method, error, context)
        if strict:
            raise SlackUnavailable(method, error)
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
        strict: bool = False,
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
            "chat.postMessage",
            lambda: self.client.chat_postMessage(**kwargs),
            context=context,
            strict=strict,
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
        strict: bool = False,
    ) -> bool:
        """Edit a message in place; False if Slack refused for good."""
        response = await self.call(
            "chat.update",
            lambda: self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks),
            context=context,
            strict=strict,
        )
        return response is not None

    async def ephemeral(
        self, *, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        await self.call("chat.postEphemeral", lambda: self.client.chat_postEphemeral(**kwargs))

    async def react(
        self,
        *,
        channel: str,
        ts: str,
        add: str,
        remove: tuple[str, ...] = (),
        context: str = "",
    ) -> None:
        for name in remove:
            await self.call(
                "reactions.remove",
                partial(self.client.reactions_remove, channel=channel, timestamp=ts, name=name),
                context=context,
            )
        await self.call(
            "reactions.add",
            lambda: self.client.reactions_add(channel=channel, timestamp=ts, name=add),
            context=context,
        )

    # -- reads -------------------------------------------------------------------------------

    async def find_final_reply(
        self, *, channel: str, thread_ts: str, run_id: int, kind: str = "final"
    ) -> str | None:
        """The ts of this run's reply of `kind` ("final" or "pause") if it was posted (before a
        crash), else None. LookupError when the thread cannot be read now."""
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
            try:
                response = await self.call(
                    "conversations.replies",
                    partial(self.client.conversations_replies, **kwargs),
                    strict=True,
                )
            except SlackUnavailable as error:
                raise LookupError(str(error)) from None
            if response is None:
                raise LookupError("could not read the thread to look for an earlier reply")
            for message in response.get("messages", []):
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if (
                    metadata.get("event_type") == FINAL_REPLY_EVENT
                    and str(payload.get("run_id")) == str(run_id)
                    and payload.get("kind", "final") == kind
                ):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

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


def _error_code(response: Any) -> str:
    """Slack's error code; the HTTP status when the body is not Slack's JSON (a 5xx page)."""
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return str(getattr(response, "status_code", "unknown"))


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
# What each reaction replaces (the only ones the bot may have put there before it).
_EARLIER_REACTIONS: dict[str, tuple[str, ...]] = {
    REACTION_RUNNING: (REACTION_RECEIVED,),
    REACTION_DONE: (REACTION_RECEIVED, REACTION_RUNNING),
    REACTION_FAILED: (REACTION_RECEIVED, REACTION_RUNNING),
}


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

    async def show_request(self, row: QueuedRequest, **changes: Any) -> bool:
        """Edit the request's card (posting one if it has none: then `row.card_ts` changes and
        the caller stores it). False if Slack refused for good."""
        if not row.card_ts:
            row.card_ts = await self.post_request_card(row)
        if not row.card_ts:
            return False
        message = render_card(self.request_view(row, **changes), now=self.clock.now())
        return await self.slack.update(
            channel=row.channel_id,
            ts=row.card_ts,
            text=message.text,
            blocks=message.blocks,
            context=f"request={row.id}",
        )

    async def show_request_failed(self, row: QueuedRequest, *, error: str) -> None:
        await self.show_request(row, phase="error", error=error)
        await self.react(row.channel_id, row.message_ts, REACTION_FAILED)

    def run_view(self, run: TrackedRun, *, note: str | None = None) -> CardView:
        return CardView(
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

    async def show_run(
        self, run: TrackedRun, *, note: str | None = None, react: bool = True
    ) -> bool:
        """Put the run's state on its card (posting one if it has none: then `run.card_ts`
        changes and the caller stores it) and move the reaction on the triggering message.

        True when done, or refused by Slack for good (logged with the run id; tracking goes
        on); False when Slack is unavailable for now and the edit should be tried again."""
        view = self.run_view(run, note=note)
        message = render_card(view, now=self.clock.now())
        context = f"run={run.id}"
        try:
            if run.card_ts:
                await self.slack.update(
                    channel=run.channel_id,
                    ts=run.card_ts,
                    text=message.text,
                    blocks=message.blocks,
                    context=context,
                    strict=True,
                )
            else:
                run.card_ts = await self.slack.post(
                    channel=run.channel_id,
                    thread_ts=run.thread_ts,
                    text=message.text,
                    blocks=message.blocks,
                    context=context,
                    strict=True,
                )
        except SlackUnavailable:
            return False
        reaction = phase_reaction(view.phase)
        if react and reaction:
            await self.react(run.channel_id, run.message_ts, reaction, context=context)
        return True

    async def react(self, channel: str, ts: str | None, name: str, *, context: str = "") -> None:
        """Move the triggering message's reaction: 👀 → ⏳ → ✅ or ❌ (removing only what an
        earlier step may have added)."""
        if not ts:
            return
        earlier = _EARLIER_REACTIONS.get(name, ())
        await self.slack.react(channel=channel, ts=ts, add=name, remove=earlier, context=context)

    def final_reply(self, run: TrackedRun, *, kind: str = "final") -> RenderedMessage:
        api_run = as_api_run(run)
        if kind == "pause":
            # The agent's question is in `result`; the reply is there to ask it.
            parts = [part for part in (run.summary, run.result) if part and part.strip()]
            api_run = api_run.model_copy(
                update={"summary": "\n\n".join(parts) or None, "result": None}
            )
        return render_final_reply(run=api_run, requester_id=run.user_id, now=self.clock.now())

    async def post_final_reply(self, run: TrackedRun, *, kind: str = "final") -> str | None:
        """Post the run's final reply (or, `kind="pause"`, the reply asking for input) in its
        thread, mentioning the requester. Its ts; None if Slack refused for good; raises
        SlackUnavailable when it should be tried again later."""
        message = self.final_reply(run, kind=kind)
        return await self.slack.post(
            channel=run.channel_id,
            thread_ts=run.thread_ts,
            text=message.text,
            blocks=message.blocks,
            metadata={
                "event_type": FINAL_REPLY_EVENT,
                "event_payload": {"run_id": run.id, "kind": kind},
            },
            context=f"run={run.id}",
            strict=True,
        )


def phase_reaction(phase: Phase) -> str | None:
    """The reaction a card's phase puts on the triggering message (None: leave it)."""
    return {
        "running": REACTION_RUNNING,
        "paused": REACTION_RUNNING,
        "complete": REACTION_DONE,
        "failed": REACTION_FAILED,
    }.get(phase)


def status_reaction(status: str | None) -> str | None:
    """The reaction for a run status, as phase_reaction would give for its card."""
    kind = classify_status(status)
    if kind in (StatusKind.IN_PROGRESS, StatusKind.WAITING_FOR_INPUT):
        return REACTION_RUNNING
    if kind is StatusKind.SUCCESS:
        return REACTION_DONE
    return REACTION_FAILED


def notified_key(status: str | None, note_kind: str | None = None) -> str:
    """What TrackedRun.notified_status holds once the card shows `status` (and the watchdog
    note of `note_kind`): the conditional update on it makes each card edit happen once."""
    return f"{status or ''}|{note_kind or ''}"[:64]


def notified_status(key: str | None) -> str | None:
    """The run status a notified_key was made for (None: nothing shown yet)."""
    if not key:
        return None
    return key.split("|", 1)[0] or None
