"""A conversation-level harness: the bot in HTTP mode under uvicorn, the fake Slack Web API and
the Codegen emulator, all on loopback, sharing one fake clock.

Tests read like conversations:

    async with Conversation.start() as chat:
        await chat.slash("fix the login page repo=acme/web")
        await chat.run_until_idle()
        assert chat.emulator.created_bodies()[0]["repo_id"] == 101
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select

from bot.app import Runtime, build_bolt_app, build_runtime, build_web_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.devtools.emulator import EmulatorState, create_emulator_app, running_emulator
from bot.devtools.slack import FakeSlack
from bot.metrics import Metrics
from bot.serving import serve_http
from bot.slack.cards import FINAL_REPLY_EVENT
from bot.store.tables import QueuedRequest

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-bot-token"
CODEGEN_TOKEN = "cg-test-token-abcdef"
ORG_ID = 7
TEAM = "T0FAKETEAM"
# Where the bot believes the emulator is when it reaches it in-process (never resolved).
EMULATOR_URL = "http://codegen-emulator.invalid"


@dataclass
class Conversation:
    slack: FakeSlack
    emulator: EmulatorState
    runtime: Runtime
    clock: FakeClock
    url: str
    http: httpx.AsyncClient
    settings: Settings

    # -- setting up --------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        *,
        database_url: str,
        clock: FakeClock | None = None,
        emulator: EmulatorState | None = None,
        replica_id: str = "test-replica",
        slack: FakeSlack | None = None,
        runtime_options: dict[str, Any] | None = None,
        emulator_socket: bool = False,
        **settings_overrides: Any,
    ) -> AsyncIterator[Conversation]:
        """`slack` (and `emulator`, `clock`) may be shared: two Conversations on one database
        are two replicas of the bot in the same workspace. `runtime_options` go to
        build_runtime (a watchdog, a read plan, randomness). The bot reaches the emulator
        in-process unless `emulator_socket` (client timeouts need a real connection)."""
        runtime_options = runtime_options or {}
        clock = clock or FakeClock()
        emulator = emulator or EmulatorState(
            token=CODEGEN_TOKEN, org_id=ORG_ID, clock=clock, pending_seconds=5, active_seconds=20
        )
        async with AsyncExitStack() as stack:
            if slack is None:
                slack = await stack.enter_async_context(
                    FakeSlack.running(bot_token=BOT_TOKEN, team_id=TEAM, clock=clock)
                )
                slack.add_channel("C1", name="general")
                # Alice is the emulator's token owner (user 7), Bob its other member (user 8).
                slack.add_user("U1", "alice", real_name="Alice Example", email="dev@example.com")
                slack.add_user("U2", "bob", real_name="Bob Example", email="Teammate@Example.com")
            transport = None
            if emulator_socket:
                codegen_url = await stack.enter_async_context(running_emulator(emulator))
            else:  # in-process: no socket, no uvicorn; the same app and state
                transport = httpx.ASGITransport(app=create_emulator_app(emulator))
                codegen_url = EMULATOR_URL
            fields: dict[str, Any] = {
                "slack_bot_token": BOT_TOKEN,
                "slack_signing_secret": SIGNING_SECRET,
                "slack_api_url": slack.api_url,
                "codegen_api_token": CODEGEN_TOKEN,
                "codegen_org_id": ORG_ID,
                "codegen_api_url": codegen_url,
                "database_url": database_url,
                "bot_mode": "http",
                "codegen_poll_min_seconds": 5,
                "codegen_poll_max_seconds": 60,
                "_env_file": None,
            }
            fields.update(settings_overrides)
            settings = Settings(**fields)
            runtime = await build_runtime(
                settings,
                clock=clock,
                replica_id=replica_id,
                metrics=Metrics(),
                codegen_transport=transport,
                **runtime_options,
            )
            bolt = build_bolt_app(runtime)
            web = build_web_app(runtime, bolt)
            runtime.mark_ready()
            try:
                async with (
                    serve_http(web, host="127.0.0.1", port=0) as port,
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
                ):
                    yield cls(
                        slack=slack,
                        emulator=emulator,
                        runtime=runtime,
                        clock=clock,
                        url=f"http://127.0.0.1:{port}",
                        http=http,
                        settings=settings,
                    )
            finally:
                await runtime.close()

    # -- what a person does in Slack ---------------------------------------------------------

    def signed_headers(self, body: str, *, timestamp: int | None = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}

    async def slash(
        self,
        text: str,
        *,
        user: str = "U1",
        channel: str = "C1",
        headers: dict[str, str] | None = None,
        settle: bool = True,
    ) -> httpx.Response:
        """`/codegen <text>` as Slack posts it; returns Slack's view of the ack.

        `settle=False` returns as soon as the HTTP response is in (to time the ack)."""
        body = urlencode(
            {
                "token": "legacy",
                "team_id": TEAM,
                "team_domain": "fake-team",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/codegen",
                "text": text,
                "api_app_id": "A0FAKEAPP",
                "response_url": self.slack.response_url(),
                "trigger_id": uuid.uuid4().hex,
            }
        )
        sent_headers = {"Content-Type": "application/x-www-form-urlencoded"}
        sent_headers.update(headers if headers is not None else self.signed_headers(body))
        response = await self.http.post("/slack/events", content=body, headers=sent_headers)
        if settle:
            await self.settle()
        return response

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        headers: dict[str, str] | None = None,
        settle: bool = True,
    ) -> httpx.Response:
        """Deliver one Events API callback, signed, as Slack would."""
        payload = {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": "A0FAKEAPP",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": TEAM, "user_id": self.slack.bot_user_id, "is_bot": True}
            ],
        }
        body = json.dumps(payload)
        sent_headers = {"Content-Type": "application/json"}
        sent_headers.update(headers if headers is not None else self.signed_headers(body))
        if retry_num is not None:
            sent_headers["X-Slack-Retry-Num"] = str(retry_num)
            sent_headers["X-Slack-Retry-Reason"] = "http_timeout"
        response = await self.http.post("/slack/events", content=body, headers=sent_headers)
        if settle:
            await self.settle()
        return response

    async def mention(
        self,
        text: str,
        *,
        user: str = "U1",
        channel: str = "C1",
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        event_id: str | None = None,
    ) -> str:
        """`@Codegen <text>` posted in a channel (or a thread); returns the message ts."""
        full = f"<@{self.slack.bot_user_id}> {text}"
        ts = self.slack.add_message(channel, full, user, thread_ts=thread_ts, files=files)
        event: dict[str, Any] = {
            "type": "app_mention",
            "user": user,
            "text": full,
            "ts": ts,
            "channel": channel,
            "team": TEAM,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        if files:
            event["files"] = files
        await self.event(event, event_id=event_id)
        return ts

    async def dm(self, text: str, *, user: str = "U1", thread_ts: str | None = None) -> str:
        channel = f"D{user}"
        if channel not in self.slack.channels:
            self.slack.add_channel(channel, is_im=True, user=user)
        ts = self.slack.add_message(channel, text, user, thread_ts=thread_ts)
        event: dict[str, Any] = {
            "type": "message",
            "channel_type": "im",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "team": TEAM,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        await self.event(event)
        return ts

    async def reply(
        self,
        text: str,
        *,
        thread_ts: str,
        user: str = "U1",
        channel: str = "C1",
        files: list[dict[str, Any]] | None = None,
    ) -> str:
        """A plain reply (no mention) in a channel thread, as the message event brings it."""
        ts = self.slack.add_message(channel, text, user, thread_ts=thread_ts, files=files)
        event: dict[str, Any] = {
            "type": "message",
            "channel_type": "channel",
            "user": user,
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts,
            "channel": channel,
            "team": TEAM,
            "event_ts": ts,
        }
        if files:
            event["subtype"] = "file_share"
            event["files"] = files
        await self.event(event)
        return ts

    async def press(
        self,
        action_id: str,
        *,
        value: str,
        message_ts: str,
        thread_ts: str | None = None,
        user: str = "U1",
        channel: str = "C1",
    ) -> httpx.Response:
        """A button pressed on the bot's message `message_ts`, as Slack posts the interaction."""
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": user},
            "api_app_id": "A0FAKEAPP",
            "channel": {"id": channel},
            "container": {
                "type": "message",
                "channel_id": channel,
                "message_ts": message_ts,
                "thread_ts": thread_ts,
            },
            "actions": [{"action_id": action_id, "type": "button", "value": value}],
        }
        return await self._interaction(payload)

    async def submit_view(
        self, callback_id: str, *, values: dict[str, dict[str, str]], user: str = "U1"
    ) -> dict[str, Any]:
        """A modal submitted (view_submission), `values` as {block_id: {action_id: text}};
        returns the bot's answer to Slack ({} when it just closes the modal)."""
        state = {
            block: {action: {"type": "plain_text_input", "value": text}}
            for block, actions in values.items()
            for action, text in actions.items()
        }
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": {"id": user},
            "api_app_id": "A0FAKEAPP",
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": callback_id,
                "state": {"values": state},
            },
        }
        response = await self._interaction(payload)
        assert response.status_code == 200, response.text
        return dict(response.json()) if response.content else {}

    async def _interaction(self, payload: dict[str, Any]) -> httpx.Response:
        """Post an interaction payload as Slack does (a signed form with `payload`), settled."""
        body = urlencode({"payload": json.dumps(payload)})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        headers.update(self.signed_headers(body))
        response = await self.http.post("/slack/events", content=body, headers=headers)
        await self.settle()
        return response

    async def shortcut(
        self, message_ts: str, *, user: str = "U1", channel: str = "C1"
    ) -> httpx.Response:
        """ "Send to Codegen" used on message `message_ts`, as Slack posts the message_action
        (the message as Slack has it: text, author, thread, files)."""
        stored = self.slack.message(channel, message_ts)
        message = {
            key: stored[key]
            for key in ("type", "user", "text", "ts", "thread_ts", "files", "team")
            if key in stored
        }
        return await self._interaction(
            {
                "type": "message_action",
                "callback_id": "send_to_codegen",
                "trigger_id": uuid.uuid4().hex,
                "team": {"id": TEAM},
                "user": {"id": user},
                "api_app_id": "A0FAKEAPP",
                "channel": {"id": channel},
                "message_ts": message_ts,
                "message": message,
                "response_url": self.slack.response_url(),
            }
        )

    async def press_on_home(self, action_id: str, *, value: str, user: str = "U1") -> None:
        """A button pressed on `user`'s Home tab (as published last), as Slack posts it."""
        home = self.slack.home_of(user)
        assert home is not None, f"no Home published for {user}"
        await self._interaction(
            {
                "type": "block_actions",
                "team": {"id": TEAM},
                "user": {"id": user},
                "api_app_id": "A0FAKEAPP",
                "trigger_id": uuid.uuid4().hex,
                "container": {"type": "view", "view_id": home["id"]},
                "view": home,
                "actions": [{"action_id": action_id, "type": "button", "value": value}],
            }
        )

    def opened_view(self) -> dict[str, Any]:
        """The newest modal the bot opened (views.open)."""
        assert self.slack.views, "the bot opened no modal"
        return dict(self.slack.views[-1]["view"])

    async def suggest(self, query: str, *, action_id: str = "repo", user: str = "U1") -> Any:
        """Type `query` into the open modal's external select: the options the bot answers."""
        response = await self._interaction(
            {
                "type": "block_suggestion",
                "team": {"id": TEAM},
                "user": {"id": user},
                "api_app_id": "A0FAKEAPP",
                "action_id": action_id,
                "block_id": action_id,
                "value": query,
                "view": self.opened_view(),
            }
        )
        assert response.status_code == 200, response.text
        return response.json()["options"]

    async def submit_form(
        self, *, user: str = "U1", **fields: str | dict[str, Any] | None
    ) -> dict[str, Any]:
        """Submit the newest modal as the person left it: every input at its initial value but
        `fields` (block id → text, an option's value, or an option). Returns the bot's answer
        ({} when the modal just closes)."""
        opened = self.opened_view()
        state: dict[str, dict[str, Any]] = {}
        for block in opened.get("blocks", []):
            if block.get("type") != "input":
                continue
            element = block["element"]
            block_id, kind = block["block_id"], element["type"]
            given = fields.pop(
                block_id, element.get("initial_value", element.get("initial_option"))
            )
            if kind == "plain_text_input":
                value: dict[str, Any] = {"type": kind, "value": given}
            else:
                if isinstance(given, str):
                    options = element.get("options") or []
                    given = next(o for o in options if o["value"] == given)
                value = {"type": kind, "selected_option": given}
            state[block_id] = {element["action_id"]: value}
        assert not fields, f"the modal has no input {sorted(fields)}"
        response = await self._interaction(
            {
                "type": "view_submission",
                "team": {"id": TEAM},
                "user": {"id": user},
                "api_app_id": "A0FAKEAPP",
                "view": {**opened, "state": {"values": state}},
            }
        )
        assert response.status_code == 200, response.text
        return dict(response.json()) if response.content else {}

    # -- time passing ------------------------------------------------------------------------

    async def settle(self) -> None:
        """Let intake and any dispatch it woke finish (no wall-clock waiting)."""
        await self.runtime.settle()

    async def tick(self) -> None:
        await self.settle()
        await self.runtime.dispatcher.tick()
        await self.runtime.tracker.tick()
        if self.runtime.progress is not None:
            await self.runtime.progress.tick()

    async def advance(self, seconds: float, *, step: float = 1.0) -> None:
        """Let `seconds` pass on the shared clock, ticking every `step` as the scheduler
        would. Ticks at which nothing can be due are skipped: the clock jumps to the first
        tick at or after the next due moment (the store knows it), so a quiet minute costs
        one tick, not sixty, and every tick that does work happens when it would have."""
        end = self.clock.now() + timedelta(seconds=seconds)
        while self.clock.now() < end:
            await self._next_tick(step=step, end=end)

    async def run_until_idle(self, *, limit: float = 600.0, step: float = 1.0) -> None:
        """Advance time until nothing is queued or tracked (or `limit` seconds pass)."""
        await self.tick()
        end = self.clock.now() + timedelta(seconds=limit)
        while self.clock.now() < end and await self.busy():
            await self._next_tick(step=step, end=end)

    async def _next_tick(self, *, step: float, end: datetime) -> None:
        now = self.clock.now()
        steps = 1
        due = await self.runtime.store.next_due(
            read_every=self.runtime.settings.codegen_poll_min_seconds
        )
        if due is not None and due > now:
            steps = max(1, math.ceil((due - now).total_seconds() / step - 1e-9))
        self.clock.advance_to(min(end, now + timedelta(seconds=steps * step)))
        await self.tick()

    async def busy(self) -> bool:
        """Something is queued or tracked."""
        store = self.runtime.store
        pending = await store.requests.pending(org_id=ORG_ID)
        tracking = await store.runs.count_tracking(org_id=ORG_ID)
        return bool(pending) or tracking > 0

    # -- what can be seen ------------------------------------------------------------------

    async def queued_requests(self) -> list[QueuedRequest]:
        """Every outbox row, oldest first (whatever its status)."""
        async with self.runtime.store.sessions() as session:
            rows = await session.scalars(
                select(QueuedRequest).order_by(QueuedRequest.created_at, QueuedRequest.id)
            )
            return list(rows.all())

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        return self.slack.messages(channel, thread_ts=thread_ts)

    def bot_texts(self, channel: str, thread_ts: str | None = None) -> list[str]:
        return [all_text(m) for m in self.slack.bot_messages(channel, thread_ts=thread_ts)]

    def ephemeral_texts(self) -> list[str]:
        texts = [str(r.text) for r in self.slack.responses]
        texts += [str(e.get("text")) for e in self.slack.ephemerals]
        return texts


def block_texts(blocks: Any) -> list[str]:
    """Every text and link in Block Kit blocks, in order (mrkdwn as sent, unrendered)."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                # `title` is a plan's or a task card's (plain text, no object).
                if key in ("text", "url", "title") and isinstance(value, str):
                    parts.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return parts


def all_text(message: dict[str, Any]) -> str:
    """Everything a person would read in a message: its text and its blocks' text."""
    return "\n".join([str(message.get("text") or ""), *block_texts(message.get("blocks") or [])])


def ack_text(response: httpx.Response) -> str:
    if not response.content:
        return ""
    try:
        return str(response.json().get("text", ""))
    except ValueError:
        return response.text


# -- reading a thread the way a person would --------------------------------------------------

CHANNEL = "C1"


def roots(chat: Conversation, channel: str = CHANNEL) -> list[str]:
    """The ts of each slash command's root message ("<@U1> asked Codegen: …"), oldest first."""
    return [
        m["ts"]
        for m in chat.slack.bot_messages(channel)
        if "asked Codegen" in str(m.get("text")) and m.get("thread_ts") in (None, m["ts"])
    ]


def card_ts(chat: Conversation, root: str, channel: str = CHANNEL) -> str:
    """The status card: the bot's first message in the thread after the root."""
    cards = [
        m
        for m in chat.slack.bot_messages(channel, thread_ts=root)
        if m["ts"] != root and "Codegen run" in str(m.get("text"))
    ]
    assert cards, f"no card in thread {root}: {chat.bot_texts(channel, root)}"
    return str(cards[0]["ts"])


def card_text(chat: Conversation, root: str, channel: str = CHANNEL) -> str:
    return all_text(chat.slack.message(channel, card_ts(chat, root, channel)))


def edits(slack: FakeSlack, ts: str) -> list[str]:
    """The fallback text of every chat.update of message `ts`, in order (the fake records
    calls it answered with a scripted fault too)."""
    return [str(call.get("text")) for call in slack.calls_to("chat.update") if call.get("ts") == ts]


def headline(text: str) -> str:
    """ "✅ Codegen run #1000: Complete, finished in 31 s · fix it" → "Complete"."""
    after = text.split(": ", 1)[1] if ": " in text else text
    return after.split(",", 1)[0].strip()


def final_replies(
    chat: Conversation, root: str, *, kind: str = "final", channel: str = CHANNEL
) -> list[dict[str, Any]]:
    """The bot's replies in the thread carrying the run-finished metadata of `kind`."""
    found = []
    for message in chat.slack.bot_messages(channel, thread_ts=root):
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == FINAL_REPLY_EVENT and payload.get("kind") == kind:
            found.append(message)
    return found


def text_of(message: dict[str, Any]) -> str:
    return all_text(message)
