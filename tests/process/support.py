"""Helpers for tests that run the bot as a real process and talk to it over loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

REPO_ROOT = Path(__file__).resolve().parents[2]
_SETTING_PREFIXES = ("SLACK_", "CODEGEN_", "DATABASE_", "BOT_", "ALLOWED_", "LOG_", "PORT", "MAX_")


def bot_env(**settings: str) -> dict[str, str]:
    """This environment without any of the bot's settings (the developer's shell may set
    some), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_PREFIXES)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(settings)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(
    check: Callable[[], Awaitable[bool] | bool], what: str, *, limit: float = 60.0
) -> None:
    """Poll a condition of another process (it has its own clock) until true or `limit`."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def slash_body(
    text: str, *, response_url: str, user: str = "U1", channel: str = "C1", team: str = "T1"
) -> str:
    """`/codegen <text>` form-encoded as Slack posts it."""
    return urlencode(
        {
            "team_id": team,
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/codegen",
            "text": text,
            "api_app_id": "A0FAKEAPP",
            "response_url": response_url,
            "trigger_id": uuid.uuid4().hex,
        }
    )


def signed_headers(body: str, *, secret: str, content_type: str) -> dict[str, str]:
    ts = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
