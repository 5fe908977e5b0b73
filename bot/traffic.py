"""Acks first: background work makes way for the Slack requests being acknowledged.

Slack wants each ack within 3 s, and one process serves acks and does the work they start
(preparing requests, dispatching, tracking) on the same event loop. In a burst, that work
would take most of the loop from the acks still arriving. So the ack path counts itself
(`acking`), and a unit of background work first awaits `make_way`: at once when no ack is in
flight, otherwise once those in flight have all been answered or MAKE_WAY_FOR acks have,
whichever comes first. A flood slows background work down; it never stops it.

Nothing here measures time: it counts acks, so tests on a fake clock see no difference.
Never await `make_way` while holding a database connection: an ack may be waiting for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

#: How many acks a waiting unit of background work lets through before it goes on anyway.
MAKE_WAY_FOR = 20


class AckTraffic:
    def __init__(self, *, make_way_for: int = MAKE_WAY_FOR) -> None:
        self.make_way_for = make_way_for
        self.in_flight = 0
        self.answered = 0
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []

    @contextmanager
    def acking(self) -> Iterator[None]:
        """Around the handling of one Slack request, until its response is ready."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self.answered += 1
            self._release()

    async def make_way(self) -> None:
        """Let the acks in flight go first (at most `make_way_for` of them)."""
        if self.in_flight == 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append((self.answered + self.make_way_for, waiter))
        await waiter

    def _release(self) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for until, waiter in self._waiting:
            if waiter.done():
                continue  # cancelled while waiting
            if self.in_flight == 0 or self.answered >= until:
                waiter.set_result(None)
            else:
                still.append((until, waiter))
        self._waiting = still
