"""Acks first (bot.traffic): background work waits for the acks in flight, but never for more
than a bounded number of them."""

from __future__ import annotations

import asyncio
import contextlib

from bot.traffic import AckTraffic


async def test_with_no_ack_in_flight_background_work_goes_on_at_once() -> None:
    traffic = AckTraffic(make_way_for=3)
    await asyncio.wait_for(traffic.make_way(), timeout=1)


async def test_background_work_waits_until_the_acks_in_flight_are_answered() -> None:
    traffic = AckTraffic(make_way_for=10)
    with contextlib.ExitStack() as acks:
        acks.enter_context(traffic.acking())
        acks.enter_context(traffic.acking())
        waiting = asyncio.create_task(traffic.make_way())
        await asyncio.sleep(0)
        assert not waiting.done()
    await asyncio.wait_for(waiting, timeout=1)  # the last of them answered: it goes on


async def test_a_flood_of_acks_slows_background_work_but_never_stops_it() -> None:
    traffic = AckTraffic(make_way_for=3)
    with traffic.acking():  # one ack stays in flight all along: a flood never lets up
        waiting = asyncio.create_task(traffic.make_way())
        await asyncio.sleep(0)  # it waits from here
        for answered in range(1, 4):
            with traffic.acking():
                pass
            await asyncio.sleep(0)
            assert waiting.done() is (answered == 3)
        await waiting


async def test_a_cancelled_wait_is_forgotten() -> None:
    traffic = AckTraffic(make_way_for=1)
    with traffic.acking():
        waiting = asyncio.create_task(traffic.make_way())
        await asyncio.sleep(0)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    assert traffic.in_flight == 0
    assert traffic._waiting == []
