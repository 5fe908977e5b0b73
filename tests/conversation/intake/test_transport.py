"""HTTP mode: signed requests, health, acks within 3 s, ignored
events acknowledged, Slack retries dropped. Everything runs on loopback: the bot under uvicorn,
the fake Slack Web API and the Codegen emulator."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.harness import TEAM, Conversation, ack_text


async def test_healthz_answers_200_once_ready_and_url_verification_is_answered(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.runtime.health.ready = False
        starting = await chat.http.get("/healthz")
        assert starting.status_code == 503
        chat.runtime.health.ready = True
        ready = await chat.http.get("/healthz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok"}

        # Slack checks a new request URL with a signed challenge before sending anything.
        body = json.dumps({"token": "legacy", "challenge": "c-123", "type": "url_verification"})
        response = await chat.http.post(
            "/slack/events",
            content=body,
            headers={"Content-Type": "application/json", **chat.signed_headers(body)},
        )
        assert response.status_code == 200
        assert response.json() == {"challenge": "c-123"}


async def test_a_forged_or_stale_signature_gets_401_and_queues_nothing(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        forged = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"}
        response = await chat.slash("fix the login page", headers=forged)
        assert response.status_code == 401

        # Correctly signed, but 10 minutes old (a replay): refused, while the same body signed
        # now is accepted, so the timestamp is what made the difference.
        body = urlencode(
            {
                "team_id": TEAM,
                "channel_id": "C1",
                "user_id": "U1",
                "command": "/codegen",
                "text": "fix the login page",
                "response_url": chat.slack.response_url(),
            }
        )
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        stale = chat.signed_headers(body, timestamp=int(time.time()) - 10 * 60)
        response = await chat.http.post("/slack/events", content=body, headers=form | stale)
        await chat.settle()
        assert response.status_code == 401
        assert await chat.queued_requests() == []
        fresh = chat.signed_headers(body)
        response = await chat.http.post("/slack/events", content=body, headers=form | fresh)
        assert response.status_code == 200
        await chat.settle()
        assert len(await chat.queued_requests()) == 1

        # A mention signed with another app's secret.
        ts = chat.slack.add_message("C1", f"<@{chat.slack.bot_user_id}> do it", "U1")
        event = {"type": "app_mention", "user": "U1", "text": "do it", "ts": ts, "channel": "C1"}
        payload = json.dumps({"type": "event_callback", "team_id": TEAM, "event": event})
        now = str(int(time.time()))
        other = SignatureVerifier("some-other-secret").generate_signature(
            timestamp=now, body=payload
        )
        response = await chat.http.post(
            "/slack/events",
            content=payload,
            headers={
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": now,
                "X-Slack-Signature": other,
            },
        )
        await chat.settle()
        assert response.status_code == 401

        # Only the fresh, correctly signed request got through.
        assert [r.prompt for r in await chat.queued_requests()] == ["fix the login page"]
        assert len(chat.emulator.calls("create_run")) == 1
        assert chat.slack.calls_to("chat.postEphemeral") == []


async def test_events_the_bot_ignores_are_acknowledged_not_404(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        bot = chat.slack.bot_user_id
        plain = chat.slack.add_message("C1", "lunch anyone?", "U2")
        ignored: list[dict[str, Any]] = [
            # People talking in a channel without mentioning the bot.
            {"type": "message", "channel": "C1", "user": "U2", "text": "lunch?", "ts": plain},
            # An edit, a join, and the bot's own message (echoed back by Slack).
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": "C1",
                "ts": "1700000999.000100",
                "message": {"user": "U2", "text": "lunch at 1?", "ts": plain},
            },
            {"type": "message", "subtype": "channel_join", "channel": "C1", "user": "U2"},
            {
                "type": "message",
                "channel": "DU1",
                "channel_type": "im",
                "user": bot,
                "bot_id": chat.slack.bot_id,
                "text": "Queued",
                "ts": "1700000999.000200",
            },
            # Events Slack sends to every app, and ones a workspace admin may add.
            {"type": "app_uninstalled"},
            {"type": "tokens_revoked", "tokens": {"bot": ["U0FAKEBOT"]}},
            {"type": "reaction_added", "user": "U2", "reaction": "eyes"},
            {"type": "app_home_opened", "user": "U2", "channel": "DU2", "tab": "messages"},
        ]
        for event in ignored:
            response = await chat.event(event)
            assert response.status_code == 200, (event["type"], response.text)
        # A button press on a card (a link button) is acknowledged too.
        action = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": "U1"},
            "api_app_id": "A0FAKEAPP",
            "actions": [{"action_id": "view_run", "type": "button", "value": "1000"}],
        }
        body = "payload=" + json.dumps(action)
        response = await chat.http.post(
            "/slack/events",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                **chat.signed_headers(body),
            },
        )
        assert response.status_code == 200
        assert await chat.queued_requests() == []
        assert chat.slack.calls_to("chat.postMessage") == []


async def test_the_ack_arrives_within_3_s_while_codegen_is_slow(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.script.delay_next_create(30)
        started = time.monotonic()
        response = await chat.slash("add a dark mode toggle", settle=False)
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert elapsed < 3.0
        assert "Queued" in ack_text(response)

        started = time.monotonic()
        ts = chat.slack.add_message("C1", f"<@{chat.slack.bot_user_id}> and a light one", "U1")
        mention = {
            "type": "app_mention",
            "user": "U1",
            "text": f"<@{chat.slack.bot_user_id}> and a light one",
            "ts": ts,
            "channel": "C1",
        }
        response = await chat.event(mention, settle=False)
        assert response.status_code == 200
        assert time.monotonic() - started < 3.0

        # The slow create is still in flight; the request was committed before it was sent.
        await chat.runtime.intake.idle()
        assert len(await chat.queued_requests()) == 2
        for _ in range(1000):  # wall time, at most ~10 s: the create is an HTTP call in flight
            if chat.emulator.calls("create_run"):
                break
            await asyncio.sleep(0.01)
        assert chat.emulator.created_bodies() == []  # still held by the emulator
        chat.emulator.release_holds()
        await chat.settle()
        await chat.tick()
        prompts = sorted(body["prompt"] for body in chat.emulator.created_bodies())
        assert prompts == ["add a dark mode toggle", "and a light one"]


async def test_a_retried_event_creates_one_request(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        bot = chat.slack.bot_user_id
        text = f"<@{bot}> bump the version"
        ts = chat.slack.add_message("C1", text, "U1")
        event = {"type": "app_mention", "user": "U1", "text": text, "ts": ts, "channel": "C1"}
        first = await chat.event(event, event_id="Ev0RETRY01")
        again = await chat.event(event, event_id="Ev0RETRY01", retry_num=1)
        third = await chat.event(event, event_id="Ev0RETRY01", retry_num=2)
        assert [r.status_code for r in (first, again, third)] == [200, 200, 200]
        await chat.run_until_idle()

        assert len(await chat.queued_requests()) == 1
        assert [b["prompt"] for b in chat.emulator.created_bodies()] == ["bump the version"]
        # One card and one final reply in the thread, one reaction on the message.
        texts = chat.bot_texts("C1", ts)
        assert len(texts) == 2, texts
        assert "*Complete*" in texts[0]
        assert chat.slack.bot_reactions("C1", ts) == ["white_check_mark"]
