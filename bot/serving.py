"""uvicorn inside an already running asyncio loop. The bot's HTTP mode, the emulator, the
console's stand-in Slack and the tests all serve through this one function."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn
from starlette.types import ASGIApp


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the bot's loop: the bot, not uvicorn, decides what a signal means."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
) -> AsyncIterator[int]:
    """Serve an ASGI app with uvicorn inside the running loop; yields the bound port.

    The socket is bound here, so a taken port is an OSError for the caller (uvicorn would
    exit the process). `log_config=None`: uvicorn's records go through the bot's root handler,
    which redacts them and formats them as text or JSON like every other line.
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
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the HTTP server stopped before it started")
            await asyncio.sleep(0.01)
        yield int(sock.getsockname()[1])
    finally:
        if before_stop is not None:
            before_stop()  # e.g. the emulator ends held answers so shutdown need not wait
        server.should_exit = True
        await task
        sock.close()
