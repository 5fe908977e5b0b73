"""The same handlers run through Socket Mode.

Socket Mode delivers the same payloads over a WebSocket; slack_bolt's socket mode handler turns
each envelope into `AsyncBoltRequest(mode="socket_mode")` and dispatches it to the app
(`run_async_bolt_app`), then sends the BoltResponse back as the envelope's ack. These tests feed
envelopes to exactly that function, with no signing secret configured (Socket Mode has none),
against the fake Slack and the Codegen emulator."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.app import build_bolt_app
from tests.harness import TEAM, Conversation


@asynccontextmanager
async def socket_mode(sqlite_url: str) -> AsyncIterator[tuple[Conversation, AsyncApp]]:
    async with Conversation.start(
        database_url=sqlite_url,
        slack_app_token="xapp-1-A0FAKEAPP-socket-test",
        slack_signing_secret=None,
        bot_mode="socket",
    ) as chat:
        assert chat.settings.resolved_mode(stdin_is_tty=False) == "socket"
        yield chat, build_bolt_app(chat.runtime)


async def deliver(
    app: AsyncApp, kind: str, payload: dict[str, Any], *, retry: int | None = None
) -> BoltResponse:
    request = SocketModeRequest(
        type=kind,
        envelope_id=str(uuid.uuid4()),
        payload=payload,
        retry_attempt=retry,
        retry_reason="timeout" if retry else None,
    )
    response = await run_async_bolt_app(app, request)
    assert isinstance(response, BoltResponse)
    return response


def slash_payload(chat: Conversation, text: str, *, user: str = "U1") -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": TEAM,
        "channel_id": "C1",
        "channel_name": "general",
        "user_id": user,
        "command": "/codegen",
        "text": text,
        "api_app_id": "A0FAKEAPP",
        "response_url": chat.slack.response_url(),
        "trigger_id": uuid.uuid4().hex,
    }


def event_payload(chat: Conversation, event: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A0FAKEAPP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": chat.slack.bot_user_id, "is_bot": True}],
    }


def ack_text(response: BoltResponse) -> str:
    return str(json.loads(response.body).get("text", "")) if response.body else ""


async def test_a_slash_command_over_socket_mode_starts_a_run(sqlite_url: str) -> None:
    async with socket_mode(sqlite_url) as (chat, app):
        response = await deliver(
            app, "slash_commands", slash_payload(chat, "fix the footer repo=acme/web")
        )
        assert response.status == 200
        assert "Queued" in ack_text(response)
        await chat.settle()

        body = chat.emulator.created_bodies()[0]
        assert body["prompt"] == "fix the footer"
        assert body["repo_id"] == 101
        assert body["metadata"]["slack"]["trigger"] == "slash_command"
        root = chat.slack.bot_messages("C1")[0]
        assert "<@U1> asked Codegen: fix the footer" in root["text"]


async def test_subcommands_and_bad_input_are_answered_in_the_socket_mode_ack(
    sqlite_url: str,
) -> None:
    async with socket_mode(sqlite_url) as (chat, app):
        help_ack = await deliver(app, "slash_commands", slash_payload(chat, "help"))
        assert "*Commands*" in ack_text(help_ack)
        bad = await deliver(app, "slash_commands", slash_payload(chat, "fix it agent=foo"))
        assert "`agent=foo` is not an agent" in ack_text(bad)
        assert "`codegen`, `claude_code`" in ack_text(bad)
        await chat.settle()
        assert await chat.queued_requests() == []


async def test_a_mention_over_socket_mode_starts_one_run_even_when_retried(
    sqlite_url: str,
) -> None:
    async with socket_mode(sqlite_url) as (chat, app):
        text = f"<@{chat.slack.bot_user_id}> rename the env var"
        ts = chat.slack.add_message("C1", text, "U1")
        event = {"type": "app_mention", "user": "U1", "text": text, "ts": ts, "channel": "C1"}
        payload = event_payload(chat, event, "Ev0SOCKET01")
        first = await deliver(app, "events_api", payload)
        retried = await deliver(app, "events_api", payload, retry=1)
        assert (first.status, retried.status) == (200, 200)
        await chat.settle()

        bodies = chat.emulator.created_bodies()
        assert [b["prompt"] for b in bodies] == ["rename the env var"]
        assert bodies[0]["metadata"]["slack"]["trigger"] == "app_mention"
        assert bodies[0]["metadata"]["slack"]["message_ts"] == ts
        assert chat.slack.bot_reactions("C1", ts) == ["hourglass_flowing_sand"]


async def test_ignored_events_over_socket_mode_are_acknowledged(sqlite_url: str) -> None:
    async with socket_mode(sqlite_url) as (chat, app):
        plain = chat.slack.add_message("C1", "lunch?", "U2")
        for n, event in enumerate(
            [
                {"type": "message", "channel": "C1", "user": "U2", "text": "lunch?", "ts": plain},
                {"type": "app_uninstalled"},
                {"type": "reaction_added", "user": "U2", "reaction": "tada"},
            ]
        ):
            response = await deliver(app, "events_api", event_payload(chat, event, f"Ev0IGN{n}"))
            assert response.status == 200, event
        await chat.settle()
        assert await chat.queued_requests() == []
        assert chat.slack.calls_to("chat.postMessage") == []
