"""Group commit: what concurrent callers write at once goes in one transaction.

Every Slack request is committed before it is acked, and each transaction costs a commit
(on SQLite, a sync of its log to disk) and a hand-off to the thread that writes it
(bot.store.transactions): about 0.7 ms of CPU alone on a small VM, 0.14 ms a request in a
batch of 50. In a burst, the requests that arrive while one is being committed are written
together, in one transaction and one multi-row INSERT, as soon as it is done. A request
alone is written at once: nobody waits on a timer, so tests on a fake clock see no
difference.

A batch the database refuses is written again one item at a time, so one bad row (a value
PostgreSQL finds too long, say) fails alone and the others are not lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Items written in one transaction at most (a multi-row INSERT of this many rows stays well
#: under SQLite's limit on bound parameters).
MAX_BATCH = 100


class GroupCommit(Generic[Item, Result]):
    """Hands `write` the items submitted while the previous batch was being written.

    `write` writes a batch in one transaction and returns one result per item, in order;
    if it raises, each item of the batch is written again on its own."""

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._write = write
        self.max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions tried, for tests and the curious

    async def submit(self, item: Item) -> Result:
        """Write `item` with whatever else is waiting; its result, or what the write raised."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        # Shielded: a caller that gives up (a client gone) does not cancel its neighbours'
        # write; its item is written all the same.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: len(batch)]
                await self._write_batch(batch)
        except BaseException:  # cancelled at shutdown: nobody waits forever
            for _, future in self._pending:
                future.cancel()
            self._pending.clear()
            raise

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self.batches += 1
        try:
            results = await self._write([item for item, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0][1], error=error)
                return
            log.warning(
                "writing %d items in one transaction failed (%s); writing them one by one",
                len(batch),
                error,
            )
            for entry in batch:
                await self._write_batch([entry])
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[Result],
    *,
    result: Result | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
