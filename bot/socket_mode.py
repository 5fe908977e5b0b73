"""Socket Mode's connection, run so that a stop never waits on it.

slack_sdk's `connect()` retries for ever while Slack is unreachable or the app token is
refused, and Bolt's handler awaits it before anything else: awaited first, a SIGTERM would
wait with it. Here the connect runs in a task of its own beside the stop; stopping closes the
client (which ends its retry loop) and cancels whatever is still pending, within a bound.

While the socket is down, `/readyz` says so at once; `/healthz` turns 503 once it has been down
for `UNHEALTHY_AFTER_SECONDS`, so the Dockerfile's HEALTHCHECK reflects a bot that cannot hear
Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.clock import Clock

log = logging.getLogger(__name__)

STOP_SECONDS = 3.0
WATCH_SECONDS = 1.0
UNHEALTHY_AFTER_SECONDS = 60.0


class SocketLink:
    """One Socket Mode connection and what is known of it: connected now, down since when."""

    def __init__(self, bolt: AsyncApp, *, app_token: str, clock: Clock) -> None:
        self.handler = AsyncSocketModeHandler(bolt, app_token)
        self.clock = clock
        # Down until the first session is established.
        self.down_since: datetime | None = clock.now()

    async def connected(self) -> bool:
        return bool(await self.handler.client.is_connected())

    def unhealthy(self) -> bool:
        """Down for long enough that restarting the process is worth it."""
        down = self.down_since
        return down is not None and self.clock.now() - down >= timedelta(
            seconds=UNHEALTHY_AFTER_SECONDS
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (retrying as slack_sdk does) and stay connected until `stop` is set."""
        connect = asyncio.create_task(self.handler.connect_async(), name="socket-connect")
        watch = asyncio.create_task(self._watch(stop), name="socket-watch")
        try:
            await stop.wait()
        finally:
            await self._close(connect, watch)

    async def _watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            up = await self.connected()
            if up and self.down_since is not None:
                log.info("Socket Mode connected")
                self.down_since = None
            elif not up and self.down_since is None:
                log.warning("Socket Mode connection lost; slack_sdk reconnects")
                self.down_since = self.clock.now()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=WATCH_SECONDS)

    async def _close(self, *tasks: asyncio.Task[object]) -> None:
        client = self.handler.client
        # Set before awaiting anything: connect()'s retry loop checks it on every turn.
        client.closed = True
        for task in tasks:
            task.cancel()
        try:
            async with asyncio.timeout(STOP_SECONDS):
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.handler.close_async()
        except TimeoutError:
            log.warning("Socket Mode did not close within %.0f s; leaving it", STOP_SECONDS)
        except Exception:
            log.warning("closing Socket Mode failed", exc_info=True)
