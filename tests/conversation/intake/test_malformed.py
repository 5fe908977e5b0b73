"""Malformed requests to /slack/events: each gets a 4xx at once and one log line, never a 500
or a traceback, and nothing is queued. The bodies are signed (but for the unsigned cases), so
they pass the signature check and reach the body checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from urllib.parse import urlencode

import pytest

from tests.harness import SIGNING_SECRET, TEAM, Conversation

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def _event(event: object, **envelope: object) -> str:
    return json.dumps({"type": "event_callback", "team_id": TEAM, "event": event, **envelope})


def _mention(**fields: object) -> dict[str, object]:
    return {
        "type": "app_mention",
        "user": "U1",
        "text": "<@U0FAKEBOT> hi",
        "ts": "1.000001",
        "channel": "C1",
        **fields,
    }


_SLASH = {"command": "/codegen", "text": "write docs", "team_id": TEAM}

SIGNED_MALFORMED: list[tuple[str, str | bytes, str, int]] = [
    ("truncated JSON", '{"type": "event_callback", "event": {"type": "app_', JSON, 400),
    ("not JSON at all", "this is not json", JSON, 400),
    ("a JSON array", "[1, 2, 3]", JSON, 400),
    ("JSON null", "null", JSON, 400),
    ("a JSON string", '"event_callback"', JSON, 400),
    ("invalid UTF-8", b'{"type": "event_callback", "x": "\xff\xfe"}', JSON, 400),
    ("files not a list", _event(_mention(files="F1")), JSON, 400),
    ("files holding non-objects", _event(_mention(files=[1, "two"])), JSON, 400),
    ("files without ids", _event(_mention(files=[{"name": "a.png"}])), JSON, 400),
    ("event as a string", _event("app_mention"), JSON, 400),
    ("event without a type", _event({"user": "U1"}), JSON, 400),
    ("user as an object", _event(_mention(user={"id": "U1"})), JSON, 400),
    ("text as a number", _event(_mention(text=5)), JSON, 400),
    ("50,000-deep arrays", "[" * 50_000 + "]" * 50_000, JSON, 400),
    ("50,000-deep objects", '{"a":' * 50_000 + "1" + "}" * 50_000, JSON, 400),
    ("slash command without user_id", urlencode({**_SLASH, "channel_id": "C1"}), FORM, 400),
    ("slash command without channel_id", urlencode({**_SLASH, "user_id": "U1"}), FORM, 400),
    (
        "slash command with empty user_id",
        urlencode({**_SLASH, "user_id": "", "channel_id": "C1"}),
        FORM,
        400,
    ),
    ("payload that is not JSON", "payload={not json", FORM, 400),
    ("payload that is a JSON list", urlencode({"payload": "[1]"}), FORM, 400),
    ("payload without a type", urlencode({"payload": '{"user": {"id": "U1"}}'}), FORM, 400),
    ("url_verification without a challenge", '{"type": "url_verification"}', JSON, 400),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [pytest.param(body, kind, status, id=name) for name, body, kind, status in SIGNED_MALFORMED],
)
async def test_a_signed_malformed_body_gets_a_400_and_one_log_line(
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
    body: str | bytes,
    content_type: str,
    status: int,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        raw = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": content_type, **_signed(raw)}
        caplog.clear()
        with caplog.at_level(logging.INFO):
            response = await chat.http.post("/slack/events", content=raw, headers=headers)
            await chat.settle()
        assert response.status_code == status, response.text
        refused = [r for r in caplog.records if "refused a request to /slack/events" in r.message]
        assert len(refused) == 1
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert await chat.queued_requests() == []


def _signed(raw: bytes) -> dict[str, str]:
    """Signed over the bytes as sent (the harness signs text)."""
    ts = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest.hexdigest()}"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Slack-Request-Timestamp": "soon"}, id="timestamp 'soon', unsigned"),
        pytest.param(
            {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
            id="timestamp 'soon', signed",
        ),
        pytest.param({}, id="no headers"),
        pytest.param({"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=00"}, id="1970"),
        pytest.param({"X-Slack-Signature": "v0=00"}, id="no timestamp"),
    ],
)
async def test_an_unreadable_signature_gets_a_401(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, headers: dict[str, str]
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        caplog.clear()
        response = await chat.slash("write docs", headers=headers)
        assert response.status_code == 401
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert await chat.queued_requests() == []


async def test_a_slash_command_that_mentions_payload_is_not_dropped(sqlite_url: str) -> None:
    """Bolt's own form parser returns {} for any form containing the word "payload"."""
    async with Conversation.start(database_url=sqlite_url) as chat:
        response = await chat.slash("fix the payload parser")
        assert response.status_code == 200 and "Queued" in response.text
        await chat.run_until_idle()
        assert chat.emulator.created_bodies()[0]["prompt"] == "fix the payload parser"
