"""Work started after an ack and awaited by nobody but `idle`: the one place that keeps its
tasks alive (asyncio holds only weak references to them) and waits for them to finish.

    self.background = BackgroundTasks()
    self.background.start(self._answer(request))   # in a listener, after the ack
    await self.background.idle()                    # tests, settle, shutdown
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until every task started, and every task those started, has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
