"""HTTP clients made when first used.

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

if TYPE_CHECKING:
    import httpx


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
