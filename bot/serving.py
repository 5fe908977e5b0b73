"""uvicorn inside an already running asyncio loop: the one HTTP runner. The bot's HTTP mode,
the Codegen emulator, the fake Slack and the tests all serve through `serve_http`.

The server is started and stopped here rather than by `uvicorn.Server.serve`, whose main loop
wakes every 0.1 s and whose shutdown sleeps a fixed 0.1 s: stopping takes as long as the
requests in flight need, and no longer (tests start and stop hundreds of servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 5.0


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def serve_http(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    before_stop: Callable[[], None] | None = None,
    grace: float = GRACEFUL_SHUTDOWN_SECONDS,
) -> AsyncIterator[int]:
    """Serve an ASGI app with uvicorn inside the running loop; yields the bound port.

    The socket is bound here, so a taken port is an OSError for the caller (uvicorn would
    exit the process). `log_config=None`: uvicorn's records go through the bot's root handler,
    which redacts them and formats them as text or JSON like every other line. On the way out
    the requests in flight get up to `grace` seconds to finish.
    """
    sock = listening_socket(host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=int(grace),
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    try:
        yield int(sock.getsockname()[1])
    finally:
        if before_stop is not None:
            before_stop()  # e.g. the emulator ends held answers so shutdown need not wait
        await _stop(server, grace)
        sock.close()


async def _stop(server: uvicorn.Server, grace: float) -> None:
    """Stop accepting, let the requests in flight finish (up to `grace` s), then cancel."""
    for listener in server.servers:
        listener.close()
    for connection in list(server.server_state.connections):
        connection.shutdown()
    deadline = time.monotonic() + grace
    state = server.server_state
    # uvicorn has no event for "the last connection closed": look every 5 ms.
    while (state.connections or state.tasks) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    if state.tasks:
        count = len(state.tasks)
        log.error(
            "cancelling %d request%s still running after %.0f s",
            count,
            "" if count == 1 else "s",
            grace,
        )
        for task in list(state.tasks):
            task.cancel()
    for connection in list(state.connections):
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.close()
    for listener in server.servers:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener.wait_closed(), timeout=1.0)
