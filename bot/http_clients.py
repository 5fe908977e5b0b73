"""HTTP clients: the bot's Slack Web API client, and httpx clients made when first used.

Slack's client keeps its connections: slack_sdk's AsyncWebClient opens (and closes) an
aiohttp session for every call unless it is handed one, which is a new TCP connection and
TLS handshake per call. Sharing one session keeps them alive between calls: half the CPU of
a call on loopback (0.79 -> 0.35 ms), and a round trip or two less to slack.com.

Making an httpx client builds its transport: a TLS context loaded with the CA bundle and the
import of httpcore, about 35 ms, a sixth of the bot's start-up; importing httpx itself is
another 13 ms. None of it is needed to answer Slack, so the bot makes its clients at their
first request (a tick or a prepared request, after start-up), every client shares one TLS
context (`shared_tls`), and the modules that use httpx import it where they use it.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

if TYPE_CHECKING:
    import httpx

#: The longest a Slack call may take, as slack_sdk's own default (it applies its `timeout`
#: only to the sessions it makes itself: a session handed to it carries its own).
SLACK_TIMEOUT_SECONDS = 30.0


def slack_web_client(*, token: str | None, base_url: str) -> AsyncWebClient:
    """A Web API client whose calls share one aiohttp session (call in the event loop; close
    it with `close_slack_web_client`). No retry handlers: bot.slack.gateway retries, and
    only what cannot have reached Slack twice."""
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SLACK_TIMEOUT_SECONDS))
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        session=session,
        timeout=int(SLACK_TIMEOUT_SECONDS),
        retry_handlers=[],
    )


async def close_slack_web_client(client: AsyncWebClient) -> None:
    if client.session is not None:
        await client.session.close()


def shared_tls() -> Callable[[], ssl.SSLContext]:
    """One TLS context for every client that asks, made when the first one asks."""

    @cache
    def context() -> ssl.SSLContext:
        import httpx

        return httpx.create_ssl_context()

    return context


class OnDemandClient:
    """An httpx.AsyncClient made by `make` at the first call of `client()`."""

    def __init__(self, make: Callable[[], httpx.AsyncClient]) -> None:
        self._make = make
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    @property
    def made(self) -> bool:
        return self._client is not None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            if self._closed:
                raise RuntimeError("this HTTP client has been closed")
            self._client = self._make()
        return self._client

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
