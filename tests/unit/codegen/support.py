"""Helpers shared by the Codegen client and emulator tests (plain objects, not fixtures)."""

from __future__ import annotations

import socket

# A token shaped like a secret, so a leak is easy to spot in any text.
SECRET_TOKEN = "cg-SECRET-token-5f3a9e"
ORG_ID = 42


class RecordingSleep:
    """Stands in for asyncio.sleep: records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class RecordingObserver:
    def __init__(self) -> None:
        self.events: list[tuple[str, int | None]] = []

    def __call__(self, endpoint: str, status_code: int | None) -> None:
        self.events.append((endpoint, status_code))


def closed_loopback_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
