"""SocketLink's health: down since start until connected, unhealthy only after a while."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.clock import FakeClock
from bot.socket_mode import UNHEALTHY_AFTER_SECONDS, SocketLink


async def test_unhealthy_only_once_down_for_the_grace_period() -> None:
    clock = FakeClock()
    bolt = AsyncApp(token="xoxb-unit-test-token", request_verification_enabled=False)
    link = SocketLink(bolt, app_token="xapp-1-unit-test", clock=clock)
    assert not await link.connected()
    assert not link.unhealthy()
    clock.advance(UNHEALTHY_AFTER_SECONDS - 1)
    assert not link.unhealthy()
    clock.advance(1)
    assert link.unhealthy()
    link.down_since = None  # what the watcher sets once a session is up
    assert not link.unhealthy()
    await link.handler.close_async()
