"""Socket Mode that cannot connect: the process still stops within 5 s of SIGTERM or SIGINT,
and /readyz says the socket is down (a real process, a fake Slack, loopback only)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.devtools.slack import FakeSlack
from tests.process.support import bot_env, free_port, until

BOT_TOKEN = "xoxb-socket-test-bot-token-77"
APP_TOKEN = "xapp-1-A0FAKEAPP-77-socket"
STOP_WITHIN_SECONDS = 5.0


async def _run_until_signal(
    tmp_path: Path, *, slack_api_url: str, signum: signal.Signals
) -> tuple[float, str, dict[str, object]]:
    """Start `codegen-bot run` in Socket Mode, read /readyz once it is alive, send `signum`;
    returns how long it took to exit, its output and the /readyz body."""
    port = free_port()
    env = bot_env(
        PORT=str(port),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_API_URL=slack_api_url,
        CODEGEN_API_TOKEN="cg-socket-test-token-77",
        CODEGEN_ORG_ID="3",
        CODEGEN_API_URL=f"http://127.0.0.1:{free_port()}",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
    )
    log_path = tmp_path / "bot.log"
    with log_path.open("w") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            async def alive() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"the bot exited:\n{log_path.read_text()}")
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(alive, what="/healthz")
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            body = ready.json()
        process.send_signal(signum)
        sent = time.monotonic()
        await asyncio.wait_for(process.wait(), timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return took, log_path.read_text(), body


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_refused_app_token_does_not_keep_the_process_alive(
    tmp_path: Path, signum: signal.Signals
) -> None:
    async with FakeSlack.running(bot_token=BOT_TOKEN) as slack:
        slack.respond("apps.connections.open", {"ok": False, "error": "invalid_auth"})
        took, output, ready = await _run_until_signal(
            tmp_path, slack_api_url=slack.api_url, signum=signum
        )
        assert slack.calls_to("apps.connections.open"), "the bot never tried to connect"
    assert took < STOP_WITHIN_SECONDS, output
    assert ready["checks"]["socket"] == "error: Socket Mode is not connected"  # type: ignore[index]
    assert "shutting down" in output
    assert APP_TOKEN not in output


async def test_unreachable_slack_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens there
    took, output, ready = await _run_until_signal(
        tmp_path, slack_api_url=nobody, signum=signal.SIGTERM
    )
    assert took < STOP_WITHIN_SECONDS, output
    assert ready["checks"]["socket"] == "error: Socket Mode is not connected"  # type: ignore[index]
