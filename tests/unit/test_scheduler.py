"""The scheduler tells its observer how long every tick took, by job, failures included."""

from __future__ import annotations

import asyncio

from bot.metrics import Metrics
from bot.scheduler import Job, Ticks


async def test_each_tick_is_timed_by_job_even_when_it_fails() -> None:
    metrics = Metrics()
    ran = asyncio.Event()

    async def fails() -> None:
        ran.set()
        raise RuntimeError("boom")

    ticks = Ticks([Job("poll", 3600, fails)], on_tick=metrics.tick_took)
    # What APScheduler runs at each interval (firing it here spares waiting on wall time).
    await ticks._logged(ticks.jobs[0])()
    assert ran.is_set()
    count = metrics.registry.get_sample_value("codegen_bot_tick_seconds_count", {"job": "poll"})
    assert count == 1
