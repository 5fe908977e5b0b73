"""The ticks. APScheduler only fires them; all state they act on lives in the store."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)

DISPATCH_SECONDS = 1.0
REAP_SECONDS = 30.0
PRUNE_SECONDS = 3600.0


class Ticks:
    def __init__(self, *, runtime: Runtime) -> None:
        self.runtime = runtime
        # In-memory job store on purpose: the jobs are just timers, rebuilt at every start.
        self.scheduler = AsyncIOScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        )

    def start(self) -> None:
        poll_every = min(1.0, self.runtime.settings.codegen_poll_min_seconds)
        add = self.scheduler.add_job
        add(self.dispatch, "interval", seconds=DISPATCH_SECONDS, id="dispatch")
        add(self.poll, "interval", seconds=poll_every, id="poll")
        add(self.reap, "interval", seconds=REAP_SECONDS, id="reap")
        add(self.prune, "interval", seconds=PRUNE_SECONDS, id="prune")
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def dispatch(self) -> None:
        try:
            await self.runtime.dispatcher.tick()
        except Exception:
            log.exception("dispatch tick failed")

    async def poll(self) -> None:
        try:
            await self.runtime.tracker.tick()
        except Exception:
            log.exception("poll tick failed")

    async def reap(self) -> None:
        try:
            await self.runtime.store.reap_expired_leases(now=self.runtime.clock.now())
        except Exception:
            log.exception("reap tick failed")

    async def prune(self) -> None:
        try:
            await self.runtime.store.prune(
                now=self.runtime.clock.now(),
                keep_events=timedelta(days=2),
                keep_spends=timedelta(hours=1),
            )
        except Exception:
            log.exception("prune tick failed")
