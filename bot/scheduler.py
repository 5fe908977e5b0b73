"""The ticks. APScheduler only fires them; all state they act on lives in the store.

Ticks receive plain jobs (a name, an interval, a coroutine function), the way slack-machine's
scheduler receives functions: the scheduler knows nothing of what they do. A job that raises
is logged and runs again at its next interval. Stopping waits for the ticks in flight, so the
store is never closed under a tick that is still writing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    seconds: float
    run: Callable[[], Awaitable[object]]


STOP_WAIT_SECONDS = 30.0


TickObserver = Callable[[str, float], None]


class Ticks:
    def __init__(self, jobs: Sequence[Job], *, on_tick: TickObserver | None = None) -> None:
        """`on_tick(job name, seconds)` is told how long each tick took (metrics)."""
        self.jobs = list(jobs)
        self.on_tick = on_tick
        # In-memory job store on purpose: the jobs are just timers, rebuilt at every start.
        self.scheduler = AsyncIOScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        )
        self._in_flight: set[asyncio.Task[object]] = set()

    def start(self) -> None:
        for job in self.jobs:
            self.scheduler.add_job(
                self._logged(job), "interval", seconds=job.seconds, id=job.name, name=job.name
            )
        self.scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    async def stop(self, *, wait: float = STOP_WAIT_SECONDS) -> None:
        """Fire no more ticks, and let those in flight finish (cancelled after `wait` s)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        in_flight = list(self._in_flight)
        if not in_flight:
            return
        _done, late = await asyncio.wait(in_flight, timeout=wait)
        for task in late:
            log.error("a tick was still running %.0f s after the stop: cancelled", wait)
            task.cancel()
        if late:
            await asyncio.wait(late)

    def _logged(self, job: Job) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            started = time.perf_counter()
            try:
                await job.run()
            except Exception:
                log.exception("%s tick failed", job.name)
            finally:
                if task is not None:
                    self._in_flight.discard(task)
                if self.on_tick is not None:
                    self.on_tick(job.name, time.perf_counter() - started)

        return run
