"""The burst of `make bench` (bench/burst.py), smaller: commands arriving faster than Codegen
lets runs start are all created, never over the limit, as early as the limit allows."""

from __future__ import annotations

from bench.burst import burst, earliest_creates


def test_earliest_creates_follow_the_sliding_window() -> None:
    arrivals = [3.0 * n for n in range(25)]  # 20 a minute
    creates = earliest_creates(arrivals, limit=10, window=60.0)
    assert creates[:10] == arrivals[:10]  # room in the first window: at once
    assert creates[10] == 60.0  # the 11th waits for the 1st to leave the window
    assert creates[24] == 120.0 + 3.0 * 4
    assert earliest_creates([0.0, 100.0], limit=1, window=60.0) == [0.0, 100.0]


async def test_a_burst_over_the_create_limit_is_created_as_soon_as_allowed() -> None:
    figures = await burst(12, per_minute=20)
    assert not figures.lost
    assert figures.created == figures.stored == figures.acked == 12
    assert figures.most_in_a_minute == 10
    assert figures.codegen_429s == 0
    assert figures.theoretical_s == 60.0 + 3.0 * 1
    assert figures.theoretical_s <= figures.last_create_s <= 1.05 * figures.theoretical_s
