"""The ticks. APScheduler only fires them; all state they act on lives in the store.

Ticks receive plain jobs (a name, an interval, a coroutine function), the way slack-machine's
scheduler receives functions: the scheduler knows nothing of what they do. A job that raises
is logged and runs again at its next interval.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    seconds: float
    run: Callable[[], Awaitable[object]]


class Ticks:
    def __init__(self, jobs: Sequence[Job]) -> None:
        self.jobs = list(jobs)
        # In-memory job store on purpose: the jobs are just timers, rebuilt at every start.
        self.scheduler = AsyncIOScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        )

    def start(self) -> None:
        for job in self.jobs:
            self.scheduler.add_job(
                _logged(job), "interval", seconds=job.seconds, id=job.name, name=job.name
            )
        self.scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


def _logged(job: Job) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job.run()
        except Exception:
            log.exception("%s tick failed", job.name)

    return run
