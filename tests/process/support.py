"""Helpers for tests that run the bot as a real process and talk to it over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.devtools.slack import FakeSlack
from bot.slack.cards import FINAL_REPLY_EVENT

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


class BotProcess:
    """The bot as a process (`python -m bot.cli run`): start, SIGKILL, start again. Its log of
    each start goes to `<cwd>/<name>-<n>.log`."""

    def __init__(
        self, env: dict[str, str], cwd: Path, port: int, *, signing_secret: str, name: str = "bot"
    ) -> None:
        self.env, self.cwd, self.port = env, cwd, port
        self.signing_secret, self.name = signing_secret, name
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        log = (self.cwd / f"{self.name}-{self.starts}.log").open("w")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        async with httpx.AsyncClient(timeout=2) as http:

            async def healthy() -> bool:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(f"the bot exited:\n{self.logs()}")
                with contextlib.suppress(httpx.HTTPError):
                    response = await http.get(f"http://127.0.0.1:{self.port}/healthz")
                    return response.status_code == 200
                return False

            await until(healthy, "the bot to answer /healthz")

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.cwd.glob(f"{self.name}-*.log")))

    def signal(self, number: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, number)

    async def kill(self) -> None:
        assert self.process is not None
        self.signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def slash(self, text: str, slack: FakeSlack) -> None:
        body = slash_body(text, response_url=slack.response_url())
        headers = signed_headers(
            body, secret=self.signing_secret, content_type="application/x-www-form-urlencoded"
        )
        async with httpx.AsyncClient(timeout=10) as http:
            ack = await http.post(
                f"http://127.0.0.1:{self.port}/slack/events", content=body, headers=headers
            )
        assert ack.status_code == 200 and "Queued" in ack.text


def final_reply_runs(slack: FakeSlack) -> list[int]:
    """The run id of every final reply the bot posted."""
    runs = []
    for call in slack.calls_to("chat.postMessage"):
        metadata = call.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == FINAL_REPLY_EVENT and payload.get("kind") == "final":
            runs.append(int(payload["run_id"]))
    return runs
